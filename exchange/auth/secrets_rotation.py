"""Re-encrypt every secret stored at rest under the newest configured key (``exchange keys rotate``)."""
from __future__ import annotations

from sqlalchemy import select

from ..models import Account, Application, ConnectState, Endpoint

ENCRYPTED = {Account: ("webhook_secret_enc",),
             Endpoint: ("credential_enc", "webhook_secret_enc", "adapter_settings_enc"),
             Application: ("client_secret_enc", "webhook_secret_enc", "pending_client_secret_enc"),
             ConnectState: ("code_verifier_enc",)}


def rotate_all(rt) -> int:
    """Rotate all encrypted columns in one transaction; returns how many values were re-encrypted."""
    n = 0
    with rt.db.session() as s:
        for model, columns in ENCRYPTED.items():
            for obj in s.scalars(select(model)):
                for column in columns:
                    token = getattr(obj, column)
                    if token:
                        setattr(obj, column, rt.secrets.rotate(token))
                        n += 1
    return n
