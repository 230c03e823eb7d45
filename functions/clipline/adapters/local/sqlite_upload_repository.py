"""Upload records in the data dir's SQLite file, for local mode."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from ...domain.errors import UploadNotFoundError
from ...domain.record_versions import DEFAULT_RETENTION
from ...domain.uploads import Upload
from .sqlite_database import SqliteDatabase


class SqliteUploadRepository:
    """UploadRepository on the ``uploads`` table (migration 8), found by id or by expiry."""

    def __init__(self, path: Path, *, retention: timedelta = DEFAULT_RETENTION) -> None:
        self._database = SqliteDatabase(path, retention)

    def create(self, upload: Upload) -> None:
        with self._database.write() as db:
            db.execute(
                "INSERT INTO uploads (id, owner, expires_at, document) VALUES (?, ?, ?, ?)",
                (upload.id, upload.owner, upload.expires_at.isoformat(), upload.model_dump_json()),
            )

    def get(self, upload_id: str) -> Upload:
        with self._database.connection() as db:
            row = db.execute("SELECT document FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        if row is None:
            raise UploadNotFoundError(f"upload {upload_id} not found")
        return Upload.model_validate_json(row[0])

    def delete(self, upload_id: str) -> None:
        with self._database.write() as db:
            db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))

    def list_expired(self, now: datetime, limit: int) -> list[Upload]:
        # ISO-8601 UTC timestamps of one format compare correctly as text.
        with self._database.connection() as db:
            rows = db.execute(
                "SELECT document FROM uploads WHERE expires_at <= ? ORDER BY expires_at LIMIT ?", (now.isoformat(), limit)
            ).fetchall()
        return [Upload.model_validate_json(row[0]) for row in rows]
