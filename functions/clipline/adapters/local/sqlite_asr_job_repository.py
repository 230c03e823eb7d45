"""ASR records and the transcript cache in SQLite, for local mode."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from ...domain.asr_jobs import AsrJob, AsrStatus
from ...domain.errors import AsrJobNotFoundError
from ...domain.jobs import JobError
from ...domain.record_versions import DEFAULT_RETENTION
from .sqlite_database import SqliteDatabase

class SqliteAsrJobRepository:
    """AsrJobRepository on SQLite. Each record is a JSON document beside the columns the index needs.

    The transcript cache's unique partial index is in sqlite_migrations. ``retention``
    is the service's; opening an old file dates records that never had an expiry with it.
    """

    def __init__(self, path: Path, *, retention: timedelta = DEFAULT_RETENTION) -> None:
        self._database = SqliteDatabase(path, retention)

    def create(self, record: AsrJob) -> None:
        with self._database.write() as db:
            db.execute(
                "INSERT INTO asr_jobs (id, job_id, media_hash, model_version, status, expires_at, document)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.job_id,
                    record.media_hash,
                    record.model_version,
                    record.status.value,
                    record.expires_at.isoformat(),
                    record.model_dump_json(),
                ),
            )

    @staticmethod
    def _read(db: sqlite3.Connection, asr_job_id: str) -> AsrJob:
        row = db.execute("SELECT document FROM asr_jobs WHERE id = ?", (asr_job_id,)).fetchone()
        if row is None:
            raise AsrJobNotFoundError(f"ASR job {asr_job_id} not found")
        return AsrJob.model_validate_json(row[0])

    @staticmethod
    def _save(db: sqlite3.Connection, record: AsrJob) -> None:
        db.execute(
            "UPDATE asr_jobs SET status = ?, expires_at = ?, document = ? WHERE id = ?",
            (record.status.value, record.expires_at.isoformat(), record.model_dump_json(), record.id),
        )

    def get(self, asr_job_id: str) -> AsrJob:
        with self._database.connection() as db:
            return self._read(db, asr_job_id)

    def heartbeat(self, asr_job_id: str, at: datetime) -> None:
        with self._database.write() as db:
            record = self._read(db, asr_job_id)
            # A late heartbeat must not undo a finish.
            if record.status is AsrStatus.RUNNING:
                self._save(db, record.model_copy(update={"last_heartbeat_at": at, "updated_at": at}))

    @staticmethod
    def _cached(db: sqlite3.Connection, media_hash: str, model_version: str) -> AsrJob | None:
        row = db.execute(
            "SELECT document FROM asr_jobs WHERE media_hash = ? AND model_version = ? AND status = 'done'",
            (media_hash, model_version),
        ).fetchone()
        return AsrJob.model_validate_json(row[0]) if row else None

    def find_cached(self, media_hash: str, model_version: str) -> AsrJob | None:
        with self._database.connection() as db:
            return self._cached(db, media_hash, model_version)

    def finish(self, asr_job_id: str, transcript_key: str, at: datetime) -> AsrJob:
        with self._database.write() as db:
            record = self._read(db, asr_job_id)
            done = record.finished(transcript_key, at)
            try:
                self._save(db, done)
                return done
            except sqlite3.IntegrityError:
                pass  # another worker finished this audio first
            winner = self._cached(db, record.media_hash, record.model_version)
            assert winner is not None  # the unique index just named it
            self._save(db, record.superseded_by(winner, at))
            return winner

    def extend(self, asr_job_id: str, expires_at: datetime) -> None:
        with self._database.write() as db:
            self._save(db, self._read(db, asr_job_id).kept_until(expires_at))

    def fail(self, asr_job_id: str, error: JobError, at: datetime) -> None:
        with self._database.write() as db:
            record = self._read(db, asr_job_id)
            if record.status is AsrStatus.RUNNING:
                self._save(db, record.failed(error, at))

    def list_expired(self, now: datetime, limit: int) -> list[AsrJob]:
        with self._database.connection() as db:
            rows = db.execute(
                "SELECT document FROM asr_jobs WHERE expires_at <= ? ORDER BY expires_at LIMIT ?",
                (now.isoformat(), limit),
            ).fetchall()
        return [AsrJob.model_validate_json(row[0]) for row in rows]

    def delete(self, asr_job_id: str) -> None:
        with self._database.write() as db:
            db.execute("DELETE FROM asr_jobs WHERE id = ?", (asr_job_id,))
