"""Fernet/MultiFernet encryption of MCP environments (design §4-2 env_encrypted)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from jedisos_db.runtime.errors import ConfigError, InvalidInputError, SecretDecryptionError
from jedisos_db.runtime.secrets import ENV_KEYS, SecretCipher, SecretEnv


@pytest.mark.claim("S4-env-encrypted")
def test_roundtrip_and_ciphertext_hides_the_value() -> None:
    cipher = SecretCipher([Fernet.generate_key()])
    token = cipher.encrypt_env({"API_KEY": "plain-value"})
    assert b"plain-value" not in token
    assert cipher.decrypt_env(token).reveal() == {"API_KEY": "plain-value"}


def test_rotation_moves_tokens_to_the_newest_key() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    token = SecretCipher([old]).encrypt_env({"K": "v"})
    rotated = SecretCipher([new, old]).rotate(token)
    assert SecretCipher([new]).decrypt_env(rotated)["K"] == "v"
    with pytest.raises(SecretDecryptionError):
        SecretCipher([new]).decrypt_env(token)
    with pytest.raises(SecretDecryptionError):
        SecretCipher([Fernet.generate_key()]).rotate(token)


def test_from_env_reads_comma_separated_keys_newest_first() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = SecretCipher.from_string(old).encrypt_env({"K": "v"})
    cipher = SecretCipher.from_env({ENV_KEYS: f"{new}, {old}"})
    assert cipher.decrypt_env(token)["K"] == "v"
    assert Fernet(new.encode()).decrypt(cipher.encrypt_env({"K": "v"}))  # encrypts with the first key
    assert repr(cipher) == "SecretCipher(keys=2)"


@pytest.mark.parametrize(("environ", "rule"), [({}, "is not set"), ({ENV_KEYS: " , "}, "holds no Fernet key"),
                                               ({ENV_KEYS: "short"}, "key #1 is not")])
def test_missing_or_bad_keys_name_the_variable(environ: dict[str, str], rule: str) -> None:
    with pytest.raises(ConfigError) as info:
        SecretCipher.from_env(environ)
    assert info.value.field == ENV_KEYS
    assert rule in info.value.rule


def test_secret_env_repr_shows_names_only() -> None:
    env = SecretEnv({"TOKEN": "abc123-secret"})
    assert "abc123-secret" not in repr(env)
    assert "abc123-secret" not in f"{env}"
    assert "TOKEN" in repr(env)


def test_non_string_value_is_rejected_naming_the_variable_not_the_value() -> None:
    with pytest.raises(InvalidInputError) as info:
        SecretCipher([Fernet.generate_key()]).encrypt_env({"PORT": 8080})  # type: ignore[dict-item]  # the int is the bad input
    assert info.value.field == "env[PORT]"
    assert "8080" not in str(info.value)
