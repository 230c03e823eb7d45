"""Local mode's usage plans in SQLite: token buckets and quotas, kept across restarts, atomic across threads."""

import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import pytest

from clipline.adapters.local.sqlite_api_key_store import LAST_USED_RESOLUTION, SqliteApiKeyStore
from clipline.adapters.local.sqlite_rate_limiter import SqliteRateLimiter
from clipline.domain.errors import QuotaExceededError, TooManyRequestsError
from clipline.domain.rate_limits import UsagePlan
from tests.fakes import FixedClock

NOON = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
GENEROUS = UsagePlan(rate_per_second=1000, burst=1000, quota=10**6, quota_period="day")


@pytest.fixture
def clock():
    return FixedClock(NOON)


def limiter_on(path, clock, per_minute=60):
    return SqliteRateLimiter(path, clock.now, job_creations_per_minute=per_minute)


def test_the_burst_passes_then_the_bucket_refuses_with_retry_after(tmp_path, clock):
    limiter = limiter_on(tmp_path / "db.sqlite3", clock)
    plan = UsagePlan(rate_per_second=1, burst=2, quota=100, quota_period="day")
    limiter.admit("k1", plan)
    limiter.admit("k1", plan)
    with pytest.raises(TooManyRequestsError) as refused:
        limiter.admit("k1", plan)
    assert refused.value.code == "TOO_MANY_REQUESTS" and refused.value.retry_after_seconds == 1
    # Another key has its own bucket
    limiter.admit("k2", plan)
    # And after Retry-After the key passes again
    clock.advance(seconds=1)
    limiter.admit("k1", plan)


def test_the_quota_refuses_until_the_next_utc_day(tmp_path, clock):
    limiter = limiter_on(tmp_path / "db.sqlite3", clock)
    plan = UsagePlan(rate_per_second=100, burst=100, quota=3, quota_period="day")
    for _ in range(3):
        limiter.admit("k1", plan)
    with pytest.raises(QuotaExceededError) as refused:
        limiter.admit("k1", plan)
    assert refused.value.code == "QUOTA_EXCEEDED" and refused.value.retry_after_seconds == 12 * 3600
    clock.advance(hours=12)
    limiter.admit("k1", plan)


def test_counters_survive_a_new_limiter_on_the_same_file(tmp_path, clock):
    # Given a key that used its quota and its bucket
    plan = UsagePlan(rate_per_second=0.001, burst=2, quota=2, quota_period="week")
    first = limiter_on(tmp_path / "db.sqlite3", clock)
    first.admit("k1", plan)
    first.admit("k1", plan)
    # When the service restarts (a new limiter on the same file)
    second = limiter_on(tmp_path / "db.sqlite3", clock)
    # Then the quota is still used up
    with pytest.raises(QuotaExceededError):
        second.admit("k1", plan)
    # And so is the bucket, once the quota is out of the way
    with pytest.raises(TooManyRequestsError) as refused:
        second.admit("k1", UsagePlan(rate_per_second=0.001, burst=2, quota=100, quota_period="week"))
    assert type(refused.value) is TooManyRequestsError and refused.value.retry_after_seconds == 1000


def test_a_refused_request_counts_nothing(tmp_path, clock):
    limiter = limiter_on(tmp_path / "db.sqlite3", clock)
    plan = UsagePlan(rate_per_second=1, burst=1, quota=2, quota_period="day")
    limiter.admit("k1", plan)
    for _ in range(5):
        with pytest.raises(TooManyRequestsError):
            limiter.admit("k1", plan)
    # The throttled requests used no quota: one more passes once the bucket refills
    clock.advance(seconds=1)
    limiter.admit("k1", plan)
    clock.advance(seconds=1)
    with pytest.raises(QuotaExceededError):
        limiter.admit("k1", plan)


def test_job_creations_are_limited_per_address_across_keys(tmp_path, clock):
    limiter = limiter_on(tmp_path / "db.sqlite3", clock, per_minute=2)
    limiter.admit("k1", GENEROUS, creating_job_from="192.0.2.1")
    limiter.admit("k2", GENEROUS, creating_job_from="192.0.2.1")
    with pytest.raises(TooManyRequestsError) as refused:
        limiter.admit("k3", GENEROUS, creating_job_from="192.0.2.1")
    # Two per minute: one creation comes back every 30 s
    assert refused.value.retry_after_seconds == 30
    # Other addresses, and requests that create nothing, are not held back
    limiter.admit("k1", GENEROUS, creating_job_from="192.0.2.2")
    limiter.admit("k1", GENEROUS)
    clock.advance(seconds=30)
    limiter.admit("k3", GENEROUS, creating_job_from="192.0.2.1")


def test_idle_address_buckets_are_forgotten(tmp_path, clock):
    path = tmp_path / "db.sqlite3"
    limiter = limiter_on(path, clock, per_minute=2)
    limiter.admit("k1", GENEROUS, creating_job_from="192.0.2.1")
    clock.advance(minutes=5)
    limiter.admit("k1", GENEROUS, creating_job_from="192.0.2.2")
    with sqlite3.connect(path) as db:
        subjects = {row[0] for row in db.execute("SELECT subject FROM rate_buckets")}
    assert subjects == {"key:k1", "ip:192.0.2.2"}


def test_concurrent_requests_never_share_a_token(tmp_path, clock):
    # Given a key with a burst of 5 and (at a frozen clock) no refill
    path = tmp_path / "db.sqlite3"
    plan = UsagePlan(rate_per_second=1, burst=5, quota=100, quota_period="day")
    limiter_on(path, clock)
    start = threading.Barrier(16)
    outcomes = []

    def request():
        limiter = limiter_on(path, clock)
        start.wait()
        try:
            limiter.admit("k1", plan)
            outcomes.append("passed")
        except TooManyRequestsError:
            outcomes.append("refused")

    threads = [threading.Thread(target=request) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly the burst passed
    assert outcomes.count("passed") == 5 and outcomes.count("refused") == 11


def test_last_used_is_written_at_most_once_a_minute(tmp_path, clock):
    path = tmp_path / "db.sqlite3"
    keys = SqliteApiKeyStore(path, b"k" * 32, clock.now)
    _, key = keys.create("dev", UsagePlan(rate_per_second=2, burst=4, quota=50, quota_period="month"))
    assert keys.authenticate(key).plan == UsagePlan(rate_per_second=2, burst=4, quota=50, quota_period="month")
    assert keys.list()[0].last_used_at == NOON
    clock.advance(seconds=30)
    keys.authenticate(key)
    assert keys.list()[0].last_used_at == NOON
    clock.advance(seconds=LAST_USED_RESOLUTION.total_seconds())
    keys.authenticate(key)
    assert keys.list()[0].last_used_at == NOON + timedelta(seconds=30) + LAST_USED_RESOLUTION


def test_unknown_and_revoked_keys_do_not_authenticate(tmp_path, clock):
    keys = SqliteApiKeyStore(tmp_path / "db.sqlite3", b"k" * 32, clock.now)
    key_id, key = keys.create("dev")
    assert keys.authenticate(key).plan is None
    assert keys.authenticate(None) is None and keys.authenticate("") is None
    assert keys.authenticate(key + "x") is None
    keys.revoke(key_id)
    assert keys.authenticate(key) is None
