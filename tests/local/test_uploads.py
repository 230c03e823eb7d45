"""Uploads on the local host: a signed PUT to the gateway, then jobs that clip the upload from storage."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest

from clipline.composition import SystemClock, services
from clipline.domain.cleanup import clean_up
from tests.local.conftest import UNTHROTTLED, Client, RunningService, start_service


def put(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    """One PUT with exactly ``headers`` (http.client adds no Content-Type or Content-Length of its own here)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.putrequest("PUT", f"{parts.path}?{parts.query}", skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        try:
            connection.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the body was read, as S3 may do too
        response = connection.getresponse()
        payload = response.read()
        return response.status, json.loads(payload) if payload else {}
    finally:
        connection.close()


def upload_link(client: Client, size: int, content_type: str = "video/mp4", name: str = "talk.mp4") -> dict:
    reply = client.request("POST", "/api/uploads", {"fileName": name, "contentType": content_type, "sizeBytes": size})
    assert reply.status == 201, reply.body
    return reply.body


def stored(running: RunningService, link: dict) -> bool:
    return (running.service.data.artifacts / link["sourceKey"]).exists()


@pytest.fixture(scope="module")
def sample(media_dir) -> bytes:
    return (media_dir / "speech.mp4").read_bytes()


def test_an_upload_then_a_frame_accurate_clip_of_it(local, sample):
    link = upload_link(local.client, len(sample))
    assert link["method"] == "PUT" and link["headers"] == {"Content-Type": "video/mp4", "Content-Length": str(len(sample))}
    assert link["sourceKey"].startswith(f"uploads/{link['uploadId']}/") and link["sourceKey"].endswith("/talk.mp4")
    assert put(link["url"], sample, link["headers"])[0] == 200
    reply = local.client.request("POST", "/api/jobs", {"sourceKey": link["sourceKey"], "start": 2, "end": 5})
    assert reply.status == 202, reply.body
    assert (reply.body["request"]["sourceKey"], reply.body["request"]["sourceUrl"]) == (link["sourceKey"], None)
    job = local.client.wait(reply.body["id"])
    assert job["status"] == "succeeded", job
    assert abs(job["clip"]["durationSeconds"] - 3.0) < 0.05 and job["source"]["hasAudio"]
    # The upload stays for other jobs; the clip is the job's own
    assert stored(local, link)
    again = local.client.request("POST", "/api/jobs", {"sourceKey": link["sourceKey"], "start": 0, "end": 1})
    assert local.client.wait(again.body["id"])["status"] == "succeeded"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"Content-Length": "more"}, "LINK_INVALID"),
        ({"Content-Type": "video/quicktime"}, "LINK_INVALID"),
    ],
    ids=["oversize", "wrong-type"],
)
def test_a_put_unlike_the_declared_upload_is_refused_and_stores_nothing(local, sample, change, code):
    link = upload_link(local.client, len(sample) - 100)
    headers = dict(link["headers"])
    if change.get("Content-Length") == "more":
        headers["Content-Length"] = str(len(sample))
    else:
        headers.update(change)
    status, body = put(link["url"], sample, headers)
    assert (status, body["error"]["code"]) == (403, code)
    assert not stored(local, link)
    assert not list((local.service.data.artifacts / "uploads" / link["uploadId"]).glob("*"))
    reply = local.client.request("POST", "/api/jobs", {"sourceKey": link["sourceKey"], "start": 0, "end": 1})
    assert (reply.status, reply.code) == (409, "UPLOAD_INCOMPLETE")


def test_a_body_that_ends_short_stores_nothing(local, sample):
    link = upload_link(local.client, len(sample))
    parts = urlsplit(link["url"])
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("PUT", f"{parts.path}?{parts.query}", skip_accept_encoding=True)
    for name, value in link["headers"].items():
        connection.putheader(name, value)
    connection.endheaders()
    connection.send(sample[:1000])
    connection.close()
    deadline = time.monotonic() + 5
    artifacts = local.service.data.artifacts / "uploads" / link["uploadId"]
    while time.monotonic() < deadline and artifacts.exists() and any(artifacts.iterdir()):
        time.sleep(0.05)
    assert not stored(local, link)
    assert not (artifacts.exists() and any(artifacts.iterdir()))


