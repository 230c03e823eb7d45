"""clipline.client against a whole local service on loopback: jobs end to end, paging, cancel, errors and retries."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from clipline.api.schemas import to_wire
from clipline.client import (
    ApiConnectionError,
    Client,
    ClipLineApiError,
    JobNotFoundError,
    JobNotReadyError,
    JobView,
    RateLimitedError,
    WaitTimeoutError,
)
from clipline.client._transport import RetryPolicy, Transport
from clipline.composition import SystemClock
from clipline.domain.rate_limits import UsagePlan
from tests.local.conftest import UNTHROTTLED, RunningService

UNKNOWN_JOB = "0" * 32


def client_of(running: RunningService, **options: object) -> Client:
    return Client(running.service.base_url, running.client.api_key, **options)


def own_key(running: RunningService, name: str, plan: UsagePlan = UNTHROTTLED) -> str:
    """A new key, with no jobs yet: what it lists is what the test made."""
    return running.service.data.key_store(SystemClock()).create(name, plan)[1]


def wait_until_running(client: Client, job_id: str, timeout: float = 15) -> JobView:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get_job(job_id)
        if job.status.value == "running":
            return job
        assert job.status.value == "queued", job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never started running")


def test_a_job_is_created_waited_for_and_its_clip_downloaded(local, media_server, tmp_path):
    client = client_of(local)
    # When a job is created and waited for, with a callback seeing each poll
    created = client.create_job(media_server.url("long.mp4"), "00:00:10", 12.5)
    assert created.status.value == "queued" and created.request.end_seconds == 12.5
    updates: list[JobView] = []
    job = client.wait(created.id, timeout=60, poll_interval=0.2, on_update=updates.append)
    # Then it succeeded, and the last update is the job as returned
    assert job.status.value == "succeeded", job.error
    assert updates[-1] == job and all(update.id == created.id for update in updates)
    # And its result links the clip, which downloads to a complete file
    result = client.result(job.id)
    assert [artifact.name for artifact in result.artifacts] == ["clip"]
    progress: list[tuple[str, int, int | None]] = []
    saved = client.download(result, tmp_path / "out", on_progress=lambda *seen: progress.append(seen))
    assert saved == {"clip": tmp_path / "out" / "clip.mp4"}
    size = saved["clip"].stat().st_size
    assert size > 0 and size == job.clip.size_bytes
    assert progress[-1] == ("clip", size, size)
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["clip.mp4"]
    # And downloading by job id fetches fresh links first
    assert client.download(job.id, tmp_path / "again") == {"clip": tmp_path / "again" / "clip.mp4"}


def test_an_idempotency_key_given_twice_returns_the_first_job(local, media_server):
    client = client_of(local)
    first = client.create_job(media_server.url("long.mp4"), 0, 1, accuracy="keyframe", idempotency_key="client-0001")
    again = client.create_job(media_server.url("long.mp4"), 0, 1, accuracy="keyframe", idempotency_key="client-0001")
    assert again.id == first.id
    # Without one, each call gets a key of its own, so each creates a job
    other = client.create_job(media_server.url("long.mp4"), 0, 1, accuracy="keyframe")
    assert other.id != first.id
    for job_id in (first.id, other.id):
        assert client.wait(job_id, timeout=60, poll_interval=0.2).status.value == "succeeded"


def test_list_jobs_walks_every_page(local, media_server):
    # Given a key with five jobs of its own
    client = Client(local.service.base_url, own_key(local, "lister"))
    created = [client.create_job(media_server.url("long.mp4"), n, n + 1, accuracy="keyframe").id for n in range(5)]
    # When they are listed two to a page
    listed = list(client.list_jobs(page_size=2))
    # Then every job comes once, newest first, across three pages
    assert sorted(job.id for job in listed) == sorted(created)
    assert [job.created_at for job in listed] == sorted((job.created_at for job in listed), reverse=True)
    # And a status filter pages the same way once they have all ended
    for job_id in created:
        assert client.wait(job_id, timeout=60, poll_interval=0.2).status.value == "succeeded"
    assert sorted(job.id for job in client.list_jobs(status="succeeded", page_size=2)) == sorted(created)
    assert list(client.list_jobs(status="failed", page_size=2)) == []


def test_a_running_job_is_cancelled(local, stalled_source_url):
    # Given a job whose source never answers, so it stays running
    client = client_of(local)
    job_id = client.create_job(stalled_source_url, 0, 5).id
    wait_until_running(client, job_id)
    # Then it has no result yet, and says when to ask again
    with pytest.raises(JobNotReadyError) as not_ready:
        client.result(job_id)
    assert (not_ready.value.code, not_ready.value.status, not_ready.value.retry_after) == ("JOB_NOT_READY", 409, 2.0)
    # And waiting for it gives up at the timeout with the job as last seen
    with pytest.raises(WaitTimeoutError) as gave_up:
        client.wait(job_id, timeout=0.5, poll_interval=0.1)
    assert gave_up.value.job.id == job_id and not gave_up.value.job.status.is_terminal
    # When it is cancelled
    cancelled = client.cancel(job_id)
    # Then the 202's job is cancelled, waiting ends at once, and it never gets a result
    assert cancelled is not None and cancelled.status.value == "cancelled"
    assert cancelled.events[-1].type == "jobCancelled"
    assert client.wait(job_id, timeout=5).status.value == "cancelled"
    with pytest.raises(ClipLineApiError) as no_result:
        client.result(job_id)
    assert (no_result.value.code, no_result.value.status) == ("JOB_CANCELLED", 409)
    # And cancelling again is a 204: nothing left to do
    assert client.cancel(job_id) is None


def test_cancel_on_an_ended_job_deletes_its_artifacts(local, media_server):
    client = client_of(local)
    job = client.wait(client.create_job(media_server.url("long.mp4"), 0, 1, accuracy="keyframe").id, poll_interval=0.2)
    assert job.status.value == "succeeded"
    assert client.cancel(job.id) is None
    assert client.get_job(job.id).status.value == "deleted"
    with pytest.raises(ClipLineApiError) as gone:
        client.result(job.id)
    assert (gone.value.code, gone.value.status) == ("JOB_DELETED", 410)


def test_errors_carry_the_envelopes_code_message_and_correlation_id(local):
    client = client_of(local)
    with pytest.raises(JobNotFoundError) as missing:
        client.get_job(UNKNOWN_JOB)
    error = missing.value
    assert (error.code, error.status) == ("JOB_NOT_FOUND", 404)
    assert UNKNOWN_JOB in error.message and len(error.correlation_id) >= 8
    assert "JOB_NOT_FOUND" in str(error) and error.correlation_id in str(error)
    # A refused creation is not retried, and says which rule it broke
    with pytest.raises(ClipLineApiError) as refused:
        client.create_job("http://127.0.0.1:1/a.mp4", 20, 10)
    assert (refused.value.code, refused.value.status) == ("INVALID_TIME_RANGE", 400)
    # A key the service does not know is refused on every route
    with pytest.raises(ClipLineApiError) as forbidden:
        next(Client(local.service.base_url, "cl_not-a-key").list_jobs())
    assert (forbidden.value.code, forbidden.value.status) == ("FORBIDDEN", 403)


def test_an_unreachable_service_is_a_connection_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now; one retry, after a short backoff
    client = Client(f"http://127.0.0.1:{port}", "cl_any", max_retries=1, timeout=2)
    with pytest.raises(ApiConnectionError, match=f"GET http://127.0.0.1:{port}/api/jobs/{UNKNOWN_JOB} failed"):
        client.get_job(UNKNOWN_JOB)


def test_a_throttled_call_is_retried_after_retry_after(local):
    # Given a key allowed one request a second, with no burst beyond it
    plan = UsagePlan(rate_per_second=1, burst=1, quota=1000, quota_period="day")
    key = own_key(local, "throttled", plan)
    patient = Client(local.service.base_url, key, max_retries=2)
    assert list(patient.list_jobs()) == []
    # When it calls again at once, it is refused with Retry-After: 1, waits that long and succeeds
    started = time.monotonic()
    assert list(patient.list_jobs()) == []
    assert time.monotonic() - started >= 0.95
    # And a client that may not retry raises the 429 with its Retry-After
    impatient = Client(local.service.base_url, key, max_retries=0)
    with pytest.raises(RateLimitedError) as limited:
        impatient.get_job(UNKNOWN_JOB)
    error = limited.value
    assert (error.code, error.status, error.retry_after) == ("TOO_MANY_REQUESTS", 429, 1.0) and error.correlation_id


def test_a_retry_after_beyond_the_limit_is_raised_at_once(local):
    plan = UsagePlan(rate_per_second=0.01, burst=1, quota=1000, quota_period="day")
    # Given a key whose next request is allowed 100 s after its first
    client = Client(local.service.base_url, own_key(local, "very-slow", plan), max_retries=3, max_retry_wait=5)
    assert list(client.list_jobs()) == []
    # Then a client that waits at most 5 s raises the 429 at once rather than sleep that long
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as limited:
        list(client.list_jobs())
    assert limited.value.retry_after == 100.0 and time.monotonic() - started < 1


class FlakyApi(ThreadingHTTPServer):
    """Answers ``failures`` requests with 503 and no Retry-After, then ``job`` with 202; records what came."""

    def __init__(self, failures: int, job: dict) -> None:
        super().__init__(("127.0.0.1", 0), _FlakyHandler)
        self.failures, self.job = failures, job
        self.seen: list[tuple[str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FlakyHandler(BaseHTTPRequestHandler):
    server: FlakyApi

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append((self.path, self.headers.get("Idempotency-Key")))
        if len(self.server.seen) <= self.server.failures:
            status = 503
            body = {"error": {"code": "SERVICE_UNAVAILABLE", "message": "try later", "correlationId": "flaky-1"}}
        else:
            status, body = 202, self.server.job
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def a_job(local, media_server) -> dict:
    """A real job as the API shows it, for a stand-in API to answer with."""
    client = client_of(local)
    return to_wire(client.get_job(client.create_job(media_server.url("long.mp4"), 0, 1, accuracy="keyframe").id))


@pytest.fixture
def flaky(a_job) -> Iterator[Callable[[int], FlakyApi]]:
    servers: list[FlakyApi] = []

    def start(failures: int) -> FlakyApi:
        server = FlakyApi(failures, a_job)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_503_is_retried_with_backoff_and_the_same_idempotency_key(flaky, a_job):
    # Given an API that is unavailable twice
    api = flaky(2)
    # When a job is created through it
    job = Client(api.url, "cl_any", max_retries=2).create_job("https://example.com/a.mp4", 0, 1)
    # Then the third attempt's job is returned, and every attempt carried the one key
    assert job.id == a_job["id"]
    assert len(api.seen) == 3 and len({key for _, key in api.seen}) == 1 and api.seen[0][1]


def test_a_503_past_max_retries_is_raised(flaky):
    api = flaky(5)
    with pytest.raises(ClipLineApiError) as unavailable:
        Client(api.url, "cl_any", max_retries=1).create_job("https://example.com/a.mp4", 0, 1)
    assert (unavailable.value.code, unavailable.value.status, unavailable.value.correlation_id) == (
        "SERVICE_UNAVAILABLE", 503, "flaky-1"
    )
    assert len(api.seen) == 2


def test_a_post_without_an_idempotency_key_is_never_repeated(flaky):
    api = flaky(1)
    transport = Transport(api.url, "cl_any", 5, RetryPolicy(max_retries=3), None)
    with pytest.raises(ClipLineApiError) as unavailable:
        transport.call("POST", "/api/jobs", body={"sourceUrl": "https://example.com/a.mp4", "start": 0, "end": 1})
    assert unavailable.value.status == 503 and len(api.seen) == 1


def test_the_python_in_docs_client_md_compiles():
    import re
    from pathlib import Path

    document = (Path(__file__).parents[2] / "docs" / "client.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", document, flags=re.S)
    assert len(blocks) >= 5
    for number, block in enumerate(blocks):
        compile(block, f"docs/client.md python block {number + 1}", "exec")


def test_a_file_is_uploaded_with_progress_then_clipped_and_a_refused_upload_raises(local, media_dir, tmp_path):
    client = client_of(local)
    sample = media_dir / "speech.mp4"
    seen: list[tuple[int, int]] = []
    # When the file is uploaded, and the upload given to create_job as the source
    upload = client.upload_file(sample, on_progress=lambda done, total: seen.append((done, total)))
    assert upload.headers["Content-Type"] == "video/mp4" and upload.source_key.endswith("/speech.mp4")
    assert seen[-1] == (sample.stat().st_size, sample.stat().st_size) and len(seen) >= 1
    job = client.wait(client.create_job(upload, 1, 2).id, timeout=60, poll_interval=0.2)
    # Then the job clipped the upload
    assert job.status.value == "succeeded" and job.request.source_key == upload.source_key
    # And a file that is not audio or video is refused with the API's code
    text = tmp_path / "notes.txt"
    text.write_text("not media")
    with pytest.raises(ClipLineApiError) as refused:
        client.upload_file(text)
    assert refused.value.code == "VALIDATION_FAILED" and refused.value.correlation_id
