"""Usage-plan arithmetic: the token bucket, calendar quota periods and quota counting."""

from datetime import UTC, datetime, timedelta

import pytest

from clipline.domain.rate_limits import (
    QuotaUsage,
    TokenBucket,
    UsagePlan,
    count_request,
    job_creation_bucket,
    next_quota_period_start,
    quota_period_start,
    take_token,
)

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday


def after(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_new_bucket_starts_full_and_allows_the_burst_at_once():
    # Given a key never seen, rate 1/s and burst 2
    first = take_token(None, 1, 2, T0)
    second = take_token(first.bucket, 1, 2, T0)
    third = take_token(second.bucket, 1, 2, T0)
    # Then two requests at the same instant pass and the third is refused for one second
    assert first.allowed and second.allowed
    assert second.bucket == TokenBucket(0, T0)
    assert not third.allowed and third.retry_after_seconds == 1
    # And the refusal took nothing
    assert third.bucket.tokens == 0


def test_the_bucket_refills_at_the_rate_and_never_past_the_burst():
    empty = TokenBucket(0, T0)
    assert take_token(empty, 2, 5, after(0.5)).allowed  # one token back after half a second at 2/s
    assert not take_token(empty, 2, 5, after(0.4)).allowed
    # A long idle time fills the bucket to the burst only
    assert take_token(empty, 2, 5, after(3600)).bucket.tokens == 4


def test_waiting_exactly_as_long_as_retry_after_says_is_enough():
    # Given a refusal after a partial refill (a third of a token at 1/3 per second)
    refused = take_token(TokenBucket(0, T0), 1 / 3, 1, after(1))
    assert not refused.allowed and refused.retry_after_seconds == 2
    # When the client waits exactly that long, it passes
    assert take_token(refused.bucket, 1 / 3, 1, after(1 + refused.retry_after_seconds)).allowed


def test_retry_after_is_whole_seconds_and_at_least_one():
    assert take_token(TokenBucket(0.99, T0), 100, 10, T0).retry_after_seconds == 1
    assert take_token(TokenBucket(0, T0), 0.1, 1, T0).retry_after_seconds == 10
    assert take_token(TokenBucket(0, T0), 0.3, 1, T0).retry_after_seconds == 4


def test_a_clock_that_steps_back_refills_nothing():
    bucket = TokenBucket(0, T0)
    back = take_token(bucket, 1, 2, after(-30))
    assert not back.allowed and back.bucket.updated_at == T0
    assert take_token(back.bucket, 1, 2, after(1)).allowed


@pytest.mark.parametrize(
    ("now", "period", "start", "next_start"),
    [
        (datetime(2026, 3, 4, 23, 59, 59, tzinfo=UTC), "day", datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC)),
        # Weeks start on Sunday 00:00 UTC (API Gateway's offset 0): Wednesday 4 March belongs to Sunday 1 March
        (T0, "week", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 8, tzinfo=UTC)),
        (datetime(2026, 3, 1, 0, 0, tzinfo=UTC), "week", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 8, tzinfo=UTC)),
        (datetime(2026, 2, 28, 23, 0, tzinfo=UTC), "week", datetime(2026, 2, 22, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),
        (T0, "month", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
        (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), "month", datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_quota_periods_are_calendar_periods_in_utc(now, period, start, next_start):
    assert quota_period_start(now, period) == start
    assert next_quota_period_start(start, period) == next_start


def test_quota_periods_are_computed_in_utc_whatever_the_clock_zone():
    from datetime import timezone

    # 01:00 on 5 March at UTC+2 is still 4 March in UTC
    local_time = datetime(2026, 3, 5, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert quota_period_start(local_time, "day") == datetime(2026, 3, 4, tzinfo=UTC)


def test_the_quota_counts_requests_and_refuses_past_it_until_the_period_resets():
    # Given a quota of 3 per day
    usage = None
    for expected in (1, 2, 3):
        decision = count_request(usage, 3, "day", T0)
        assert decision.allowed and decision.usage.used == expected
        usage = decision.usage
    # When a fourth request comes at noon
    refused = count_request(usage, 3, "day", T0)
    # Then it is refused until midnight UTC, and not counted
    assert not refused.allowed and refused.retry_after_seconds == 12 * 3600
    assert refused.usage == usage
    # And the next day starts from zero
    assert count_request(usage, 3, "day", datetime(2026, 3, 5, tzinfo=UTC)).usage == QuotaUsage(
        datetime(2026, 3, 5, tzinfo=UTC), 1
    )


def test_the_quota_retry_after_is_at_least_one_second():
    usage = QuotaUsage(datetime(2026, 3, 4, tzinfo=UTC), 1)
    last_instant = datetime(2026, 3, 4, 23, 59, 59, 999000, tzinfo=UTC)
    assert count_request(usage, 1, "day", last_instant).retry_after_seconds == 1


def test_job_creations_per_minute_as_a_bucket():
    rate, burst = job_creation_bucket(6)
    assert (rate, burst) == (0.1, 6)


@pytest.mark.parametrize(
    "limits", [(0, 1, 1, "day"), (1, 0, 1, "day"), (1, 1, 0, "day"), (1, 1, 1, "year"), (-1, 1, 1, "week")]
)
def test_a_usage_plan_refuses_impossible_limits(limits):
    with pytest.raises(ValueError):
        UsagePlan(*limits)


def test_a_usage_plan_describes_itself():
    assert UsagePlan(1.5, 3, 100, "week").describe() == "rate 1.5/s burst 3 quota 100/week"