def test_an_altered_link_is_refused(local, sample):
    link = upload_link(local.client, len(sample))
    status, body = put(link["url"].replace("size=", "size=1"), sample, link["headers"])
    assert (status, body["error"]["code"]) == (403, "LINK_INVALID")


def test_another_keys_upload_is_not_found_and_a_missing_one_either(local, sample):
    link = upload_link(local.client, len(sample))
    assert put(link["url"], sample, link["headers"])[0] == 200
    _, key = local.service.data.key_store(SystemClock()).create("stranger", UNTHROTTLED)
    stranger = Client(local.service.base_url, key)
    for source_key in (link["sourceKey"], f"uploads/{'0' * 32}/talk.mp4", "jobs/x/clip.mp4"):
        reply = stranger.request("POST", "/api/jobs", {"sourceKey": source_key, "start": 0, "end": 1})
        assert (reply.status, reply.code) == (404, "UPLOAD_NOT_FOUND"), source_key
    both = local.client.request("POST", "/api/jobs", {"sourceKey": link["sourceKey"], "sourceUrl": "https://example.com/a.mp4",
                                                       "start": 0, "end": 1})  # fmt: skip
    assert (both.status, both.code) == (400, "VALIDATION_FAILED")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"fileName": "a.mp4", "contentType": "video/mp4", "sizeBytes": 30 * 1024**3}, 413, "UPLOAD_TOO_LARGE"),
        ({"fileName": "a.mp4", "contentType": "text/html", "sizeBytes": 10}, 400, "VALIDATION_FAILED"),
        ({"fileName": "a.mp4", "contentType": "video/mp4", "sizeBytes": 0}, 400, "VALIDATION_FAILED"),
        ({"fileName": "", "contentType": "video/mp4", "sizeBytes": 10}, 400, "VALIDATION_FAILED"),
        ({"fileName": "a.mp4", "contentType": "video/mp4"}, 400, "VALIDATION_FAILED"),
    ],
)
def test_an_upload_the_service_cannot_take_is_refused_at_once(local, body, status, code):
    reply = local.client.request("POST", "/api/uploads", body)
    assert (reply.status, reply.code) == (status, code), reply.body


@pytest.fixture
def short_lived(tmp_path):
    running = start_service(tmp_path, upload_link_ttl_seconds=1, upload_retention_hours=2 / 3600)
    yield running
    running.service.stop()


def test_an_expired_link_is_refused_and_an_expired_upload_is_gone(short_lived, sample):
    late = upload_link(short_lived.client, len(sample))
    kept = upload_link(short_lived.client, len(sample))
    assert put(kept["url"], sample, kept["headers"])[0] == 200
    time.sleep(1.1)
    status, body = put(late["url"], sample, late["headers"])
    assert (status, body["error"]["code"]) == (403, "LINK_EXPIRED")
    assert not stored(short_lived, late)
    time.sleep(1.0)
    # Past its retention: refused, then swept with its object
    reply = short_lived.client.request("POST", "/api/jobs", {"sourceKey": kept["sourceKey"], "start": 0, "end": 1})
    assert (reply.status, reply.code) == (410, "UPLOAD_EXPIRED")
    report = clean_up(services())
    assert kept["uploadId"] in report.expired_uploads and late["uploadId"] in report.expired_uploads
    assert not stored(short_lived, kept)
    reply = short_lived.client.request("POST", "/api/jobs", {"sourceKey": kept["sourceKey"], "start": 0, "end": 1})
    assert (reply.status, reply.code) == (404, "UPLOAD_NOT_FOUND")
