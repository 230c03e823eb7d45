"""Clip jobs through the local gateway over real HTTP: the whole pipeline on moto's engine."""

import json
import socket
import urllib.error
import urllib.request

import pytest

from clipline.media.probe import FfmpegProber
from tests.local.conftest import Client


def test_create_status_result_download(local, media_server, ffmpeg, tmp_path):
    # Given a 3-minute source served over HTTP
    url = media_server.url("long.mp4")
    # When a client creates a job for 00:01:00 to 70.5 s
    created = local.client.create(url, "00:01:00", 70.5, **{"x-correlation-id": "e2e-1"})
    assert created.status == 202, created.body
    assert created.headers["x-correlation-id"] == "e2e-1"
    assert created.body["status"] == "queued" and created.headers["Location"] == f"/api/jobs/{created.body['id']}"
    # Then the job runs through every stage and succeeds
    job = local.client.wait(created.body["id"])
    assert (job["status"], job["stage"], job["progress"]) == ("succeeded", "done", 100)
    assert job["resultKeys"] == {"clip": f"jobs/{job['id']}/clip.mp4"}
    assert job["lastHeartbeatAt"] is not None
    stages = [(e["type"], e["stage"]) for e in job["events"]]
    assert stages == [
        ("stageEntered", "probe"), ("stageExited", "probe"),
        ("stageEntered", "clip"), ("stageExited", "clip"),
        ("stageEntered", "finalize"), ("jobSucceeded", "done"),
    ]  # fmt: skip
    # And the result hands out a signed link that downloads the clip
    result = local.client.request("GET", f"/api/jobs/{job['id']}/result")
    assert result.status == 200
    [artifact] = result.body["artifacts"]
    assert artifact["name"] == "clip" and artifact["expiresAt"]
    target = tmp_path / "clip.mp4"
    with urllib.request.urlopen(artifact["url"]) as response:
        assert response.headers["Content-Type"] == "video/mp4"
        target.write_bytes(response.read())
    # And the clip is the requested 10.5 s, within one frame
    clip = FfmpegProber(ffmpeg, 30).probe_file(target)
    assert clip.duration_seconds == pytest.approx(10.5, abs=1 / 25)
    assert clip.has_video and clip.has_audio


def test_the_pipeline_ran_on_the_state_machine(local, media_server):
    created = local.client.create(media_server.url("long.mp4"), 10, 12)
    local.client.wait(created.body["id"])
    history = local.execution_history(created.body["id"])
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    assert entered == ["ProbeSource", "ClipSource", "WantsTranscript", "WantsBurnIn", "FinalizeJob"]
    assert history[-1]["type"] == "ExecutionSucceeded"


