"""Metrics at /metrics and correlated logs, through a whole local service."""

from __future__ import annotations

import socket
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clipline.asr.fake import FakeTranscriber
from clipline.composition import SystemClock
from clipline.domain.rate_limits import UsagePlan
from clipline.metric_catalog import CATALOG, MetricKind
from tests.fakes import CapturedLogs
from tests.local.conftest import Client, start_service
from tests.webhook_receiver import Receiver


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    running = start_service(tmp_path_factory.mktemp("observed"), transcriber=FakeTranscriber(), asr_workers=2)
    with CapturedLogs() as logs:
        yield running, logs
    running.service.stop()


def scrape(base_url: str) -> dict[str, list]:
    with urllib.request.urlopen(f"{base_url}/metrics") as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def transcribed(client: Client, url: str, start: float, end: float, correlation_id: str) -> str:
    reply = client.request(
        "POST",
        "/api/jobs",
        {"sourceUrl": url, "start": start, "end": end, "transcribe": True},
        {"x-correlation-id": correlation_id},
    )
    assert reply.status == 202, reply.body
    return reply.body["id"]


@pytest.fixture(scope="module")
def after_jobs(observed, media_server):
    """A transcribed job, the same one again (a cache hit), a job that falls back to
    re-encoding and announces its end by webhook (twice), a job whose source is missing
    (then deleted), an upload link, a job cancelled as it probes, and a key pushed past its throttle."""
    running, _ = observed
    client = running.client
    first = transcribed(client, media_server.url("speech.mp4"), 0, 6, "metrics-1")
    assert client.wait(first)["status"] == "succeeded"
    again = transcribed(client, media_server.url("speech.mp4"), 0, 6, "metrics-2")
    assert client.wait(again)["status"] == "succeeded"
    with Receiver() as receiver:
        fallback = client.request(
            "POST", "/api/jobs", {"sourceUrl": media_server.url("theora.ogv"), "start": 2, "end": 6, "webhookUrl": receiver.url}
        ).body["id"]
        assert client.wait(fallback)["status"] == "succeeded"
        receiver.wait_for(1)
        assert client.request("POST", f"/api/jobs/{fallback}/webhook/redeliver").status == 202
        receiver.wait_for(2)
    missing = client.create(media_server.url("missing.mp4"), 0, 5).body["id"]
    assert client.wait(missing)["status"] == "failed"
    # An upload link
    assert client.request("POST", "/api/uploads", {"fileName": "a.mp4", "contentType": "video/mp4", "sizeBytes": 10}).status == 201
    # The failed job's record deleted, and a job on a source that never answers cancelled as it probes
    assert client.request("DELETE", f"/api/jobs/{missing}").status == 204
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        stuck = client.create(f"http://127.0.0.1:{silent.getsockname()[1]}/never.mp4", 0, 5).body["id"]
        while client.request("GET", f"/api/jobs/{stuck}").body["stage"] != "probe":
            time.sleep(0.05)
        assert client.request("DELETE", f"/api/jobs/{stuck}").status == 202
    _, tight_key = running.service.data.key_store(SystemClock()).create(
        "tight", UsagePlan(rate_per_second=0.1, burst=1, quota=1000, quota_period="day")
    )
    tight = Client(running.service.base_url, tight_key)
    statuses = [tight.request("GET", f"/api/jobs/{first}").status for _ in range(3)]
    assert 429 in statuses
    return running


def test_a_scrape_after_jobs_shows_every_catalog_metric_moving(after_jobs):
    # Given the jobs above
    # When /metrics is scraped
    families = scrape(after_jobs.service.base_url)

    # Then every metric of the catalog is there, and every counter and histogram moved
    for definition in CATALOG:
        family = definition.prometheus_name
        assert family in families, f"{family} missing from /metrics"
        if definition.kind is MetricKind.GAUGE:
            assert [sample.value for sample in families[family]] == [0.0], "the ASR queue is drained"
            continue
        moved = [
            sample for sample in families[family] if sample.name.endswith(("_total", "_count")) and sample.value > 0
        ]
        if definition.name in ("ExpiredObjectsDeleted", "AsrHeartbeatFailures"):
            assert not moved, "nothing expired and no heartbeat failed"
            continue
        assert moved, f"{family} did not move"


