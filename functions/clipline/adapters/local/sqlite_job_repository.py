"""Jobs in a SQLite file (WAL), for local mode."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Collection

from ...domain.errors import IdempotencyKeyReusedError, JobNotFoundError
from ...domain.job_listing import JobPage, listing_key
from ...domain.jobs import Job, JobChange, JobStatus, apply_change, deleted, with_webhook
from ...domain.ports import IdempotencyClaim
from ...domain.record_versions import DEFAULT_RETENTION
from ...domain.webhooks import Webhook
from .sqlite_database import SqliteDatabase

# Ids asked for in one statement: well below SQLite's cap on a statement's parameters (999 before 3.32).
_IDS_PER_QUERY = 500


class SqliteJobRepository:
    """JobRepository on SQLite; see SqliteDatabase for how threads share the file.

    ``retention`` is the service's; opening an old file dates records that never had an expiry with it.
    """

    def __init__(
        self, path: Path, now: Callable[[], datetime], *, retention: timedelta = DEFAULT_RETENTION
    ) -> None:
        self._database = SqliteDatabase(path, retention)
        self._now = now

    def create(self, job: Job, claim: IdempotencyClaim | None = None) -> Job:
        with self._database.write() as db:
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
                "INSERT INTO jobs (id, owner, status, expires_at, listing_key, document) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.owner,
                    job.status.value,
                    job.expires_at.isoformat(),
                    listing_key(job),
                    job.model_dump_json(),
                ),
            )
        return job

    @staticmethod
    def _read(db: sqlite3.Connection, job_id: str) -> Job | None:
        row = db.execute("SELECT document FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.model_validate_json(row[0]) if row else None

    def get(self, job_id: str) -> Job:
        with self._database.connection() as db:
            job = self._read(db, job_id)
        if job is None:
            raise JobNotFoundError(f"job {job_id} not found")
        return job

    def update(self, job_id: str, change: JobChange) -> Job:
        with self._database.write() as db:
            job = self._read(db, job_id)
            if job is None:
                raise JobNotFoundError(f"job {job_id} not found")
            job = apply_change(job, change, self._now())
            self._write(db, job)
        return job

    def record_webhook(self, job_id: str, webhook: Webhook) -> Job:
        with self._database.write() as db:
            job = self._read(db, job_id)
            if job is None:
                raise JobNotFoundError(f"job {job_id} not found")
            job = with_webhook(job, webhook)
            self._write(db, job)
        return job

    def mark_deleted(self, job_id: str) -> Job:
        with self._database.write() as db:
            job = self._read(db, job_id)
            if job is None:
                raise JobNotFoundError(f"job {job_id} not found")
            job = deleted(job, self._now())
            self._write(db, job)
        return job

    @staticmethod
    def _write(db: sqlite3.Connection, job: Job) -> None:
        """Write ``job`` and, in the same transaction, its row in the webhook outbox: there while its message is due."""
        db.execute(
            "UPDATE jobs SET status = ?, document = ? WHERE id = ?", (job.status.value, job.model_dump_json(), job.id)
        )
        webhook = job.webhook
        if webhook is not None and webhook.is_due and webhook.next_attempt_at is not None:
            db.execute(
                "INSERT OR REPLACE INTO webhook_outbox (job_id, message_id, due_at) VALUES (?, ?, ?)",
                (job.id, webhook.message_id, webhook.next_attempt_at.isoformat()),
            )
        else:
            db.execute("DELETE FROM webhook_outbox WHERE job_id = ?", (job.id,))

    def delete(self, job_id: str) -> None:
        with self._database.write() as db:
            db.execute("DELETE FROM idempotency_claims WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM webhook_outbox WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def list_expired(self, now: datetime, limit: int) -> list[Job]:
        # ISO-8601 UTC timestamps of one format compare correctly as text.
        with self._database.connection() as db:
            rows = db.execute(
                "SELECT document FROM jobs WHERE expires_at <= ? ORDER BY expires_at LIMIT ?", (now.isoformat(), limit)
            ).fetchall()
        return [Job.model_validate_json(row[0]) for row in rows]

    def missing(self, job_ids: Collection[str]) -> set[str]:
        wanted = list(set(job_ids))
        found: set[str] = set()
        with self._database.connection() as db:
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                chunk = wanted[start : start + _IDS_PER_QUERY]
                marks = ", ".join("?" * len(chunk))
                found.update(row[0] for row in db.execute(f"SELECT id FROM jobs WHERE id IN ({marks})", chunk))
        return set(wanted) - found

    def list_owned(self, owner: str, *, status: JobStatus | None, limit: int, after: str | None) -> JobPage:
        # Served by jobs_by_owner or, with a status, jobs_by_owner_and_status; one row more tells whether a page follows.
        conditions, parameters = ["owner = ?"], [owner]
        if status is not None:
            conditions.append("status = ?")
            parameters.append(status.value)
        if after is not None:
            conditions.append("listing_key < ?")
            parameters.append(after)
        with self._database.connection() as db:
            rows = db.execute(
                f"SELECT document FROM jobs WHERE {' AND '.join(conditions)} ORDER BY listing_key DESC LIMIT ?",
                (*parameters, limit + 1),
            ).fetchall()
        jobs = tuple(Job.model_validate_json(row[0]) for row in rows[:limit])
        return JobPage(jobs=jobs, next_after=listing_key(jobs[-1]) if len(rows) > limit else None)

    def list_unfinished(self, limit: int) -> list[Job]:
        with self._database.connection() as db:
            rows = db.execute(
                "SELECT document FROM jobs WHERE status IN (?, ?) LIMIT ?",
                (JobStatus.QUEUED.value, JobStatus.RUNNING.value, limit),
            ).fetchall()
        return [Job.model_validate_json(row[0]) for row in rows]
