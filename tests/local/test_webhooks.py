"""Webhooks on the local host: signed, retried, stopped and refused as the API promises, seen by real receivers."""

from __future__ import annotations

import sqlite3
import socket
import time
from datetime import datetime

import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from clipline.composition import SystemClock

from ..webhook_receiver import Receiver
from .conftest import start_service


@pytest.fixture(scope="module")
def hooked(tmp_path_factory):
    running = start_service(
        tmp_path_factory.mktemp("webhooks"), webhook_retry_schedule="0.5,0.5", webhook_timeout_seconds=1
    )
    yield running
    running.service.stop()


def _secret(running) -> str:
    record = next(key for key in running.service.data.key_store(SystemClock()).list() if key.name == "tests")
    return running.service.data.webhook_secrets(SystemClock()).secret_for(record.id)


def _job_with_hook(running, media_server, url: str) -> dict:
    reply = running.client.request(
        "POST", "/api/jobs", {"sourceUrl": media_server.url("long.mp4"), "start": 1, "end": 2, "webhookUrl": url}
    )
    assert reply.status == 202, reply.body
    return running.client.wait(reply.body["id"])


def _wait_for_state(running, job_id: str, state: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = running.client.request("GET", f"/api/jobs/{job_id}").body
        if job["webhook"]["state"] == state:
            return job
        time.sleep(0.05)
    raise AssertionError(f"webhook of {job_id} never became {state}: {job['webhook']}")


def _through_to(running, media_server, receiver: Receiver, state: str, received: int) -> tuple[dict, dict]:
    """A job with ``receiver`` as its webhook, once its webhook is in ``state`` and ``received`` POSTs came."""
    with receiver:
        job = _job_with_hook(running, media_server, receiver.url)
        finished = _wait_for_state(running, job["id"], state)
        receiver.wait_for(received)
    return job, finished


def test_a_500_is_retried_and_every_attempt_is_the_same_signed_message(hooked, media_server):
    receiver = Receiver(500)
    job, finished = _through_to(hooked, media_server, receiver, "delivered", received=2)
    (first_headers, first_body), (headers, body) = receiver.received
    # The same message both times: one id, the same bytes
    assert first_headers["webhook-id"] == headers["webhook-id"] and first_body == body
    event = Verifier(_secret(hooked)).verify(body, headers)
    assert event["type"] == "job.succeeded" and event["data"]["id"] == job["id"]
    assert event["data"]["status"] == "succeeded" and "webhook" not in event["data"]
    # The event's time is the job's end, written as the job view writes its times
    ended = datetime.fromisoformat(event["data"]["updatedAt"])
    assert event["timestamp"].endswith("Z") and abs(datetime.fromisoformat(event["timestamp"]) - ended).total_seconds() < 1
    assert [attempt["status"] for attempt in finished["webhook"]["attempts"]] == [500, 204]


def test_an_attempt_that_times_out_is_retried_with_the_same_message(hooked, media_server):
    # Given a receiver that holds its first answer past the sender's 1 s timeout
    receiver = Receiver(stall_first_seconds=3)
    _, finished = _through_to(hooked, media_server, receiver, "delivered", received=2)
    # Then the timed-out attempt has no status and says why, and the retry delivered the same message
    timed_out, delivered = finished["webhook"]["attempts"]
    assert timed_out["status"] is None and "within 1s" in timed_out["error"]
    assert delivered["status"] == 204
    (first_headers, first_body), (headers, body) = receiver.received
    assert first_headers["webhook-id"] == headers["webhook-id"] and first_body == body
    Verifier(_secret(hooked)).verify(body, headers)


def test_a_410_stops_the_retries(hooked, media_server):
    receiver = Receiver(410)
    try:
        job = _job_with_hook(hooked, media_server, receiver.url)
        finished = _wait_for_state(hooked, job["id"], "failed")
        # Nothing is left to send: the job's outbox row went with the 410's record
        with sqlite3.connect(hooked.data_dir / "clipline.sqlite3") as db:
            assert db.execute("SELECT count(*) FROM webhook_outbox WHERE job_id = ?", (job["id"],)).fetchone() == (0,)
        time.sleep(1.5)  # longer than the whole compressed schedule
    finally:
        receiver.close()
    assert len(receiver.received) == 1
    assert [attempt["status"] for attempt in finished["webhook"]["attempts"]] == [410]


def test_a_redirect_is_not_followed_and_the_schedule_runs_out(hooked, media_server):
    target = Receiver()
    receiver = Receiver(302, 302, 302, location=target.url)
    try:
        job = _job_with_hook(hooked, media_server, receiver.url)
        finished = _wait_for_state(hooked, job["id"], "failed")
    finally:
        receiver.close()
        target.close()
    assert target.received == [] and len(receiver.received) == 3
    assert [attempt["status"] for attempt in finished["webhook"]["attempts"]] == [302, 302, 302]


def test_redelivery_sends_the_same_message_again(hooked, media_server):
    receiver = Receiver()
    try:
        job = _job_with_hook(hooked, media_server, receiver.url)
        _wait_for_state(hooked, job["id"], "delivered")
        reply = hooked.client.request("POST", f"/api/jobs/{job['id']}/webhook/redeliver")
        assert reply.status == 202, reply.body
        receiver.wait_for(2)
    finally:
        receiver.close()
    (first_headers, first_body), (headers, body) = receiver.received
    assert first_headers["webhook-id"] == headers["webhook-id"] and first_body == body
    Verifier(_secret(hooked)).verify(body, headers)


def test_webhook_urls_the_egress_policy_refuses_are_400_at_create(tmp_path, media_server):
    strict = start_service(tmp_path, allow_private_sources=False)
    try:
        for url, code in (
            ("http://example.com/hooks", "INVALID_WEBHOOK_URL"),
            ("https://example.com/hooks/caf\u00e9", "INVALID_WEBHOOK_URL"),
            ("https://127.0.0.1/hooks", "WEBHOOK_URL_NOT_ALLOWED"),
            ("https://169.254.169.254/latest", "WEBHOOK_URL_NOT_ALLOWED"),
        ):
            # A public literal: the source passes without a lookup, so the webhook URL is what is refused
            reply = strict.client.request(
                "POST", "/api/jobs",
                {"sourceUrl": "https://93.184.216.34/a.mp4", "start": 0, "end": 1, "webhookUrl": url},
            )
            assert (reply.status, reply.code) == (400, code), (url, reply.body)
        assert strict.job_count() == 0
    finally:
        strict.service.stop()


@pytest.fixture
def own_hooked(tmp_path):
    """A service of the test's own: tests above start and stop services, and a stopped one uninstalls the graph."""
    running = start_service(tmp_path, webhook_retry_schedule="0.5,0.5", webhook_timeout_seconds=1)
    yield running
    running.service.stop()


def test_a_cancelled_job_announces_job_cancelled_and_a_deleted_ones_pending_message_is_withdrawn(own_hooked, media_server):
    hooked = own_hooked
    with Receiver() as receiver, socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        body = {"sourceUrl": f"http://127.0.0.1:{silent.getsockname()[1]}/never.mp4", "start": 0, "end": 5,
                "webhookUrl": receiver.url}  # fmt: skip
        job_id = hooked.client.request("POST", "/api/jobs", body).body["id"]
        while hooked.client.request("GET", f"/api/jobs/{job_id}").body["stage"] != "probe":
            time.sleep(0.05)
        # When the running job is cancelled
        assert hooked.client.request("DELETE", f"/api/jobs/{job_id}").status == 202
        receiver.wait_for(1)
    # Then its end is announced, signed, as job.cancelled, with the job as it is now
    ((headers, sent),) = receiver.received
    event = Verifier(_secret(hooked)).verify(sent, headers)
    assert event["type"] == "job.cancelled" and event["data"]["status"] == "cancelled"
    assert _wait_for_state(hooked, job_id, "delivered")["events"][-1]["type"] == "jobCancelled"
    # And an ended job whose receiver keeps failing, once deleted, is sent no more
    with Receiver(500, 500, 500) as failing:
        ended = _job_with_hook(hooked, media_server, failing.url)
        failing.wait_for(1)
        assert hooked.client.request("DELETE", f"/api/jobs/{ended['id']}").status == 204
        withdrawn = _wait_for_state(hooked, ended["id"], "withdrawn")
        # An attempt already on its way when the job was deleted lands within the 1 s attempt timeout
        time.sleep(1.1)
        tried = len(failing.received)
        time.sleep(1.5)  # past the rest of the 0.5 s schedule
        assert len(failing.received) == tried and withdrawn["status"] == "deleted"
    redelivery = hooked.client.request("POST", f"/api/jobs/{ended['id']}/webhook/redeliver")
    assert (redelivery.status, redelivery.code) == (410, "JOB_DELETED")
