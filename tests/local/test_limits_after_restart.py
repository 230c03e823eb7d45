"""Usage-plan counters are kept in the data dir, so restarting `clipline serve` does not reset them."""

from clipline.composition import SystemClock
from clipline.domain.rate_limits import UsagePlan
from tests.local.conftest import Client, start_service


def test_a_used_up_quota_stays_used_up_after_a_restart(tmp_path):
    # Given a key with a quota of 2 a day that has used it
    first = start_service(tmp_path)
    try:
        _, key = first.service.data.key_store(SystemClock()).create(
            "restarted", UsagePlan(rate_per_second=100, burst=100, quota=2, quota_period="day")
        )
        client = Client(first.service.base_url, key)
        assert [client.request("GET", "/api/jobs/" + "0" * 32).code for _ in range(3)] == [
            "JOB_NOT_FOUND", "JOB_NOT_FOUND", "QUOTA_EXCEEDED"
        ]  # fmt: skip
    finally:
        first.service.stop()
    # When the service is stopped and a new one starts on the same data dir
    second = start_service(tmp_path)
    try:
        assert second.data_dir == first.data_dir
        # Then the key's quota is still used up
        reply = Client(second.service.base_url, key).request("GET", "/api/jobs/" + "0" * 32)
        assert reply.status == 429 and reply.code == "QUOTA_EXCEEDED" and int(reply.headers["Retry-After"]) >= 1
    finally:
        second.service.stop()
