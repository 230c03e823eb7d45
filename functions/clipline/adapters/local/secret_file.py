"""The local data dir's secret, from which the link-signing and key-hashing keys derive."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


def load_or_create_secret(path: Path) -> bytes:
    """32 random bytes kept in ``path`` (mode 0600), created on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes()
        if len(secret) < 32:
            raise RuntimeError(f"the secret file {path} is damaged; remove it to make a new one") from None
        return secret
    with os.fdopen(descriptor, "wb") as file:
        file.write(secrets.token_bytes(32))
    return path.read_bytes()


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A separate key per purpose, so a link signature can never double as a key hash."""
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()
