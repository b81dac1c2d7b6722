"""Encryption of secrets at rest (endpoint credentials, partner tokens, webhook secrets).

:class:`SecretBox` wraps ``cryptography``'s MultiFernet: the first configured key encrypts, every
key decrypts, and :meth:`SecretBox.rotate` re-encrypts a token under the first key. A configured key
may be an actual Fernet key (url-safe base64 of 32 bytes) or any other string, from which a Fernet
key is derived with HKDF-SHA256, so ``EXCHANGE_SECRET_KEY`` can be a passphrase. A string that
happens to be valid Fernet-key base64 is used as such.

Rotation: configure ``new,old`` (newest first, see :meth:`SecretBox.from_setting`), run
:meth:`rotate` over stored tokens, then drop the old key.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from exchange.errors import ConfigError

# Fixed salt and info: derivation must be stable across processes and restarts for the same input.
_HKDF_SALT = b"audience-exchange/secret-box"
_HKDF_INFO = b"fernet-key/v1"


class SecretDecryptionError(ConfigError):
    """A stored secret cannot be decrypted with any configured key."""

    title = "Secret cannot be decrypted"
    type_slug = "secret-decryption"


def _fernet_key(secret: str) -> bytes:
    """A Fernet key from a configured string: itself if it is one, else derived with HKDF."""
    raw = secret.encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32 and len(raw) == 44:
            return raw
    except (binascii.Error, ValueError):
        pass
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO).derive(raw)
    return base64.urlsafe_b64encode(derived)


def generate_key() -> str:
    """A new random Fernet key, suitable for ``EXCHANGE_SECRET_KEY``."""
    return Fernet.generate_key().decode()


class SecretBox:
    """Encrypts and decrypts short secrets; ``keys`` are ordered newest first."""

    def __init__(self, keys: Sequence[str]):
        if isinstance(keys, str):
            raise TypeError("SecretBox takes a list of keys; use SecretBox.from_setting for a setting string")
        cleaned = [k.strip() for k in keys]
        if not cleaned or any(not k for k in cleaned):
            raise ConfigError("EXCHANGE_SECRET_KEY is empty: set it to a long random string or a Fernet key.")
        self._fernet = MultiFernet([Fernet(_fernet_key(k)) for k in cleaned])

    @classmethod
    def from_setting(cls, value: str) -> SecretBox:
        """Build from a setting holding comma-separated keys, newest first (``"new,old"``)."""
        return cls([part for part in value.split(",") if part.strip()] or [""])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise SecretDecryptionError(
                "A stored secret cannot be decrypted: it was encrypted with a key that is no longer "
                "configured in EXCHANGE_SECRET_KEY, or it is corrupted. Restore the old key (after the "
                "new one) or enter the secret again."
            ) from exc

    def rotate(self, token: str) -> str:
        """``token`` re-encrypted under the first (newest) key."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError) as exc:
            raise SecretDecryptionError(
                "A stored secret cannot be rotated: no configured key decrypts it."
            ) from exc
