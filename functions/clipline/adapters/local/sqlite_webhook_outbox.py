"""Local mode's webhook outbox: the due messages the job store writes beside each ended job, claimed for sending."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ...domain.record_versions import DEFAULT_RETENTION
from .sqlite_database import SqliteDatabase


@dataclass(frozen=True)
class DueMessage:
    job_id: str
    message_id: str
    # The row's due time while claimed: it changes once anything writes the row again.
    leased_until: datetime


class SqliteWebhookOutbox:
    """Reads the ``webhook_outbox`` rows SqliteJobRepository writes in each ended job's transaction.

    A claim pushes a row's due time out by ``lease``, so no other sender takes it
    meanwhile; recording the attempt on the job then sets its next due time, or
    removes the row. A sender killed mid-send leaves the row to be claimed again
    when the lease ends: at least once, and once in the normal path.
    """

    def __init__(self, path: Path, *, retention: timedelta = DEFAULT_RETENTION) -> None:
        self._database = SqliteDatabase(path, retention)

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[DueMessage]:
        with self._database.write() as db:
            rows = db.execute(
                "SELECT job_id, message_id FROM webhook_outbox WHERE due_at <= ? ORDER BY due_at LIMIT ?",
                (now.isoformat(), limit),
            ).fetchall()
            leased_until = now + lease
            db.executemany(
                "UPDATE webhook_outbox SET due_at = ? WHERE job_id = ?",
                [(leased_until.isoformat(), job_id) for job_id, _ in rows],
            )
        return [DueMessage(job_id, message_id, leased_until) for job_id, message_id in rows]

    def discard(self, message: DueMessage) -> None:
        """Drop a claimed row whose job no longer has its message due (a safety net: the job's writes keep
        the two in step). A row written again since the claim, by a redelivery, stays."""
        with self._database.write() as db:
            db.execute(
                "DELETE FROM webhook_outbox WHERE job_id = ? AND message_id = ? AND due_at = ?",
                (message.job_id, message.message_id, message.leased_until.isoformat()),
            )

    def next_due(self) -> datetime | None:
        """When the earliest row is due, so the worker can sleep until then."""
        with self._database.connection() as db:
            row = db.execute("SELECT min(due_at) FROM webhook_outbox").fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None
