"""API keys for local mode, stored as keyed hashes (HMAC-SHA256), never as the keys themselves."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from ...domain.record_versions import DEFAULT_RETENTION
from .sqlite_database import SqliteDatabase

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
    dir's secret a stolen database reveals nothing usable. Each call is one
    statement, so the file's autocommit connections are enough. ``retention`` is
    the service's, for the migrations opening the file may run.
    """

    def __init__(
        self, path: Path, hashing_key: bytes, now: Callable[[], datetime], *, retention: timedelta = DEFAULT_RETENTION
    ) -> None:
        self._database = SqliteDatabase(path, retention)
        self._hashing_key = hashing_key
        self._now = now

    def _hash(self, key: str) -> str:
        return hmac.new(self._hashing_key, key.encode(), hashlib.sha256).hexdigest()

    def create(self, name: str) -> tuple[str, str]:
        """A new key for ``name``: returns (key id, key). The key is shown only this once."""
        key_id = uuid.uuid4().hex[:12]
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._database.connection() as db:
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
        with self._database.connection() as db:
            row = db.execute("SELECT id, key_hash, revoked_at FROM api_keys WHERE key_hash = ?", (digest,)).fetchone()
            if row is None or not hmac.compare_digest(row[1], digest) or row[2] is not None:
                return None
            db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (self._now().isoformat(), row[0]))
        return row[0]

    def list(self) -> list[ApiKeyRecord]:
        with self._database.connection() as db:
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
        with self._database.connection() as db:
            cursor = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (self._now().isoformat(), key_id),
            )
        return cursor.rowcount > 0
