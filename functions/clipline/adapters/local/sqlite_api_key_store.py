"""Local mode's API keys and their usage plans, stored as keyed hashes (HMAC-SHA256), never as the keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from ...domain.rate_limits import UsagePlan
from ...domain.record_versions import DEFAULT_RETENTION
from .sqlite_database import SqliteDatabase

KEY_PREFIX = "cl_"
# last_used_at is a hint for people, not an audit log: writing it on every request
# would turn each read into a write, so it is refreshed at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Compared against when no stored hash matched, so a miss costs the same comparison as a hit.
_NO_MATCH = "0" * 64


@dataclass(frozen=True)
class ApiKeyRecord:
    """A key as `clipline keys list` shows it. ``plan`` is None for a key on the service's default plan."""

    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
    plan: UsagePlan | None = None


@dataclass(frozen=True)
class AuthenticatedKey:
    """The live key a request presented. ``plan`` is None for a key on the service's default plan."""

    id: str
    plan: UsagePlan | None


def _plan(rate: float | None, burst: int | None, quota: int | None, period: str | None) -> UsagePlan | None:
    if rate is None or burst is None or quota is None or period is None:
        return None
    return UsagePlan(rate_per_second=rate, burst=burst, quota=quota, quota_period=period)  # type: ignore[arg-type]


class SqliteApiKeyStore:
    """Creates, checks, lists and revokes API keys in the local SQLite file.

    Keys are 256-bit random tokens, so a keyed hash is enough: without the data
    dir's secret a stolen database reveals nothing usable. Each write is one
    statement, so the file's autocommit connections are enough. ``retention`` is
    the service's, for the migrations opening the file may run.

    Finding a key by its hash through the unique index is safe against timing:
    what an index walk could leak is how much of HMAC(secret, guess) matches a
    stored hash, and a caller without the secret cannot choose guesses to move
    that. The final check is ``hmac.compare_digest``, run on a miss too.
    """

    def __init__(
        self, path: Path, hashing_key: bytes, now: Callable[[], datetime], *, retention: timedelta = DEFAULT_RETENTION
    ) -> None:
        self._database = SqliteDatabase(path, retention)
        self._hashing_key = hashing_key
        self._now = now

    def _hash(self, key: str) -> str:
        return hmac.new(self._hashing_key, key.encode(), hashlib.sha256).hexdigest()

    def create(self, name: str, plan: UsagePlan | None = None) -> tuple[str, str]:
        """A new key for ``name`` on ``plan`` (None: the service's default plan): returns (key id, key).

        The key is shown only this once.
        """
        key_id = uuid.uuid4().hex[:12]
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        limits = (plan.rate_per_second, plan.burst, plan.quota, plan.quota_period) if plan else (None,) * 4
        with self._database.connection() as db:
            db.execute(
                "INSERT INTO api_keys (id, name, key_hash, created_at, rate_per_second, burst, quota, quota_period)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key_id, name, self._hash(key), self._now().isoformat(), *limits),
            )
        return key_id, key

    def authenticate(self, key: str | None) -> AuthenticatedKey | None:
        """The live key ``key`` with its plan, or None for a missing, unknown or revoked key.

        Refreshes the key's last_used_at when it is older than LAST_USED_RESOLUTION.
        """
        if not key:
            return None
        digest = self._hash(key)
        with self._database.connection() as db:
            row = db.execute(
                "SELECT id, key_hash, revoked_at, last_used_at, rate_per_second, burst, quota, quota_period"
                " FROM api_keys WHERE key_hash = ?",
                (digest,),
            ).fetchone()
            matches = hmac.compare_digest(row[1] if row else _NO_MATCH, digest)
            if row is None or not matches or row[2] is not None:
                return None
            now = self._now()
            if row[3] is None or now - datetime.fromisoformat(row[3]) >= LAST_USED_RESOLUTION:
                db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now.isoformat(), row[0]))
        return AuthenticatedKey(id=row[0], plan=_plan(*row[4:8]))

    def list(self) -> list[ApiKeyRecord]:
        with self._database.connection() as db:
            rows = db.execute(
                "SELECT id, name, created_at, last_used_at, revoked_at, rate_per_second, burst, quota, quota_period"
                " FROM api_keys ORDER BY created_at"
            ).fetchall()
        return [
            ApiKeyRecord(
                id=row[0],
                name=row[1],
                created_at=datetime.fromisoformat(row[2]),
                last_used_at=datetime.fromisoformat(row[3]) if row[3] else None,
                revoked=row[4] is not None,
                plan=_plan(*row[5:9]),
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
