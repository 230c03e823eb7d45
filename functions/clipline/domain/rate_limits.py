"""Usage plans as API Gateway applies them: a token bucket per key and a quota per calendar period.

Pure arithmetic on the stored state; the adapter that keeps the state (local
mode's SqliteRateLimiter) reads it, asks these functions, writes the answer
back and raises the refusal. In AWS, API Gateway usage plans and the WAF
rate rule do the same work, so there is no AWS adapter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, get_args

QuotaPeriod = Literal["day", "week", "month"]
QUOTA_PERIODS: tuple[str, ...] = get_args(QuotaPeriod)

# Float refill arithmetic must not refuse a client that waited exactly as long as Retry-After said.
_EPSILON = 1e-9


@dataclass(frozen=True)
class UsagePlan:
    """A key's limits: ``rate_per_second`` steady, ``burst`` at once, ``quota`` requests per ``quota_period``.

    Raises ValueError on a non-positive limit or an unknown period.
    """

    rate_per_second: float
    burst: int
    quota: int
    quota_period: QuotaPeriod

    def __post_init__(self) -> None:
        if not self.rate_per_second > 0 or self.burst < 1 or self.quota < 1:
            raise ValueError("rate, burst and quota must be positive")
        if self.quota_period not in QUOTA_PERIODS:
            raise ValueError(f"quota period must be one of {', '.join(QUOTA_PERIODS)}")

    def describe(self) -> str:
        return f"rate {self.rate_per_second:g}/s burst {self.burst} quota {self.quota}/{self.quota_period}"


@dataclass(frozen=True)
class TokenBucket:
    """A bucket's stored state: ``tokens`` left as of ``updated_at``."""

    tokens: float
    updated_at: datetime


@dataclass(frozen=True)
class BucketDecision:
    """Whether a request may pass, the bucket to store, and (when refused) whole seconds until one token is back."""

    allowed: bool
    bucket: TokenBucket
    retry_after_seconds: int = 0


def take_token(bucket: TokenBucket | None, rate_per_second: float, burst: int, now: datetime) -> BucketDecision:
    """Refill ``bucket`` at ``rate_per_second`` up to ``burst`` since its last update, then take one token.

    A key never seen starts with a full bucket, as in API Gateway. A clock that
    steps back refills nothing (and is never credited twice). A refused request
    takes nothing; ``retry_after_seconds`` is at least 1.
    """
    if bucket is None:
        tokens, updated_at = float(burst), now
    else:
        elapsed = max(0.0, (now - bucket.updated_at).total_seconds())
        tokens = min(float(burst), bucket.tokens + elapsed * rate_per_second)
        updated_at = max(bucket.updated_at, now)
    if tokens >= 1 - _EPSILON:
        return BucketDecision(True, TokenBucket(max(0.0, tokens - 1), updated_at))
    wait = (1 - tokens) / rate_per_second
    return BucketDecision(False, TokenBucket(tokens, updated_at), max(1, math.ceil(wait - _EPSILON)))


def quota_period_start(now: datetime, period: QuotaPeriod) -> datetime:
    """The start of the calendar period (UTC) ``now`` falls in. Weeks start on Sunday, API Gateway's default offset."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        # weekday(): Monday is 0, so Sunday is 6.
        return day - timedelta(days=(day.weekday() + 1) % 7)
    return day.replace(day=1)


def next_quota_period_start(start: datetime, period: QuotaPeriod) -> datetime:
    """The start of the period after the one beginning at ``start``."""
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


@dataclass(frozen=True)
class QuotaUsage:
    """Requests counted in the period that began at ``period_start``."""

    period_start: datetime
    used: int


@dataclass(frozen=True)
class QuotaDecision:
    """Whether a request may pass, the usage to store, and (when refused) whole seconds until the period resets."""

    allowed: bool
    usage: QuotaUsage
    retry_after_seconds: int = 0


def count_request(usage: QuotaUsage | None, quota: int, period: QuotaPeriod, now: datetime) -> QuotaDecision:
    """Count one request against ``quota`` for the current period; usage from an earlier period no longer counts.

    A refused request is not counted.
    """
    start = quota_period_start(now, period)
    used = usage.used if usage is not None and usage.period_start == start else 0
    if used >= quota:
        reset = (next_quota_period_start(start, period) - now).total_seconds()
        return QuotaDecision(False, QuotaUsage(start, used), max(1, math.ceil(reset)))
    return QuotaDecision(True, QuotaUsage(start, used + 1))


def job_creation_bucket(per_minute: int) -> tuple[float, int]:
    """(rate per second, burst) for "``per_minute`` job creations per client address per minute".

    A full bucket allows ``per_minute`` at once and refills over one minute, so no
    minute-long window sees much more than the limit, like WAF's rate rule.
    """
    return per_minute / 60.0, per_minute


class RequestLimiter(Protocol):
    """Admits or refuses a request under its key's usage plan (and the per-address job creation limit)."""

    def admit(self, key_id: str, plan: UsagePlan, creating_job_from: str | None = None) -> None:
        """Count the request, or refuse it and count nothing.

        ``creating_job_from`` is the client address when the request creates a job.

        Raises:
            TooManyRequestsError: the key's bucket is empty, or the address created too many jobs this minute.
            QuotaExceededError: the key used its quota for the period.
        """
        ...
