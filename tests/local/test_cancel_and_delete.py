"""DELETE /api/jobs/{id} on the local host: a cancel in each stage, and deleting an ended job's artifacts.

A cancel must leave nothing running and nothing stored: no ffmpeg child of the
service, no transcription still decoding, no artifact and no scratch folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipline.local.media_server import MediaServer
from clipline.media import running_work
from tests.local.conftest import RunningService, start_service

# Local mode ends a cancelled job's work within this long.
STOPPED_WITHIN_SECONDS = 2.0
# Past the first bytes of each answer (a faststart file's header, which the probe reads), the source
# trickles, so a cut takes long enough to be cancelled half-way.
FAST_HEAD_BYTES = 256 * 1024
TRICKLE_BYTES_PER_SECOND = 150 * 1024


@pytest.fixture(scope="module")
def trickling_source(media_dir):
    with MediaServer(media_dir, trickle_after_bytes=FAST_HEAD_BYTES, trickle_bytes_per_second=TRICKLE_BYTES_PER_SECOND) as server:
        yield server


@pytest.fixture
def service(tmp_path, whisper_model) -> Iterator[RunningService]:
    running = start_service(
        tmp_path, max_clip_seconds=120, work_dir=tmp_path / "work", whisper_model=whisper_model, asr_workers=1
    )
    (tmp_path / "work").mkdir(exist_ok=True)
    yield running
    running.service.stop()


def ffmpeg_children() -> list[int]:
    """This process's ffmpeg children: the service runs in it, and its steps run ffmpeg as children."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, _, rest = stat.partition(") ")
        state, parent = rest.split()[:2]
        if int(parent) == os.getpid() and "ffmpeg" in name and state != "Z":
            found.append(int(entry.name))
    return found


