"""Jobs in a SQLite file (WAL), for local mode."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from ...domain.errors import IdempotencyKeyReusedError, JobNotFoundError
from ...domain.jobs import Job, JobChange, apply_change
from ...domain.ports import IdempotencyClaim

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency_claims (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    job_id TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (owner, key)
);
"""


class SqliteJobRepository:
    """JobRepository on SQLite.

    Each call opens its own connection, so handler threads never share one; writes
    run in ``BEGIN IMMEDIATE`` transactions, which serialise read-modify-write.
    """

    def __init__(self, path: Path, now: Callable[[], datetime]) -> None:
        self._path = path
        self._now = now
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def create(self, job: Job, claim: IdempotencyClaim | None = None) -> Job:
        with self._write() as db:
            if claim is not None:
                row = db.execute(
                    "SELECT request_hash, job_id, expires_at FROM idempotency_claims WHERE owner = ? AND key = ?",
                    (claim.owner, claim.key),
                ).fetchone()
                if row is not None and datetime.fromisoformat(row[2]) > self._now():
                    if row[0] != claim.request_hash:
                        raise IdempotencyKeyReusedError(
                            "this Idempotency-Key was already used with a different request"
                        )
                    existing = self._read(db, row[1])
                    if existing is not None:
                        return existing
                db.execute(
                    "INSERT OR REPLACE INTO idempotency_claims VALUES (?, ?, ?, ?, ?)",
                    (claim.owner, claim.key, claim.request_hash, job.id, claim.expires_at.isoformat()),
                )
            db.execute(
                "INSERT INTO jobs (id, owner, status, expires_at, document) VALUES (?, ?, ?, ?, ?)",
                (job.id, job.owner, job.status.value, job.expires_at.isoformat(), job.model_dump_json()),
            )
        return job

    @staticmethod
    def _read(db: sqlite3.Connection, job_id: str) -> Job | None:
        row = db.execute("SELECT document FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.model_validate_json(row[0]) if row else None

    def get(self, job_id: str) -> Job:
        with self._connection() as db:
            job = self._read(db, job_id)
        if job is None:
            raise JobNotFoundError(f"job {job_id} not found")
        return job

    def update(self, job_id: str, change: JobChange) -> Job:
        with self._write() as db:
            job = self._read(db, job_id)
            if job is None:
                raise JobNotFoundError(f"job {job_id} not found")
            job = apply_change(job, change, self._now())
            db.execute(
                "UPDATE jobs SET status = ?, document = ? WHERE id = ?",
                (job.status.value, job.model_dump_json(), job_id),
            )
        return job

    def delete(self, job_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM idempotency_claims WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
