"""`clipline serve` killed with SIGKILL, then started again on the same data dir.

At the kill, jobs are in probe, clip, transcribe and burn-in, one waits between
stages, one is stored but not started, and one has succeeded. Finalize, a few
bookkeeping writes, is too short to be caught in.

moto keeps executions in memory only, so the kill takes every execution with it.
On the restart each running job must end failed with INTERRUPTED and lose its
files and scratch folders, a job that never started must run, and finished jobs
and the transcript cache must stay exactly as they were.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import pytest
import requests
from standardwebhooks.webhooks import Webhook as Verifier

from clipline.adapters.local.sqlite_job_repository import SqliteJobRepository
from clipline.composition import SystemClock
from clipline.domain import errors
from clipline.domain.jobs import ClipRequest, JobChange, JobStatus, Stage, new_job
from clipline.domain.use_cases import NewJobRequest, create_job, enter_stage
from clipline.domain.use_cases.webhooks import ended_with
from clipline.local.service import DataDir, LocalService, ServeLock
from clipline.media.ffmpeg_binary import find_ffmpeg
from clipline.settings import Settings
from tests.fakes import CapturedLogs, FixedClock, fake_services
from tests.webhook_receiver import Receiver

SERVER_START_SECONDS = 60
STAGE_WAIT_SECONDS = 30
SAMPLE = "long.mp4"  # 180 s, faststart: its index is at the front


class StallingSource(ThreadingHTTPServer):
    """Serves one file with Range support, but never answers a read that starts in its second half.

    A probe reads the index at the front and passes; a clip late in the file then
    hangs in ffmpeg for as long as the test wants a job caught in its clip stage.
    """

    daemon_threads = True

    def __init__(self, path: Path) -> None:
        super().__init__(("127.0.0.1", 0), _StallingHandler)
        self.path = path
        self.stall_from = path.stat().st_size // 2
        self.released = threading.Event()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{self.path.name}"


class _StallingHandler(BaseHTTPRequestHandler):
    server: StallingSource
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        pass

    def do_HEAD(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's naming
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        size = self.server.path.stat().st_size
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        first = int(match.group(1)) if match else 0
        last = min(int(match.group(2)), size - 1) if match and match.group(2) else size - 1
        if first >= self.server.stall_from:
            self.server.released.wait()
            return
        self.send_response(206 if match else 200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(last - first + 1))
        if match:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if not body:
            return
        with self.server.path.open("rb") as source:
            source.seek(first)
            remaining = last - first + 1
            try:
                while remaining > 0:
                    chunk = source.read(min(remaining, 64 * 1024))
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # ffmpeg read what it needed and hung up


@dataclass
class Serve:
    """One `clipline serve` process, and the API key the test uses."""

    process: subprocess.Popen
    base_url: str
    key: str

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base_url + path, headers={"x-api-key": self.key}, timeout=30)

    def job(self, job_id: str) -> dict:
        return self.get(f"/api/jobs/{job_id}").json()

    def create(self, **body: object) -> str:
        reply = requests.post(f"{self.base_url}/api/jobs", json=body, headers={"x-api-key": self.key}, timeout=30)
        assert reply.status_code == 202, reply.text
        return reply.json()["id"]

    def wait_for(self, job_id: str, ready: Callable[[dict], bool], what: str) -> dict:
        deadline = time.monotonic() + STAGE_WAIT_SECONDS
        while True:
            job = self.job(job_id)
            if ready(job):
                return job
            assert time.monotonic() < deadline, f"job {job_id} never got {what}: {job}"
            time.sleep(0.1)


def _environment(data_dir: Path, work_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CLIPLINE_DATA_DIR": str(data_dir),
        "CLIPLINE_WORK_DIR": str(work_dir),
        "CLIPLINE_ALLOW_PRIVATE_SOURCES": "true",
        "CLIPLINE_SOURCE_ALLOWLIST": "127.0.0.1",
        "CLIPLINE_ASR_PROVIDER": "fake",
        "CLIPLINE_JOB_CREATIONS_PER_IP_PER_MINUTE": "100000",
        # Stalled sources must hold their jobs until the kill, not fail them first.
        "CLIPLINE_FIRST_BYTE_TIMEOUT_SECONDS": "300",
        "CLIPLINE_PROBE_TIMEOUT_SECONDS": "300",
        **extra,
    }


def _launch(data_dir: Path, env: dict[str, str], log_name: str, port: int) -> tuple[subprocess.Popen, Path, Path]:
    ready = data_dir / f"{log_name}.ready"
    log = data_dir / f"{log_name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "clipline.cli", "serve", "--port", str(port), "--ready-file", str(ready)],
            env=env,
            stdin=subprocess.DEVNULL,
            # The service's JSON log lines go to stdout.
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return process, ready, log


def _start(data_dir: Path, env: dict[str, str], log_name: str, processes: list) -> tuple[subprocess.Popen, str]:
    """A service on a port of its choosing, once it serves, and its base URL."""
    process, ready, log = _launch(data_dir, env, log_name, 0)
    processes.append(process)
    _wait_ready(process, ready, log)
    return process, ready.read_text().strip()


def _first_answer(
    data_dir: Path, env: dict[str, str], log_name: str, processes: list, path: str, key: str
) -> tuple[Serve, dict]:
    """A service, and the first answer it gives to GET ``path``, asked for from the moment it starts.

    The port is chosen before the start, since a port the service chose is only known
    once it is ready, after its recovery, and the point is to knock during the recovery.
    Another process may take the port first; then the service cannot listen and exits,
    and the start is tried again on another one.
    """
    for _ in range(5):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        process, ready, log = _launch(data_dir, env, log_name, port)
        processes.append(process)
        serve = Serve(process, f"http://127.0.0.1:{port}", key)
        while process.poll() is None:
            try:
                answer = serve.get(path).json()
            except requests.ConnectionError:
                time.sleep(0.05)
                continue
            _wait_ready(process, ready, log)
            # The answer came from this service, not from a process that took the port first.
            assert ready.read_text().strip() == serve.base_url
            return serve, answer
        assert "Address already in use" in log.read_text(), log.read_text()
    raise AssertionError("no free port for clipline serve")


def _wait_ready(process: subprocess.Popen, ready: Path, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while not ready.is_file() or not ready.read_text().strip():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "clipline serve did not become ready"
        time.sleep(0.1)


def _create_key(env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "clipline.cli", "keys", "create", "--name", "restart",
         "--rate", "1000", "--burst", "1000", "--quota", "1000000"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _job_files(data_dir: Path, job_id: str) -> list[Path]:
    folder = data_dir / "artifacts" / "jobs" / job_id
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def _tables(data_dir: Path) -> tuple[list[tuple], list[tuple]]:
    """Every job and ASR record as stored, in a fixed order."""
    with sqlite3.connect(data_dir / "clipline.sqlite3") as db:
        jobs = db.execute("SELECT id, status, document FROM jobs ORDER BY id").fetchall()
        asr = db.execute("SELECT id, status, document FROM asr_jobs ORDER BY id").fetchall()
    return jobs, asr


def _all_files(data_dir: Path) -> list[Path]:
    return sorted(path for path in (data_dir / "artifacts").rglob("*") if path.is_file())


def _stored_queued_job(data_dir: Path, owner_of: str, source_url: str) -> str:
    """A job stored but never started: the first run died between storing the job and starting its execution."""
    with sqlite3.connect(data_dir / "clipline.sqlite3") as db:
        owner = db.execute("SELECT owner FROM jobs WHERE id = ?", (owner_of,)).fetchone()[0]
    clock = SystemClock()
    request = ClipRequest(source_url=source_url, start_seconds=1, end_seconds=2)
    job = new_job(request, owner=owner, correlation_id="restart-test", now=clock.now(), retention=timedelta(days=1))
    return SqliteJobRepository(data_dir / "clipline.sqlite3", clock.now).create(job).id


def _in_stage(stage: str) -> Callable[[dict], bool]:
    return lambda job: job["status"] == "running" and job["stage"] == stage and job["events"][-1]["type"] == "stageEntered"


def _waiting_for_asr(job: dict) -> bool:
    # The Transcribe stage is entered only when a worker takes the request; until then clip is the last one left.
    return job["status"] == "running" and any(
        event["type"] == "stageExited" and event["stage"] == "clip" for event in job["events"]
    )


def _ffmpeg_that_holds_transcription_and_burn_in(folder: Path) -> tuple[Path, Path]:
    """An ffmpeg for CLIPLINE_FFMPEG that never ends a speech-audio extraction or a burn-in, and the file of their pids.

    Every other run is the real ffmpeg's, so a job goes through its probe and clip and
    then stays in the Transcribe or BurnIn stage until the kill. The held runs outlive
    the killed service; the test ends them by their pids.
    """
    held = folder / "held-ffmpeg.pids"
    wrapper = folder / "ffmpeg"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case " $* " in\n'
        f'  *" -ar 16000 "*|*"ass=filename="*) echo $$ >> "{held}"; exec sleep 600 ;;\n'
        "esac\n"
        f'exec "{find_ffmpeg(None)}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper, held


def _end_held_runs(held: Path) -> None:
    for pid in held.read_text().split() if held.exists() else []:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


SUBTITLES = "1\n00:00:00,000 --> 00:00:01,500\nheld in the burn-in\n"


@pytest.mark.slow
def test_a_killed_service_fails_every_running_job_on_restart_and_keeps_the_rest(tmp_path, media_dir):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    source = StallingSource(media_dir / SAMPLE)
    threading.Thread(target=source.serve_forever, name="stalling-source", daemon=True).start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}/never.mp4"
    processes: list[subprocess.Popen] = []
    held_ffmpeg, held_pids = _ffmpeg_that_holds_transcription_and_burn_in(tmp_path)
    try:
        # Given a service with one ASR worker, whose ffmpeg never ends a transcription's audio or a burn-in
        first_env = _environment(data_dir, work_dir, CLIPLINE_ASR_WORKERS="1", CLIPLINE_FFMPEG=str(held_ffmpeg))
        process, base_url = _start(data_dir, first_env, "first", processes)
        first = Serve(process, base_url, _create_key(first_env))
        # And one job that succeeded, then jobs held in probe, in clip, in transcription (which keeps the one
        # worker busy), waiting for transcription, and in burn-in
        succeeded = first.create(sourceUrl=source.url(), start=1, end=2)
        first.wait_for(succeeded, lambda job: job["status"] == "succeeded", "succeeded")
        probing = first.create(sourceUrl=silent_url, start=1, end=2)
        clipping = first.create(sourceUrl=source.url(), start=150, end=152)
        transcribing = first.create(sourceUrl=source.url(), start=1, end=3, transcribe=True)
        first.wait_for(transcribing, _in_stage("transcribe"), "into transcribe")
        waiting = first.create(sourceUrl=source.url(), start=4, end=6, transcribe=True)
        burning = first.create(sourceUrl=source.url(), start=1, end=3, burnSubtitles=True, subtitles={"srt": SUBTITLES})
        first.wait_for(probing, _in_stage("probe"), "into probe")
        first.wait_for(clipping, _in_stage("clip"), "into clip")
        first.wait_for(waiting, _waiting_for_asr, "its clip stored")
        first.wait_for(burning, _in_stage("burnIn"), "into burn-in")
        assert _job_files(data_dir, waiting), "the waiting job should have stored its clip"
        succeeded_files = _job_files(data_dir, succeeded)
        # And the partial files of two uploads in progress, as the store names them while it writes
        uploads = [
            data_dir / "artifacts" / "jobs" / job_id / f".{name}.{uuid.uuid4().hex}.partial"
            for job_id, name in ((succeeded, "subtitles.srt"), (clipping, "clip.mp4"))
        ]
        for upload in uploads:
            upload.parent.mkdir(parents=True, exist_ok=True)
            upload.write_bytes(b"half an upload")
        for prefix, job_id in (("clip", clipping), ("asr", transcribing), ("burn", burning)):
            assert list(work_dir.glob(f"{prefix}-{job_id}-*")), f"the {prefix} step should be at work in the work dir"
        # When a second service starts on the same data dir while the first still runs
        process, _ = _start(data_dir, first_env, "beside", processes)
        _kill(process)
        # Then it leaves the first one's jobs running: they are not interrupted, only owned elsewhere
        assert {first.job(job_id)["status"] for job_id in (probing, clipping, transcribing, waiting, burning)} == {"running"}
        # And the uploads, which may still be going on
        assert all(upload.exists() for upload in uploads)
        assert "another clipline serve is using this data dir" in (data_dir / "beside.log").read_text()
        # When the service is killed outright, leaving also a job stored but never started
        _kill(first.process)
        queued = _stored_queued_job(data_dir, succeeded, source.url())
        # Jobs by the stage they were in, and one between stages
        in_stage = {"probe": probing, "clip": clipping, "transcribe": transcribing, "burnIn": burning}
        interrupted = {**in_stage, "waiting for ASR": waiting}
        _, asr_before = _tables(data_dir)

        # And it is started again on the same data dir, with workers this time
        env = _environment(data_dir, work_dir, CLIPLINE_ASR_WORKERS="2")
        second, first_answer = _first_answer(data_dir, env, "second", processes, f"/api/jobs/{probing}", first.key)
        # Then the first answer the restarted API gives already shows the job failed, never running
        assert (first_answer["status"], first_answer["error"]["code"]) == ("failed", "INTERRUPTED")
        # And the recovery left the transcript cache as it found it
        assert _tables(data_dir)[1] == asr_before
        # And removed what the killed steps left in the work dir, and the uploads the kill cut short
        assert [path.name for path in work_dir.iterdir() if any(i in path.name for i in interrupted.values())] == []
        assert not any(upload.exists() for upload in uploads)

        # And every interrupted job failed with INTERRUPTED, at the stage it was in, its files gone
        for why, job_id in interrupted.items():
            job = second.job(job_id)
            assert (job["status"], job["error"]["code"]) == ("failed", "INTERRUPTED"), why
            assert "create the job again" in job["error"]["message"], why
            assert job["events"][-1]["type"] == "jobFailed" and job["resultKeys"] == {}, why
            assert _job_files(data_dir, job_id) == [], why
            assert second.get(f"/api/jobs/{job_id}/result").json()["error"]["code"] == "JOB_FAILED", why
        assert {stage: second.job(job_id)["events"][-1]["stage"] for stage, job_id in in_stage.items()} == {
            stage: stage for stage in in_stage
        }
        # (between stages, the failure names the last stage the job was in)
        assert second.job(waiting)["events"][-1]["stage"] == "clip"
        # And the job that never started ran now, as a replay of its request would have made it
        assert second.wait_for(queued, lambda job: job["status"] in ("succeeded", "failed"), "finished")[
            "status"
        ] == "succeeded"
        queued_result = second.get(f"/api/jobs/{queued}/result").json()
        assert [link["name"] for link in queued_result["artifacts"]] == ["clip"] and _job_files(data_dir, queued)
        # And the restart logged each failure once, with the stage, and how many it failed
        lines = [json.loads(line) for line in (data_dir / "second.log").read_text().splitlines() if line.startswith("{")]
        failure_lines = [line for line in lines if line.get("message") == "job failed"]
        failures = {line["jobId"]: line for line in failure_lines}
        assert len(failure_lines) == 5 and sorted(failures) == sorted(interrupted.values())
        assert {line["errorCode"] for line in failure_lines} == {"INTERRUPTED"}
        assert {stage: failures[job_id]["failedStage"] for stage, job_id in in_stage.items()} == {
            stage: stage for stage in in_stage
        }
        abandoned = [line["paths"] for line in lines if "abandonedWrites" in line]
        assert abandoned == [sorted(upload.relative_to(data_dir / "artifacts").as_posix() for upload in uploads)]
        summary = [line for line in lines if "interruptedJobs" in line]
        assert [(line["interruptedJobs"], line["restartedJobs"], line["unrecoveredJobs"]) for line in summary] == [
            (5, 1, 0)
        ]
        # And counted, as every failed job is
        assert sum(line.get("JobsFailed", [0])[0] for line in lines if line.get("errorCode") == "INTERRUPTED") == 5

        # And the succeeded job is untouched, its clip still downloadable
        kept = second.job(succeeded)
        assert kept["status"] == "succeeded" and _job_files(data_dir, succeeded) == succeeded_files
        links = second.get(f"/api/jobs/{succeeded}/result").json()
        clip_link = next(link for link in links["artifacts"] if link["name"] == "clip")["url"]
        assert requests.get(clip_link, timeout=30).content == succeeded_files[0].read_bytes()

        # And new jobs run to success, two on the same audio sharing one transcript cache entry
        fresh = [second.create(sourceUrl=source.url(), start=1, end=3, transcribe=True) for _ in range(2)]
        for job_id in fresh:
            assert second.wait_for(job_id, lambda job: job["status"] in ("succeeded", "failed"), "finished")[
                "status"
            ] == "succeeded"
        with sqlite3.connect(data_dir / "clipline.sqlite3") as db:
            duplicates = db.execute(
                "SELECT media_hash, model_version, COUNT(*) FROM asr_jobs WHERE status = 'done'"
                " GROUP BY media_hash, model_version HAVING COUNT(*) > 1"
            ).fetchall()
            running_asr = db.execute("SELECT COUNT(*) FROM asr_jobs WHERE status = 'running'").fetchone()[0]
        assert duplicates == [] and running_asr == 0

        # When it is killed again with nothing unfinished, and started once more
        _kill(second.process)
        jobs_before, asr_before = _tables(data_dir)
        files_before = _all_files(data_dir)
        process, base_url = _start(data_dir, env, "third", processes)
        # Then the second recovery changed nothing: no job, ASR record or file differs
        assert _tables(data_dir) == (jobs_before, asr_before)
        assert _all_files(data_dir) == files_before
        assert "interruptedJobs" not in (data_dir / "third.log").read_text()
        assert Serve(process, base_url, first.key).job(succeeded)["status"] == "succeeded"
    finally:
        for process in processes:
            _kill(process)
        _end_held_runs(held_pids)
        source.released.set()
        source.shutdown()
        source.server_close()
        silent.close()


def test_a_webhook_between_retries_at_the_kill_is_delivered_once_after_the_restart(tmp_path, media_server):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    processes: list[subprocess.Popen] = []
    receiver = Receiver(500)
    try:
        # Given a service whose first webhook retry waits a few seconds
        env = _environment(data_dir, work_dir, CLIPLINE_WEBHOOK_RETRY_SCHEDULE="4")
        process, base_url = _start(data_dir, env, "first", processes)
        first = Serve(process, base_url, _create_key(env))
        # And a job that succeeded and whose first attempt was answered 500 and recorded
        job_id = first.create(sourceUrl=media_server.url(SAMPLE), start=1, end=2, webhookUrl=receiver.url)
        first.wait_for(job_id, lambda job: len((job["webhook"] or {}).get("attempts", [])) == 1, "a first attempt")
        # When the service is killed before the retry, and started again on the same data dir
        _kill(process)
        assert len(receiver.received) == 1
        process, base_url = _start(data_dir, env, "second", processes)
        second = Serve(process, base_url, first.key)
        # Then the retry is made from the outbox, and the webhook is delivered
        job = second.wait_for(job_id, lambda job: job["webhook"]["state"] == "delivered", "its webhook delivered")
        assert [attempt["status"] for attempt in job["webhook"]["attempts"]] == [500, 204]
        # And it was one message, sent once per attempt: nothing more comes
        time.sleep(1)
        (first_headers, first_body), (headers, body) = receiver.received
        assert first_headers["webhook-id"] == headers["webhook-id"] and first_body == body
    finally:
        for started in processes:
            _kill(started)
        receiver.close()


def test_a_job_that_ended_before_its_webhook_was_sent_sends_it_at_the_next_start(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    env = _environment(data_dir, work_dir)
    key = _create_key(env)
    processes: list[subprocess.Popen] = []
    with Receiver() as receiver:
        # Given a job whose end was written, with its webhook due, by a service killed before sending it
        # (written here as that service's store wrote it: the job and its outbox row in one transaction)
        clock = SystemClock()
        jobs = SqliteJobRepository(data_dir / "clipline.sqlite3", clock.now)
        owner = next(record.id for record in DataDir.of(Settings(data_dir=data_dir)).key_store(clock).list())
        request = ClipRequest(source_url="http://127.0.0.1/a.mp4", start_seconds=1, end_seconds=2)
        job = jobs.create(new_job(request, owner=owner, correlation_id="restart-test", now=clock.now(),
                                  retention=timedelta(days=1), webhook_url=receiver.url))  # fmt: skip
        jobs.update(job.id, JobChange(status=JobStatus.RUNNING, stage=Stage.PROBE))
        jobs.update(job.id, JobChange(status=JobStatus.FAILED, webhook=ended_with(job, JobStatus.FAILED, clock.now())))
        try:
            # When the service starts on the data dir
            process, base_url = _start(data_dir, env, "after", processes)
            serve = Serve(process, base_url, key)
            # Then the webhook is sent, once, and the job shows it delivered
            ended = serve.wait_for(job.id, lambda job: job["webhook"]["state"] == "delivered", "its webhook delivered")
            time.sleep(1)
            ((headers, body),) = receiver.received
            assert Verifier(_secret_of(data_dir, owner)).verify(body, headers)["type"] == "job.failed"
            assert [attempt["status"] for attempt in ended["webhook"]["attempts"]] == [204]
        finally:
            for started in processes:
                _kill(started)


def _secret_of(data_dir: Path, owner: str) -> str:
    return DataDir.of(Settings(data_dir=data_dir)).webhook_secrets(SystemClock()).secret_for(owner)


def test_only_a_service_that_starts_alone_recovers_and_every_one_holds_the_data_dir(tmp_path):
    data = DataDir(tmp_path)
    first, beside, third = ServeLock(data), ServeLock(data), ServeLock(data)
    # Given a service that started alone, and a second one started beside it
    with first.claim() as alone:
        assert alone
    with beside.claim() as alone:
        assert not alone
    # When the first one stops while the second still runs, and a third starts
    first.release()
    with third.claim() as alone:
        # Then the third leaves the jobs alone: the second one's are still running
        assert not alone
    # And only once every one has stopped does a start find the data dir free
    beside.release()
    third.release()
    with ServeLock(data).claim() as alone:
        assert alone


def test_a_start_waits_for_one_that_is_recovering(tmp_path):
    data = DataDir(tmp_path)
    recovering, later = ServeLock(data), ServeLock(data)
    outcome: list[bool] = []

    def start_later() -> None:
        with later.claim() as alone:
            outcome.append(alone)

    # Given a service still recovering, when another starts meanwhile
    with recovering.claim() as alone:
        assert alone
        waiting = threading.Thread(target=start_later)
        waiting.start()
        waiting.join(0.3)
        # Then it waits, so it can never take for its own the jobs the first one is starting
        assert outcome == []
    waiting.join(5)
    # And once the first serves, it starts beside it, without recovering
    assert outcome == [False]
    recovering.release()
    later.release()


def test_a_job_that_cannot_be_recovered_is_logged_and_does_not_stop_the_start(monkeypatch):
    services = fake_services(FixedClock())
    jobs = []
    for end in (61, 62):
        job = create_job(services, NewJobRequest("https://example.com/a.mp4", 60, end), "key-1", "cid-1")
        jobs.append(enter_stage(services, job.id, Stage.PROBE))
    update = services.jobs.update

    def failing_update(job_id, change):  # noqa: ANN001, ANN202 - the fake store's signature
        if job_id == jobs[0].id:
            raise errors.StorageUnavailableError("the disk is gone")
        return update(job_id, change)

    monkeypatch.setattr(services.jobs, "update", failing_update)
    # When a start recovers the jobs and one of them cannot be failed
    with CapturedLogs() as logs:
        LocalService._recover_unfinished_jobs(services)
    # Then the other one failed all the same
    assert services.jobs.get(jobs[1].id).status is JobStatus.FAILED
    # And the one left is logged with its id and counted
    lines = logs.lines()
    unrecovered = [line for line in lines if line["message"] == "could not recover an unfinished job"]
    assert [(line["jobId"], line["errorName"]) for line in unrecovered] == [(jobs[0].id, "StorageUnavailableError")]
    summary = [line for line in lines if "unrecoveredJobs" in line]
    assert [(line["interruptedJobs"], line["unrecoveredJobs"]) for line in summary] == [(1, 1)]