def wait_for_stage(running: RunningService, job_id: str, stage: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = running.client.request("GET", f"/api/jobs/{job_id}").body
        assert job["status"] in ("queued", "running"), job
        if job["stage"] == stage and job["status"] == "running":
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never ran {stage}: {job}")


def scratch_folders(running: RunningService, job_id: str) -> list[Path]:
    return [path for path in (running.data_dir.parent / "work").iterdir() if job_id in path.name]


def assert_nothing_left(running: RunningService, job_id: str) -> float:
    """Wait until the job has no process, file or folder left; how long that took."""
    started = time.monotonic()
    while True:
        left = {
            "ffmpeg": ffmpeg_children(),
            "processes": running_work.running_processes(job_id),
            "artifacts": running.artifact_files(job_id),
            "scratch": scratch_folders(running, job_id),
        }
        if not any(left.values()):
            return time.monotonic() - started
        if time.monotonic() - started > STOPPED_WITHIN_SECONDS:
            raise AssertionError(f"left after {STOPPED_WITHIN_SECONDS}s: {left}")
        time.sleep(0.05)


def cancel(running: RunningService, job_id: str) -> dict:
    reply = running.client.request("DELETE", f"/api/jobs/{job_id}")
    assert reply.status == 202, reply.body
    assert reply.body["status"] == "cancelled" and reply.body["resultKeys"] == {}
    assert reply.body["events"][-1]["type"] == "jobCancelled"
    return reply.body


def assert_stays_cancelled(running: RunningService, job_id: str) -> None:
    # The execution is stopped, nothing more happens to the job, and asking again is 204
    time.sleep(1.0)
    job = running.client.request("GET", f"/api/jobs/{job_id}").body
    assert job["status"] == "cancelled", job
    assert running.execution_history(job_id)[-1]["type"] == "ExecutionAborted"
    again = running.client.request("DELETE", f"/api/jobs/{job_id}")
    assert again.status == 204 and again.body == {}
    result = running.client.request("GET", f"/api/jobs/{job_id}/result")
    assert (result.status, result.code) == (409, "JOB_CANCELLED")
    assert not running.artifact_files(job_id)


def test_a_job_cancelled_while_it_probes_a_stalled_source(service, stalled_source_url):
    job_id = service.client.create(stalled_source_url, 0, 5).body["id"]
    wait_for_stage(service, job_id, "probe")
    # Its ffmpeg is waiting for the source
    deadline = time.monotonic() + 10
    while not ffmpeg_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ffmpeg_children()
    job = cancel(service, job_id)
    assert job["events"][-1]["stage"] == "probe"
    assert assert_nothing_left(service, job_id) <= STOPPED_WITHIN_SECONDS
    assert_stays_cancelled(service, job_id)


def test_a_job_cancelled_while_it_cuts(service, trickling_source):
    job_id = service.client.create(trickling_source.url("long.mp4"), 10, 70).body["id"]
    wait_for_stage(service, job_id, "clip")
    time.sleep(0.5)
    assert ffmpeg_children()
    cancel(service, job_id)
    assert_nothing_left(service, job_id)
    assert_stays_cancelled(service, job_id)


def test_a_job_cancelled_while_it_is_transcribed(service, media_server):
    body = {"sourceUrl": media_server.url("speech.mp4"), "start": 0, "end": 13, "transcribe": True}
    job_id = service.client.request("POST", "/api/jobs", body).body["id"]
    wait_for_stage(service, job_id, "transcribe")
    cancel(service, job_id)
    assert_nothing_left(service, job_id)
    assert_stays_cancelled(service, job_id)


def test_a_job_cancelled_while_its_subtitles_are_burned_in(service, media_server):
    subtitles = "".join(f"{n + 1}\n00:00:{n:02},000 --> 00:00:{n:02},900\nline {n}\n\n" for n in range(50))
    body = {"sourceUrl": media_server.url("long.mp4"), "start": 0, "end": 100, "burnSubtitles": True,
            "subtitles": {"srt": subtitles}}  # fmt: skip
    job_id = service.client.request("POST", "/api/jobs", body).body["id"]
    wait_for_stage(service, job_id, "burnIn")
    time.sleep(0.3)
    cancel(service, job_id)
    assert_nothing_left(service, job_id)
    assert_stays_cancelled(service, job_id)


def test_a_job_cancelled_as_soon_as_it_is_created(service, media_server):
    job_id = service.client.create(media_server.url("long.mp4"), 1, 3).body["id"]
    cancel(service, job_id)
    assert_nothing_left(service, job_id)
    assert_stays_cancelled(service, job_id)


def test_deleting_a_finished_job_removes_its_artifacts_and_keeps_its_record(service, media_server):
    job_id = service.client.create(media_server.url("long.mp4"), 1, 3).body["id"]
    assert service.client.wait(job_id)["status"] == "succeeded"
    assert service.artifact_files(job_id)
    reply = service.client.request("DELETE", f"/api/jobs/{job_id}")
    assert reply.status == 204 and reply.body == {}
    assert service.artifact_files(job_id) == []
    job = service.client.request("GET", f"/api/jobs/{job_id}").body
    assert (job["status"], job["resultKeys"], job["events"][-1]["type"]) == ("deleted", {}, "jobDeleted")
    result = service.client.request("GET", f"/api/jobs/{job_id}/result")
    assert (result.status, result.code) == (410, "JOB_DELETED")
    assert service.client.request("DELETE", f"/api/jobs/{job_id}").status == 204


def test_another_keys_job_is_not_found_and_left_alone(service, media_server):
    from clipline.composition import SystemClock
    from tests.local.conftest import UNTHROTTLED, Client

    job_id = service.client.create(media_server.url("long.mp4"), 1, 3).body["id"]
    _, key = service.service.data.key_store(SystemClock()).create("other", UNTHROTTLED)
    reply = Client(service.service.base_url, key).request("DELETE", f"/api/jobs/{job_id}")
    assert (reply.status, reply.code) == (404, "JOB_NOT_FOUND")
    assert service.client.wait(job_id)["status"] == "succeeded"
