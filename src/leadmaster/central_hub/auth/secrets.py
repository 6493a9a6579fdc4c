"""Password hashing (argon2), API-key minting (sha256 of 256 random bits) and the JWT signing secret."""

import hashlib
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

API_KEY_PREFIX = "lmk_"
_hasher = PasswordHasher()
# Verified against when the username is unknown, so that timing does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_api_key() -> tuple[str, str, str]:
    """(key, prefix, sha256 hex): the key is shown once; the prefix identifies it in listings."""
    prefix = API_KEY_PREFIX + secrets.token_hex(4)
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, hash_api_key(key)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (mode 600), whatever the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def load_or_create_secret(data_dir: Path, configured: str | None) -> str:
    """CENTRAL_HUB_SECRET_KEY, else the one kept in the data dir, else a new one written there."""
    if configured:
        return configured
    path = data_dir / "secret-key"
    if path.exists():
        existing = path.read_text().strip()
        if existing:
            return existing
    secret = secrets.token_urlsafe(48)
    write_private(path, secret + "\n")
    return secret
