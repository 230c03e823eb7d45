"""API keys for local mode, stored as keyed hashes (HMAC-SHA256), never as the keys themselves."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import uuid
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
"""
KEY_PREFIX = "cl_"


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


class SqliteApiKeyStore:
    """Creates, checks, lists and revokes API keys in the local SQLite file.

    Keys are 256-bit random tokens, so a keyed hash is enough: without the data
    dir's secret a stolen database reveals nothing usable.
    """

    def __init__(self, path: Path, hashing_key: bytes, now: Callable[[], datetime]) -> None:
        self._path = path
        self._hashing_key = hashing_key
        self._now = now
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, timeout=30)
        db.execute("PRAGMA busy_timeout=30000")
        return db

    def _hash(self, key: str) -> str:
        return hmac.new(self._hashing_key, key.encode(), hashlib.sha256).hexdigest()

    def create(self, name: str) -> tuple[str, str]:
        """A new key for ``name``: returns (key id, key). The key is shown only this once."""
        key_id = uuid.uuid4().hex[:12]
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT INTO api_keys (id, name, key_hash, created_at) VALUES (?, ?, ?, ?)",
                (key_id, name, self._hash(key), self._now().isoformat()),
            )
        return key_id, key

    def authenticate(self, key: str | None) -> str | None:
        """The id of the live key ``key``, or None for a missing, unknown or revoked key."""
        if not key:
            return None
        digest = self._hash(key)
        with closing(self._connect()) as db, db:
            row = db.execute("SELECT id, key_hash, revoked_at FROM api_keys WHERE key_hash = ?", (digest,)).fetchone()
            if row is None or not hmac.compare_digest(row[1], digest) or row[2] is not None:
                return None
            db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (self._now().isoformat(), row[0]))
        return row[0]

    def list(self) -> list[ApiKeyRecord]:
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT id, name, created_at, last_used_at, revoked_at FROM api_keys ORDER BY created_at"
            ).fetchall()
        return [
            ApiKeyRecord(
                id=row[0],
                name=row[1],
                created_at=datetime.fromisoformat(row[2]),
                last_used_at=datetime.fromisoformat(row[3]) if row[3] else None,
                revoked=row[4] is not None,
            )
            for row in rows
        ]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key at once; False if there is no such key."""
        with closing(self._connect()) as db, db:
            cursor = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (self._now().isoformat(), key_id),
            )
        return cursor.rowcount > 0
