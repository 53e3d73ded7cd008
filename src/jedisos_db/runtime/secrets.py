"""Fernet encryption of MCP server environments (``mcp_servers.env_encrypted``, design §4-2).

Keys come from the environment (``JEDISOS_FERNET_KEYS``: comma-separated urlsafe-base64 Fernet
keys, newest first). :class:`cryptography.fernet.MultiFernet` encrypts with the first key and
decrypts with any of them, so rotation is: put a new key in front, re-encrypt every row
(:meth:`SecretCipher.rotate`), then drop the old key.

Decrypted values are held in :class:`SecretEnv`, whose ``repr``/``str`` show the variable names
only, so a log line or traceback that prints the object never prints a secret.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from jedisos_db.runtime.errors import ConfigError, InvalidInputError, SecretDecryptionError

ENV_KEYS = "JEDISOS_FERNET_KEYS"


class SecretEnv(Mapping[str, str]):
    """Decrypted environment variables. Its repr names the variables, never their values."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"SecretEnv(keys={sorted(self._values)!r})"

    __str__ = __repr__

    def reveal(self) -> dict[str, str]:
        """The plain values, e.g. to pass to a container; the caller owns them from here."""
        return dict(self._values)


class SecretCipher:
    """Encrypts with the first key, decrypts with any (MultiFernet)."""

    __slots__ = ("_fernet", "_key_count")

    def __init__(self, keys: Sequence[str | bytes], *, field: str = ENV_KEYS) -> None:
        if not keys:
            raise ConfigError(field, "holds no Fernet key; generate one with Fernet.generate_key()")
        fernets = []
        for position, key in enumerate(keys):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                # Never echo the key itself, only where it sits in the list.
                raise ConfigError(field, f"key #{position + 1} is not a 32-byte urlsafe-base64 Fernet key") from None
        self._fernet = MultiFernet(fernets)
        self._key_count = len(fernets)

    @classmethod
    def from_string(cls, value: str, *, field: str = ENV_KEYS) -> SecretCipher:
        return cls([part.strip() for part in value.split(",") if part.strip()], field=field)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, var: str = ENV_KEYS) -> SecretCipher:
        value = (os.environ if environ is None else environ).get(var)
        if not value:
            raise ConfigError(var, "is not set; MCP server environments cannot be encrypted without a key")
        return cls.from_string(value, field=var)

    def __repr__(self) -> str:
        return f"SecretCipher(keys={self._key_count})"

    def encrypt_env(self, env: Mapping[str, str]) -> bytes:
        """Encrypt a mapping of environment variables (names and values must be strings)."""
        for name, value in env.items():
            if type(name) is not str or not name:
                raise InvalidInputError("env", "variable names must be non-empty strings")
            if type(value) is not str:
                # Name the variable, never the value.
                raise InvalidInputError(f"env[{name}]", f"must be a string, got {type(value).__name__}")
        return self._fernet.encrypt(json.dumps(dict(env), sort_keys=True).encode())

    def decrypt_env(self, token: bytes) -> SecretEnv:
        try:
            plain = self._fernet.decrypt(token)
        except InvalidToken:
            raise SecretDecryptionError(
                "env_encrypted cannot be decrypted with any configured key (rotated away, or corrupted)"
            ) from None
        return SecretEnv(json.loads(plain))

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt ``token`` under the first (newest) key."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise SecretDecryptionError("env_encrypted cannot be rotated: no configured key decrypts it") from None
