"""Local mode's usage plans: token buckets and quota counters kept in the SQLite file, so they survive a restart."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from ...domain import errors
from ...domain.rate_limits import (
    QuotaUsage,
    TokenBucket,
    UsagePlan,
    count_request,
    job_creation_bucket,
    take_token,
)
from ...domain.record_versions import DEFAULT_RETENTION
from .sqlite_database import SqliteDatabase


class SqliteRateLimiter:
    """A RequestLimiter on the local SQLite file: what API Gateway usage plans and the WAF rate rule do in AWS.

    Each request is one ``BEGIN IMMEDIATE`` transaction that reads the state it
    needs, decides, and writes the new state only when the request passes, so
    concurrent requests (threads or processes on the same file) never both take
    the last token and a refused request costs nothing.
    ``job_creations_per_minute`` is the per-address job creation limit.
    ``retention`` is the service's, for the migrations opening the file may run.
    """

    def __init__(
        self,
        path: Path,
        now: Callable[[], datetime],
        *,
        job_creations_per_minute: int,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        self._database = SqliteDatabase(path, retention)
        self._now = now
        self._creation_rate, self._creation_burst = job_creation_bucket(job_creations_per_minute)
        # An address's bucket is full again after this long; its row can go.
        self._idle_address_after = timedelta(seconds=self._creation_burst / self._creation_rate)

    def admit(self, key_id: str, plan: UsagePlan, creating_job_from: str | None = None) -> None:
        """Count one request of ``key_id`` under ``plan``, or refuse it and count nothing.

        Checked in the order AWS applies them: the address's job creations (WAF,
        only when ``creating_job_from`` is given), the quota, then the key's bucket.

        Raises:
            TooManyRequestsError: the address created too many jobs, or the key's bucket is empty.
            QuotaExceededError: the key used its quota for the period.
        """
        now = self._now()
        with self._database.write() as db:
            address_bucket = None
            if creating_job_from is not None:
                subject = f"ip:{creating_job_from}"
                decision = take_token(_bucket(db, subject), self._creation_rate, self._creation_burst, now)
                if not decision.allowed:
                    raise errors.TooManyRequestsError(
                        "too many jobs created from this address; retry later", decision.retry_after_seconds
                    )
                address_bucket = (subject, decision.bucket)
            quota = count_request(_quota_usage(db, key_id), plan.quota, plan.quota_period, now)
            if not quota.allowed:
                raise errors.QuotaExceededError(
                    f"this key's quota of {plan.quota} requests per {plan.quota_period} is used up",
                    quota.retry_after_seconds,
                )
            throttle = take_token(_bucket(db, f"key:{key_id}"), plan.rate_per_second, plan.burst, now)
            if not throttle.allowed:
                raise errors.TooManyRequestsError("too many requests; slow down", throttle.retry_after_seconds)
            _store_bucket(db, f"key:{key_id}", throttle.bucket)
            _store_quota_usage(db, key_id, quota.usage)
            if address_bucket is not None:
                _store_bucket(db, *address_bucket)
                db.execute(
                    "DELETE FROM rate_buckets WHERE subject LIKE 'ip:%' AND updated_at < ?",
                    ((now - self._idle_address_after).isoformat(timespec="microseconds"),),
                )


def _bucket(db: sqlite3.Connection, subject: str) -> TokenBucket | None:
    row = db.execute("SELECT tokens, updated_at FROM rate_buckets WHERE subject = ?", (subject,)).fetchone()
    return TokenBucket(tokens=row[0], updated_at=datetime.fromisoformat(row[1])) if row else None


def _store_bucket(db: sqlite3.Connection, subject: str, bucket: TokenBucket) -> None:
    db.execute(
        "INSERT INTO rate_buckets (subject, tokens, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (subject) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at",
        (subject, bucket.tokens, bucket.updated_at.isoformat(timespec="microseconds")),
    )


def _quota_usage(db: sqlite3.Connection, key_id: str) -> QuotaUsage | None:
    row = db.execute("SELECT period_start, used FROM quota_usage WHERE key_id = ?", (key_id,)).fetchone()
    return QuotaUsage(period_start=datetime.fromisoformat(row[0]), used=row[1]) if row else None


def _store_quota_usage(db: sqlite3.Connection, key_id: str, usage: QuotaUsage) -> None:
    db.execute(
        "INSERT INTO quota_usage (key_id, period_start, used) VALUES (?, ?, ?)"
        " ON CONFLICT (key_id) DO UPDATE SET period_start = excluded.period_start, used = excluded.used",
        (key_id, usage.period_start.isoformat(), usage.used),
    )
