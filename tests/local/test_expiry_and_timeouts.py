"""Short retention and a short global timeout: 410 for expired results, JOB_TIMEOUT for stuck executions."""

import time
import urllib.error
import urllib.request

import pytest

from tests.local.conftest import start_service

RETENTION_SECONDS = 4


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory):
    running = start_service(
        tmp_path_factory.mktemp("short"), retention_days=RETENTION_SECONDS / 86400, job_timeout_seconds=2
    )
    yield running
    running.service.stop()


def test_expired_result_is_410_and_its_links_stop_working(short_lived, media_server):
    # Given a finished job and a link to its clip
    job = short_lived.client.wait(short_lived.client.create(media_server.url("long.mp4"), 2, 3).body["id"])
    assert job["status"] == "succeeded", job
    result = short_lived.client.request("GET", f"/api/jobs/{job['id']}/result").body
    link = result["artifacts"][0]
    # The link never outlives the job
    assert link["expiresAt"] <= job["expiresAt"]
    # When the retention passes
    time.sleep(max(0.0, _seconds_until(job["expiresAt"])) + 0.5)
    # Then the result is gone with 410, the link is refused, and the status still answers
    expired = short_lived.client.request("GET", f"/api/jobs/{job['id']}/result")
    assert expired.status == 410 and expired.code == "RESULT_EXPIRED"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(link["url"])
    assert refused.value.code == 403
    assert short_lived.client.request("GET", f"/api/jobs/{job['id']}").status == 200


def _seconds_until(iso: str) -> float:
    from datetime import UTC, datetime

    return (datetime.fromisoformat(iso) - datetime.now(UTC)).total_seconds()


def test_global_timeout_fails_a_stuck_job_with_job_timeout(short_lived, stalled_source_url):
    # Given a source that accepts the connection and never answers
    created = short_lived.client.create(stalled_source_url, 0, 5)
    # When the state machine's 2 s global timeout passes
    job = short_lived.client.wait(created.body["id"], timeout=20)
    # Then the execution's end is recorded on the job with its own code
    assert job["status"] == "failed" and job["error"]["code"] == "JOB_TIMEOUT", job