def test_reencode_fallback_is_taken_and_counted(local, media_server, capfd):
    # Given Theora/Vorbis, which can neither be smart-cut nor stream-copied into MP4
    frame_accurate = local.client.create(media_server.url("theora.ogv"), 2, 6)
    keyframe = local.client.request(
        "POST", "/api/jobs", {"sourceUrl": media_server.url("theora.ogv"), "start": 2, "end": 6, "accuracy": "keyframe"}
    )
    jobs = [local.client.wait(reply.body["id"]) for reply in (frame_accurate, keyframe)]
    # Then both jobs succeed by re-encoding, say why, and the fallback metric is emitted for each
    reasons = ["smart_cut_unsupported_codec", "copy_failed"]
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"], jobs
    assert [(job["clip"]["method"], job["clip"]["fallbackReason"]) for job in jobs] == [
        ("reencode", reason) for reason in reasons
    ]
    emitted = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    fallbacks = [m for m in emitted if "FfmpegFallback" in m]
    assert sorted((m["FfmpegFallback"], m["reason"]) for m in fallbacks) == sorted(([1.0], r) for r in reasons)
    assert fallbacks[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "clipline"


@pytest.mark.parametrize(
    ("raw", "body", "code"),
    [
        (b"{not json", None, "MALFORMED_JSON"),
        (None, {"start": 1, "end": 2}, "VALIDATION_FAILED"),
        (None, {"sourceUrl": "SRC", "start": 20, "end": 10}, "INVALID_TIME_RANGE"),
        (None, {"sourceUrl": "SRC", "start": 10, "end": 10}, "INVALID_TIME_RANGE"),
        (None, {"sourceUrl": "SRC", "start": -5, "end": 10}, "INVALID_TIME_RANGE"),
        (None, {"sourceUrl": "SRC", "start": 0, "end": 61}, "CLIP_TOO_LONG"),
        (None, {"sourceUrl": "ftp://127.0.0.1/a.mp4", "start": 0, "end": 5}, "UNSUPPORTED_SOURCE_URL"),
        (None, {"sourceUrl": "file:///etc/passwd", "start": 0, "end": 5}, "UNSUPPORTED_SOURCE_URL"),
    ],
)
def test_bad_requests_are_refused_with_their_code_and_store_nothing(local, media_server, raw, body, code):
    if body and body.get("sourceUrl") == "SRC":
        body["sourceUrl"] = media_server.url("long.mp4")
    before = local.job_count()
    reply = local.client.request("POST", "/api/jobs", body, raw=raw, headers={"x-correlation-id": "bad-input"})
    assert reply.status == 400
    assert reply.body["error"]["code"] == code
    assert reply.body["error"]["correlationId"] == "bad-input" and reply.body["error"]["message"]
    assert local.job_count() == before


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/a.mp4"


@pytest.mark.parametrize(
    ("source", "start", "end", "code"),
    [
        ("long.mp4", 170, 185, "RANGE_OUTSIDE_SOURCE"),
        ("missing.mp4", 0, 5, "SOURCE_NOT_FOUND"),
        ("not-media.mp4", 0, 5, "SOURCE_NOT_MEDIA"),
        (None, 0, 5, "SOURCE_UNREACHABLE"),
    ],
)
def test_bad_sources_fail_the_job_with_their_code_and_leave_nothing(local, media_server, source, start, end, code):
    url = media_server.url(source) if source else closed_port_url()
    created = local.client.create(url, start, end)
    assert created.status == 202
    job = local.client.wait(created.body["id"])
    assert job["status"] == "failed" and job["error"]["code"] == code, job
    assert job["events"][-1]["type"] == "jobFailed" and job["events"][-1]["code"] == code
    assert job["resultKeys"] == {} and local.artifact_files(job["id"]) == []
    result = local.client.request("GET", f"/api/jobs/{job['id']}/result")
    assert result.status == 409 and result.code == "JOB_FAILED"


def test_unreachable_sources_are_retried_by_the_state_machine_before_failing(local):
    job = local.client.wait(local.client.create(closed_port_url(), 0, 5).body["id"])
    assert job["error"]["code"] == "SOURCE_UNREACHABLE"
    history = local.execution_history(job["id"])
    probe_attempts = [e for e in history if e["type"] == "TaskFailed"]
    assert len(probe_attempts) == 3  # the first try and the two retries pipeline.asl.json allows
    assert all(e["taskFailedEventDetails"]["error"] == "SourceUnreachableError" for e in probe_attempts)
    assert history[-1]["type"] == "ExecutionFailed"
    assert history[-1]["executionFailedEventDetails"]["error"] == "SourceUnreachableError"


def test_idempotency_key_returns_the_same_job_and_refuses_another_body(local, media_server):
    url = media_server.url("long.mp4")
    first = local.client.create(url, 1, 3, **{"Idempotency-Key": "order-77"})
    again = local.client.create(url, 1, 3, **{"Idempotency-Key": "order-77"})
    other = local.client.create(url, 1, 4, **{"Idempotency-Key": "order-77"})
    assert first.status == again.status == 202 and first.body["id"] == again.body["id"]
    assert other.status == 409 and other.code == "IDEMPOTENCY_KEY_REUSED"


def test_api_keys_are_required(local):
    for key in (None, "cl_wrong"):
        reply = Client(local.client.base_url, key).request("GET", "/api/jobs/x", headers={"x-correlation-id": "no-key"})
        assert reply.status == 403 and reply.code == "FORBIDDEN"
        assert reply.body["error"]["correlationId"] == "no-key"


def test_health_needs_no_key(local):
    assert Client(local.client.base_url, None).request("GET", "/health").body == {"status": "ok"}


def test_unknown_job_and_route(local):
    assert local.client.request("GET", "/api/jobs/0000").code == "JOB_NOT_FOUND"
    assert local.client.request("GET", "/api/jobs/0000/result").code == "JOB_NOT_FOUND"
    assert local.client.request("GET", "/api/nothing").code == "NOT_FOUND"
    assert local.client.request("DELETE", "/api/jobs").code == "METHOD_NOT_ALLOWED"


def test_result_is_409_while_the_job_runs(local, stalled_source_url):
    # Given a job whose source accepts the connection and then stalls
    created = local.client.create(stalled_source_url, 0, 5)
    reply = local.client.request("GET", f"/api/jobs/{created.body['id']}/result")
    assert reply.status == 409 and reply.code == "JOB_NOT_READY"


def test_tampered_links_are_refused(local, media_server):
    job = local.client.wait(local.client.create(media_server.url("long.mp4"), 4, 6).body["id"])
    url = local.client.request("GET", f"/api/jobs/{job['id']}/result").body["artifacts"][0]["url"]
    for bad in (url.replace("signature=", "signature=0"), url.replace("expires=", "expires=9"), url.replace("clip.mp4", "clip.mp5")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad)
        assert refused.value.code == 403


def _ranged(url: str, header: str, method: str = "GET") -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, method=method, headers={"Range": header})
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_links_answer_range_requests_as_s3_does_so_players_can_seek(local, media_server):
    job = local.client.wait(local.client.create(media_server.url("long.mp4"), 4, 6).body["id"])
    url = local.client.request("GET", f"/api/jobs/{job['id']}/result").body["artifacts"][0]["url"]
    whole = urllib.request.urlopen(url).read()
    size = len(whole)
    # One range: 206 with exactly those bytes
    status, headers, body = _ranged(url, "bytes=10-19")
    assert (status, headers["Content-Range"], headers["Content-Length"], body) == (206, f"bytes 10-19/{size}", "10", whole[10:20])
    assert headers["Accept-Ranges"] == "bytes"
    # From an offset to the end, the last N bytes, and a suffix longer than the file (all of it)
    assert _ranged(url, f"bytes={size - 7}-")[2] == whole[-7:]
    assert _ranged(url, "bytes=-5")[2] == whole[-5:]
    status, _, body = _ranged(url, f"bytes=-{size * 2}")
    assert (status, body) == (206, whole)
    # A start past the end is unsatisfiable, with the size named
    status, headers, _ = _ranged(url, f"bytes={size}-")
    assert (status, headers["Content-Range"]) == (416, f"bytes */{size}")
    # Several ranges, another unit or nonsense are ignored: the whole file, 200
    for ignored in ("bytes=0-0,5-9", "items=0-5", "bytes=x-y"):
        status, _, body = _ranged(url, ignored)
        assert (status, body) == (200, whole), ignored
    # HEAD answers the range's headers and no body
    status, headers, body = _ranged(url, "bytes=0-99", method="HEAD")
    assert (status, headers["Content-Length"], body) == (206, "100", b"")


def test_oversized_bodies_are_refused(local):
    reply = local.client.request("POST", "/api/jobs", raw=b"{" + b" " * (1024 * 1024 + 1) + b"}")
    assert reply.status == 413 and reply.code == "PAYLOAD_TOO_LARGE"


def test_a_revoked_key_is_refused_at_once(local):
    from clipline.composition import SystemClock

    keys = local.service.data.key_store(SystemClock())
    key_id, key = keys.create("short-lived")
    client = Client(local.client.base_url, key)
    assert client.request("GET", "/api/jobs/x").code == "JOB_NOT_FOUND"
    keys.revoke(key_id)
    assert client.request("GET", "/api/jobs/x").code == "FORBIDDEN"