def test_metric_values_follow_the_jobs(after_jobs):
    families = scrape(after_jobs.service.base_url)

    def value(family: str, sample_name: str, **labels: str) -> float:
        return sum(
            sample.value
            for sample in families[family]
            if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    # Then, after the jobs above, the counts match what happened
    assert value("clipline_jobs_failed", "clipline_jobs_failed_total", error_code="SOURCE_NOT_FOUND") == 1
    assert value("clipline_asr_cache_hits", "clipline_asr_cache_hits_total") == 1
    assert value("clipline_asr_cache_misses", "clipline_asr_cache_misses_total") == 1
    assert value("clipline_asr_transcriptions", "clipline_asr_transcriptions_total", status="succeeded") == 2
    assert value("clipline_asr_latency_seconds", "clipline_asr_latency_seconds_count", provider="fake") == 1
    assert value("clipline_ffmpeg_fallback", "clipline_ffmpeg_fallback_total") >= 1
    assert value("clipline_job_duration_seconds", "clipline_job_duration_seconds_count", outcome="failed") == 1
    assert value("clipline_job_duration_seconds", "clipline_job_duration_seconds_count", outcome="cancelled") == 1
    assert value("clipline_jobs_cancelled", "clipline_jobs_cancelled_total", stage="probe") == 1
    assert value("clipline_jobs_deleted", "clipline_jobs_deleted_total") == 1
    assert value("clipline_job_duration_seconds", "clipline_job_duration_seconds_count", outcome="succeeded") == 3
    # The five jobs created
    assert value(
        "clipline_api_requests", "clipline_api_requests_total", route="/api/jobs", status_class="2xx"
    ) == 5
    # The webhook job's end, announced and then redelivered: two deliveries, each timed from the job's end
    assert value("clipline_webhook_deliveries", "clipline_webhook_deliveries_total", outcome="delivered") == 2
    assert value("clipline_webhook_latency_seconds", "clipline_webhook_latency_seconds_count") == 2
    assert value("clipline_webhook_redeliveries", "clipline_webhook_redeliveries_total") == 1
    # An upload per clip and per transcript format, each timed
    assert value("clipline_storage_upload_latency_seconds", "clipline_storage_upload_latency_seconds_count") >= 3 + 2 * 4


def test_log_lines_of_concurrent_jobs_carry_their_own_ids(observed, media_server):
    running, logs = observed
    # Given two transcribed jobs run at once, each with its own correlation id
    correlation_ids = ["logs-a", "logs-b"]
    with ThreadPoolExecutor(2) as pool:
        job_ids = list(
            pool.map(
                lambda pair: transcribed(running.client, media_server.url("speech.mp4"), *pair),
                [(0.5, 5.5, correlation_ids[0]), (1, 6, correlation_ids[1])],
            )
        )
    for job_id in job_ids:
        assert running.client.wait(job_id)["status"] == "succeeded"
    lines = logs.lines()

    for job_id, correlation_id in zip(job_ids, correlation_ids):
        # Then the API, every step and the worker logged for the job, all under its correlation id
        of_job = [line for line in lines if line.get("jobId") == job_id]
        assert {line["stage"] for line in of_job} >= {"api", "probe", "clip", "transcribe", "finalize"}
        assert {line["correlationId"] for line in of_job} == {correlation_id}
        # And the worker's lines name the ASR job once it is known
        assert any(line.get("asrJobId") for line in of_job if line["stage"] == "transcribe")
        # And no line of the other job's correlation id names this job
        assert all(line.get("jobId") == job_id for line in lines if line.get("correlationId") == correlation_id)


def test_a_failure_is_logged_once_with_its_code(observed, media_server):
    running, logs = observed
    # Given a job whose source does not exist
    reply = running.client.request(
        "POST", "/api/jobs", {"sourceUrl": media_server.url("gone.mp4"), "start": 0, "end": 5}, {"x-correlation-id": "fails-1"}
    )
    job_id = reply.body["id"]
    assert running.client.wait(job_id)["status"] == "failed"
    # Then exactly one line reports the failure, with its code and cause, under the job's ids
    failures = [line for line in logs.lines() if line.get("jobId") == job_id and line.get("errorCode")]
    assert len(failures) == 1, failures
    assert failures[0]["errorCode"] == "SOURCE_NOT_FOUND" and failures[0]["correlationId"] == "fails-1"
    assert failures[0]["level"] == "WARNING" and "404" in failures[0]["cause"]
