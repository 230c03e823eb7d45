"""Transcription through local mode: the Transcribe state, the ASR queue, the worker and the cache."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request

import pytest
import srt

from clipline.asr.fake import FakeTranscriber
from clipline.local import lambda_runtime
from clipline.local.asr_workers import sqs_event
from clipline.workflow import ASR_WORKER_HANDLER
from tests.local.conftest import start_service


def create_transcribed(running, url, start, end, **extra) -> str:
    body = {"sourceUrl": url, "start": start, "end": end, "transcribe": True, **extra}
    reply = running.client.request("POST", "/api/jobs", body)
    assert reply.status == 202, reply.body
    return reply.body["id"]


def download(url: str) -> bytes:
    with urllib.request.urlopen(url) as response:
        return response.read()


def asr_statuses(running) -> list[tuple[str, str, str]]:
    with sqlite3.connect(running.service.data.database) as db:
        return db.execute("SELECT job_id, status, media_hash FROM asr_jobs ORDER BY rowid").fetchall()


def entered_states(running, job_id) -> list[str]:
    history = running.execution_history(job_id)
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]


@pytest.fixture
def fake():
    return FakeTranscriber()


@pytest.fixture
def local_asr(tmp_path, fake):
    running = start_service(tmp_path, transcriber=fake, asr_workers=2)
    yield running
    running.service.stop()


def test_a_transcribed_job_stores_and_signs_every_format(local_asr, media_server, fake):
    # Given a job that asks for a transcript of 10 s of a talk
    job_id = create_transcribed(local_asr, media_server.url("long.mp4"), 20, 30)
    # When it finishes
    job = local_asr.client.wait(job_id)
    # Then it went through the Transcribe state, and the job names each transcript artifact
    assert job["status"] == "succeeded", job
    assert entered_states(local_asr, job_id) == [
        "ProbeSource", "ClipSource", "WantsTranscript", "Transcribe", "WantsBurnIn", "FinalizeJob",
    ]  # fmt: skip
    assert job["resultSrtKey"] == f"jobs/{job_id}/transcript.srt"
    assert {job["resultVttKey"], job["resultTxtKey"], job["resultJsonKey"]} == {
        f"jobs/{job_id}/transcript.{ext}" for ext in ("vtt", "txt", "json")
    }
    assert ("stageExited", "transcribe") in [(e["type"], e["stage"]) for e in job["events"]]
    assert job["transcript"]["provider"] == "fake" and job["transcript"]["cacheHit"] is False
    # And the result signs all five artifacts
    result = local_asr.client.request("GET", f"/api/jobs/{job_id}/result").body
    links = {artifact["name"]: artifact["url"] for artifact in result["artifacts"]}
    assert set(links) == {"clip", "srt", "vtt", "txt", "json"}
    # And the SRT parses, and every cue lies inside the 10 s clip
    cues = list(srt.parse(download(links["srt"]).decode()))
    assert cues and all(0 <= cue.start.total_seconds() < cue.end.total_seconds() <= 10.0 for cue in cues)
    assert download(links["vtt"]).startswith(b"WEBVTT")
    transcript = json.loads(download(links["json"]))
    assert transcript["language"] == "en" and transcript["modelVersion"] == "fake-1"
    assert all(0 <= w["start"] <= w["end"] <= 10.0 for s in transcript["segments"] for w in s["words"])
    assert fake.calls == 1


def test_the_same_audio_again_is_a_cache_hit(local_asr, media_server, fake):
    # Given a finished transcription of a range
    first = local_asr.client.wait(create_transcribed(local_asr, media_server.url("long.mp4"), 40, 44))
    assert fake.calls == 1
    # When a second job asks for the same range
    second = local_asr.client.wait(create_transcribed(local_asr, media_server.url("long.mp4"), 40, 44))
    # Then the provider is not called again and the transcript is the same
    assert second["status"] == "succeeded" and second["transcript"]["cacheHit"] is True
    assert fake.calls == 1
    assert second["transcript"]["asrJobId"] != first["transcript"]["asrJobId"]
    statuses = [status for _, status, _ in asr_statuses(local_asr)]
    assert statuses == ["done", "reused"]
    texts = [
        download(next(a["url"] for a in local_asr.client.request("GET", f"/api/jobs/{job['id']}/result").body["artifacts"] if a["name"] == "txt"))
        for job in (first, second)
    ]
    assert texts[0] == texts[1] and texts[0]


def test_two_concurrent_identical_jobs_leave_one_finished_cache_entry(tmp_path, media_server):
    # Given two workers and a provider slow enough that both miss the cache
    slow = FakeTranscriber(hang_seconds=1.5)
    running = start_service(tmp_path, transcriber=slow, asr_workers=2)
    try:
        # When two identical jobs run at once
        ids = [create_transcribed(running, media_server.url("long.mp4"), 60, 63) for _ in range(2)]
        jobs = [running.client.wait(job_id) for job_id in ids]
    finally:
        running.service.stop()
    # Then both succeed, both providers ran, and exactly one finished transcript is cached
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"]
    assert slow.calls == 2
    statuses = sorted(status for _, status, _ in asr_statuses(running))
    assert statuses == ["done", "superseded"]


@pytest.mark.parametrize(
    ("failure", "code", "attempts"),
    [("rejected", "VALIDATION_FAILED", 1), ("upstream", "UPSTREAM_FAILURE", 3), ("timeout", "TIMEOUT", 1)],
)
def test_provider_errors_fail_the_job_with_their_code(tmp_path, media_server, failure, code, attempts):
    # Given a provider that fails this way
    running = start_service(tmp_path, transcriber=FakeTranscriber(failure=failure), asr_workers=1)
    try:
        # When a transcribed job runs
        job_id = create_transcribed(running, media_server.url("long.mp4"), 5, 7)
        job = running.client.wait(job_id, timeout=60)
        history = running.execution_history(job_id)
    finally:
        running.service.stop()
    # Then the job fails with the mapped code and the provider's message, and nothing is left behind
    assert job["status"] == "failed" and job["error"]["code"] == code
    assert "fake transcriber" in job["error"]["message"]
    assert job["resultKeys"] == {} and running.artifact_files(job_id) == []
    # And only transient failures were retried, by the state machine
    scheduled = [e for e in history if e["type"] == "TaskScheduled" and "sqs" in e["taskScheduledEventDetails"]["resourceType"]]
    assert len(scheduled) == attempts
    # moto hands every attempt the same task token, so the last attempt can see the previous
    # attempt's failure before a worker reaches it (AWS gives each attempt its own token).
    statuses = [status for _, status, _ in asr_statuses(running)]
    assert statuses and set(statuses) == {"failed"} and attempts - 1 <= len(statuses) <= attempts


def test_a_hanging_provider_ends_as_timeout_within_its_limit(tmp_path, media_server):
    # Given a provider that never answers, and a 3 s transcription limit
    hanging = FakeTranscriber(hang_seconds=3600, timeout_seconds=3)
    running = start_service(tmp_path, transcriber=hanging, asr_workers=1, asr_heartbeat_seconds=1)
    try:
        job_id = create_transcribed(running, media_server.url("long.mp4"), 5, 7)
        started = time.monotonic()
        job = running.client.wait(job_id, timeout=30)
        elapsed = time.monotonic() - started
        history = running.execution_history(job_id)
    finally:
        running.service.stop()
    # Then heartbeats kept the task alive past its 1 s HeartbeatSeconds, and the provider's own limit ended it
    assert job["error"]["code"] == "TIMEOUT"
    assert "no answer within 3 s" in job["error"]["message"]
    assert "TaskTimedOut" not in [e["type"] for e in history]
    assert elapsed < 3 + 5


def test_a_request_waiting_for_a_busy_worker_is_kept_alive(tmp_path, media_server):
    # Given one worker, a 1 s HeartbeatSeconds, and transcriptions that take 2.5 s each
    slow = FakeTranscriber(hang_seconds=2.5)
    running = start_service(tmp_path, transcriber=slow, asr_workers=1, asr_heartbeat_seconds=1)
    try:
        # When two jobs need it at once
        ids = [create_transcribed(running, media_server.url("long.mp4"), start, start + 2) for start in (10, 20)]
        jobs = [running.client.wait(job_id, timeout=40) for job_id in ids]
        histories = [running.execution_history(job_id) for job_id in ids]
    finally:
        running.service.stop()
    # Then the second waited its turn without being declared dead
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"]
    assert all("TaskTimedOut" not in [e["type"] for e in history] for history in histories)
    assert slow.calls == 2


def test_a_forced_language_reaches_the_provider_and_the_cache_key(local_asr, media_server):
    job = local_asr.client.wait(create_transcribed(local_asr, media_server.url("long.mp4"), 50, 53, language="de"))
    assert job["status"] == "succeeded" and job["transcript"]["language"] == "de"
    assert job["request"]["language"] == "de"
    with sqlite3.connect(local_asr.service.data.database) as db:
        [(model_version,)] = db.execute("SELECT model_version FROM asr_jobs").fetchall()
    assert model_version == "fake-1;language=de"


def test_an_unknown_language_code_is_refused_up_front(local_asr, media_server):
    reply = local_asr.client.request(
        "POST", "/api/jobs", {"sourceUrl": media_server.url("long.mp4"), "start": 1, "end": 2, "transcribe": True, "language": "english"}
    )
    assert reply.status == 400 and reply.code == "VALIDATION_FAILED"
    assert local_asr.job_count() == 0


def test_a_job_without_audio_fails_before_clipping(tmp_path, media_server, fake):
    running = start_service(tmp_path, transcriber=fake, asr_workers=1)
    try:
        job = running.client.wait(create_transcribed(running, media_server.url("silent.mp4"), 1, 3))
    finally:
        running.service.stop()
    assert job["error"]["code"] == "NO_AUDIO_STREAM" and job["stage"] == "probe"
    assert fake.calls == 0


def receive_request(running, wait_seconds=10) -> dict:
    sqs = running.service.engine.client("sqs")
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=running.service.engine.asr_queue_url, WaitTimeSeconds=1).get("Messages")
        if messages:
            return messages[0]
    raise AssertionError("no ASR request arrived")


def test_a_worker_that_dies_is_replaced_after_the_heartbeat_timeout(tmp_path, media_server, fake):
    # Given no worker threads, so this test plays the workers, and a 2 s HeartbeatSeconds
    running = start_service(tmp_path, transcriber=fake, asr_workers=0, asr_heartbeat_seconds=2)
    try:
        job_id = create_transcribed(running, media_server.url("long.mp4"), 5, 8)
        # When the first worker takes the request, beats once, and dies
        first = receive_request(running)
        token = json.loads(first["Body"])["taskToken"]
        running.service.engine.client("stepfunctions").send_task_heartbeat(taskToken=token)
        # Then the state machine notices the silence and sends the request again
        second = receive_request(running, wait_seconds=15)
        # And a healthy worker finishes it
        response = lambda_runtime.invoke(ASR_WORKER_HANDLER, sqs_event(second, "arn:aws:sqs:us-east-1:123456789012:clipline-asr"))
        assert response == {"batchItemFailures": []}
        job = running.client.wait(job_id)
        history = running.execution_history(job_id)
    finally:
        running.service.stop()
    assert job["status"] == "succeeded"
    types = [e["type"] for e in history]
    assert types.count("TaskTimedOut") == 1 and "TaskSucceeded" in types


def test_a_job_whose_workers_all_die_fails_clearly(tmp_path, media_server, fake):
    # Given nobody drains the ASR queue
    running = start_service(tmp_path, transcriber=fake, asr_workers=0, asr_heartbeat_seconds=1)
    try:
        job = running.client.wait(create_transcribed(running, media_server.url("long.mp4"), 5, 8), timeout=30)
    finally:
        running.service.stop()
    # Then after the retry the job fails as a transcription timeout, not left running
    assert job["status"] == "failed" and job["error"]["code"] == "TIMEOUT"
    assert "heartbeats" in job["error"]["message"]
