"""API keys, usage plans and the per-address job creation limit, over real HTTP through the local gateway."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from clipline.composition import SystemClock
from clipline.domain.rate_limits import UsagePlan
from tests.local.conftest import Client, start_service

SOME_JOB = "0" * 32
ROUTES = [("POST", "/api/jobs"), ("GET", f"/api/jobs/{SOME_JOB}"), ("GET", f"/api/jobs/{SOME_JOB}/result")]


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    running = start_service(
        tmp_path_factory.mktemp("gated"), job_creations_per_ip_per_minute=2, key_rate_per_second=0.5, key_burst=5
    )
    yield running
    running.service.stop()


def client_with_plan(running, name, plan=None) -> tuple[str, Client]:
    key_id, key = running.service.data.key_store(SystemClock()).create(name, plan)
    return key_id, Client(running.service.base_url, key)


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("api_key", [None, "cl_unknown-key", ""], ids=["missing", "unknown", "empty"])
def test_every_route_needs_a_valid_key(gated, method, path, api_key):
    reply = Client(gated.service.base_url, None).request(
        method, path, {"sourceUrl": "https://example.com/a.mp4", "start": 0, "end": 1},
        headers={"x-correlation-id": "no-key-1", **({"x-api-key": api_key} if api_key is not None else {})},
    )  # fmt: skip
    assert reply.status == 403
    assert reply.body == {"error": {"code": "FORBIDDEN", "message": reply.body["error"]["message"], "correlationId": "no-key-1"}}


def test_health_needs_no_key(gated):
    assert Client(gated.service.base_url, None).request("GET", "/health").body == {"status": "ok"}


def test_a_revoked_key_is_refused_on_its_next_request(gated):
    key_id, client = client_with_plan(gated, "revoked-soon")
    assert client.request("GET", f"/api/jobs/{SOME_JOB}").code == "JOB_NOT_FOUND"
    gated.service.data.key_store(SystemClock()).revoke(key_id)
    for method, path in ROUTES:
        assert client.request(method, path, {}).code == "FORBIDDEN"


def test_a_malformed_job_id_is_an_unknown_job(gated):
    for path in ("/api/jobs/not-a-job", "/api/jobs/" + "A" * 32 + "/result", "/api/jobs/%20" + "0" * 31):
        reply = gated.client.request("GET", path)
        assert reply.status == 404 and reply.code == "JOB_NOT_FOUND", (path, reply.body)


def test_the_token_bucket_refuses_the_third_quick_request_until_retry_after(gated):
    # Given a key on a plan of 1 request per second with a burst of 2
    _, client = client_with_plan(gated, "slow", UsagePlan(rate_per_second=1, burst=2, quota=1000, quota_period="day"))
    # When it sends three requests at once
    replies = [client.request("GET", f"/api/jobs/{SOME_JOB}") for _ in range(3)]
    # Then two pass the gateway and the third is refused with Retry-After in whole seconds
    assert [reply.code for reply in replies] == ["JOB_NOT_FOUND", "JOB_NOT_FOUND", "TOO_MANY_REQUESTS"]
    refused = replies[2]
    assert refused.status == 429 and refused.headers["Retry-After"] == "1"
    assert refused.body["error"]["correlationId"]
    # And once it has waited that long it passes again
    time.sleep(int(refused.headers["Retry-After"]))
    assert client.request("GET", f"/api/jobs/{SOME_JOB}").code == "JOB_NOT_FOUND"


def test_the_quota_refuses_the_fourth_request_until_the_day_ends(gated):
    # Given a key with a quota of 3 requests a day
    _, client = client_with_plan(gated, "small", UsagePlan(rate_per_second=100, burst=100, quota=3, quota_period="day"))
    for _ in range(3):
        assert client.request("GET", f"/api/jobs/{SOME_JOB}").code == "JOB_NOT_FOUND"
    # When it sends a fourth
    refused = client.request("GET", f"/api/jobs/{SOME_JOB}")
    # Then it is refused until midnight UTC
    assert refused.status == 429 and refused.code == "QUOTA_EXCEEDED"
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    assert abs(int(refused.headers["Retry-After"]) - (midnight - now).total_seconds()) <= 5
    # And other keys are not affected
    assert gated.client.request("GET", f"/api/jobs/{SOME_JOB}").code == "JOB_NOT_FOUND"


def test_keys_without_a_plan_get_the_service_default(gated):
    # Given a key created without a plan, on a service whose default is a burst of 5 at 0.5/s
    _, client = client_with_plan(gated, "default-plan")
    # When it sends six requests at once, then the sixth is refused
    codes = [client.request("GET", f"/api/jobs/{SOME_JOB}").code for _ in range(6)]
    assert codes == ["JOB_NOT_FOUND"] * 5 + ["TOO_MANY_REQUESTS"]


def test_job_creations_are_limited_per_client_address(gated):
    # Given a service allowing 2 job creations per address per minute, and two keys on the same address
    _, other = client_with_plan(gated, "same-address")
    url = "http://127.0.0.1:9/a.mp4"  # creation is all this test needs; the jobs may fail later
    # When three jobs are created from that address
    first = gated.client.create(url, 0, 1)
    second = other.create(url, 0, 1)
    third = gated.client.create(url, 0, 1)
    # Then the third is refused, whichever key it comes with, with Retry-After
    assert (first.status, second.status) == (202, 202), (first.body, second.body)
    assert third.status == 429 and third.code == "TOO_MANY_REQUESTS"
    assert 1 <= int(third.headers["Retry-After"]) <= 30
    # And the same key may still read its jobs
    assert gated.client.request("GET", f"/api/jobs/{first.body['id']}").status == 200
