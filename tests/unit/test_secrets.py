"""SecretBox: round trip, key derivation, rotation, clean failure on a wrong key."""
from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from exchange.errors import ConfigError
from exchange.secrets import SecretBox, SecretDecryptionError, generate_key


@pytest.mark.parametrize("key", ["correct horse battery staple", generate_key(), "x"])
def test_round_trip(key: str) -> None:
    box = SecretBox([key])
    token = box.encrypt("Bearer abc-é-123")
    assert token != "Bearer abc-é-123" and "abc" not in token
    assert box.decrypt(token) == "Bearer abc-é-123"
    # Fernet tokens carry a random IV: the same secret encrypts differently each time.
    assert box.encrypt("same") != box.encrypt("same")


def test_derived_key_is_stable_across_instances() -> None:
    token = SecretBox(["a passphrase"]).encrypt("s3cret")
    assert SecretBox(["a passphrase"]).decrypt(token) == "s3cret"


def test_actual_fernet_key_is_used_as_is() -> None:
    key = generate_key()
    token = Fernet(key.encode()).encrypt(b"from elsewhere").decode()
    assert SecretBox([key]).decrypt(token) == "from elsewhere"


def test_rotation_old_key_still_decrypts_and_rotate_moves_to_new() -> None:
    old_box = SecretBox(["old key"])
    old_token = old_box.encrypt("partner-token")
    both = SecretBox.from_setting("new key, old key")
    assert both.decrypt(old_token) == "partner-token"
    rotated = both.rotate(old_token)
    assert rotated != old_token
    assert SecretBox(["new key"]).decrypt(rotated) == "partner-token"
    with pytest.raises(SecretDecryptionError):
        old_box.decrypt(rotated)
    # New encryptions use the first key only.
    assert SecretBox(["new key"]).decrypt(both.encrypt("fresh")) == "fresh"


def test_wrong_key_fails_cleanly() -> None:
    token = SecretBox(["right"]).encrypt("s3cret")
    with pytest.raises(SecretDecryptionError, match="EXCHANGE_SECRET_KEY") as info:
        SecretBox(["wrong"]).decrypt(token)
    assert "s3cret" not in str(info.value)
    assert isinstance(info.value, ConfigError)
    with pytest.raises(SecretDecryptionError):
        SecretBox(["right"]).decrypt("not a token")
    with pytest.raises(SecretDecryptionError):
        SecretBox(["wrong"]).rotate(token)


@pytest.mark.parametrize("keys", [[], [""], ["  "], ["ok", ""]])
def test_empty_keys_are_a_config_error(keys: list[str]) -> None:
    with pytest.raises(ConfigError, match="EXCHANGE_SECRET_KEY"):
        SecretBox(keys)
    with pytest.raises(ConfigError):
        SecretBox.from_setting(" , ")


def test_a_bare_string_is_not_mistaken_for_a_key_list() -> None:
    with pytest.raises(TypeError):
        SecretBox("passphrase")  # type: ignore[arg-type]
