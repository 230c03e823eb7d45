"""Local mode's archive of ended executions' histories, in the SQLite file next to the jobs.

moto's Step Functions engine keeps histories in the memory of the `clipline serve`
process that ran them; the engine host copies each one here when its execution
ends, so `clipline executions show` can read it after that process is gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ...domain.record_versions import DEFAULT_RETENTION
from .sqlite_database import SqliteDatabase


@dataclass(frozen=True)
class ArchivedExecution:
    """An ended execution as the engine left it: its description and its history events, oldest first.

    Timestamps inside ``execution`` and ``events`` are ISO-8601 text, as stored.
    """

    job_id: str
    execution_arn: str
    status: str
    execution: dict[str, Any]
    events: list[dict[str, Any]]
    archived_at: datetime


class SqliteExecutionArchive:
    """Execution histories by job id, kept as long as the job they belong to.

    ``retention`` is the service's, for the migrations opening the file may run.
    """

    def __init__(self, path: Path, now: Callable[[], datetime], *, retention: timedelta = DEFAULT_RETENTION) -> None:
        self._database = SqliteDatabase(path, retention)
        self._now = now

    def save(self, job_id: str, execution: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> None:
        """Store the ended execution of ``job_id`` (its ``describe_execution`` answer) and its history.

        Saving the same job again replaces its record, so a repeated save is harmless.
        The history takes its job's expiry; without a job it is expired at once.

        Raises:
            sqlite3.Error: the file could not be written.
        """
        with self._database.write() as db:
            archived_at = self._now().isoformat()
            db.execute(
                """INSERT INTO execution_histories
                       (job_id, execution_arn, status, execution, events, archived_at, expires_at)
                   VALUES (?, ?, ?, ?, ?, ?, coalesce((SELECT expires_at FROM jobs WHERE id = ?), ?))
                   ON CONFLICT (job_id) DO UPDATE SET execution_arn = excluded.execution_arn, status = excluded.status,
                       execution = excluded.execution, events = excluded.events, archived_at = excluded.archived_at,
                       expires_at = excluded.expires_at""",
                (
                    job_id,
                    execution["executionArn"],
                    execution["status"],
                    _to_json(execution),
                    _to_json(events),
                    archived_at,
                    job_id,
                    archived_at,
                ),
            )

    def find(self, job_id: str) -> ArchivedExecution | None:
        """The archived execution of ``job_id``; None while it runs, or when it was never archived or is gone."""
        with self._database.connection() as db:
            row = db.execute(
                "SELECT execution_arn, status, execution, events, archived_at FROM execution_histories WHERE job_id = ?",
                (job_id,),
            ).fetchone()
        if row is None:
            return None
        execution_arn, status, execution, events, archived_at = row
        return ArchivedExecution(
            job_id=job_id,
            execution_arn=execution_arn,
            status=status,
            execution=json.loads(execution),
            events=json.loads(events),
            archived_at=datetime.fromisoformat(archived_at),
        )

    def list_expired(self, now: datetime, limit: int) -> list[str]:
        """Job ids of the histories expired at ``now``, oldest first: a history lives as long as its job.

        Each history carries its job's expiry, copied when it is saved, so this reads
        an index rather than every history and its job.
        """
        # ISO-8601 UTC timestamps of one format compare correctly as text.
        with self._database.connection() as db:
            rows = db.execute(
                "SELECT job_id FROM execution_histories WHERE expires_at <= ? ORDER BY expires_at LIMIT ?",
                (now.isoformat(), limit),
            ).fetchall()
        return [row[0] for row in rows]

    def remove_expired(self, now: datetime, limit: int, dry_run: bool = False) -> list[str]:
        """Delete up to ``limit`` expired histories (none in a dry run); their job ids."""
        expired = self.list_expired(now, limit)
        if not dry_run:
            for job_id in expired:
                self.delete(job_id)
        return expired

    def delete(self, job_id: str) -> None:
        with self._database.write() as db:
            db.execute("DELETE FROM execution_histories WHERE job_id = ?", (job_id,))


def _to_json(value: Any) -> str:
    return json.dumps(value, default=_timestamp, separators=(",", ":"))


def _timestamp(value: Any) -> str:
    # boto3 gives timestamps as datetimes.
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
