"""Local mode's webhook signing secrets, one per API key id, in the data dir's SQLite file."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from ...domain.record_versions import DEFAULT_RETENTION
from ...domain.webhooks import new_secret
from .sqlite_database import SqliteDatabase


class SqliteWebhookSecrets:
    """WebhookSecrets in the ``webhook_secrets`` table: made on first use, replaced on rotation.

    The file is the data dir's, readable by its owner only, as the API key hashes are.
    """

    def __init__(self, path: Path, now: Callable[[], datetime], *, retention: timedelta = DEFAULT_RETENTION) -> None:
        self._database = SqliteDatabase(path, retention)
        self._now = now

    def secret_for(self, owner: str) -> str:
        with self._database.connection() as db:
            row = db.execute("SELECT secret FROM webhook_secrets WHERE key_id = ?", (owner,)).fetchone()
        if row is not None:
            return row[0]
        # Made under the write lock, re-read first: two first deliveries must not make two secrets.
        with self._database.write() as db:
            row = db.execute("SELECT secret FROM webhook_secrets WHERE key_id = ?", (owner,)).fetchone()
            if row is not None:
                return row[0]
            secret = new_secret()
            db.execute("INSERT INTO webhook_secrets VALUES (?, ?, ?)", (owner, secret, self._now().isoformat()))
        return secret

    def rotate(self, owner: str) -> str:
        secret = new_secret()
        with self._database.write() as db:
            db.execute("INSERT OR REPLACE INTO webhook_secrets VALUES (?, ?, ?)", (owner, secret, self._now().isoformat()))
        return secret
