"""Faults through the whole local service: storage outages, a full disk, hanging ffmpeg, sources that drop or stall.

Storage faults are injected by installing a Services graph whose artifact store
wraps the service's real folder store; source faults come from a small server
that serves a real file with Range support and misbehaves on chosen connections.
Already covered elsewhere: the global timeout (JOB_TIMEOUT) in
test_expiry_and_timeouts.py, a refused connection retried to SOURCE_UNREACHABLE in
test_clip_jobs.py, and an ASR worker that dies mid-job in test_transcription.py.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import socket
import socketserver
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from clipline.adapters.local.filesystem_artifact_store import FilesystemArtifactStore
from clipline.composition import install, services
from clipline.domain.errors import StorageUnavailableError
from clipline.domain.ports import StoredArtifact
from tests.local.conftest import Client, RunningService, start_service

pytestmark = pytest.mark.slow

# The ClipSource and ProbeSource states retry these errors twice (pipeline.asl.json).
STEP_ATTEMPTS = 3
# long.mp4 is faststart: ffmpeg probes it from its first bytes, and a clip from 150 s on
# reads far past this offset, so a source may serve the probe and misbehave for the clip.
HEAD_BYTES = 1024 * 1024


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory):
    # A 1 s read timeout, so stalled sources fail fast; clips keep their default time limit.
    running = start_service(tmp_path_factory.mktemp("faults"), first_byte_timeout_seconds=1)
    yield running
    running.service.stop()


class ArtifactStoreSwap:
    """Installs graphs that differ from the service's only in their artifact store."""

    def __init__(self) -> None:
        self.original = services()

    def __call__(self, make: Callable[[object], object]) -> object:
        """Install ``make(the real store)`` and return it."""
        store = make(self.original.artifacts)
        install(dataclasses.replace(self.original, artifacts=store))
        return store

    def restore(self) -> None:
        install(self.original)


@pytest.fixture
def replace_artifacts(faulty: RunningService):
    swap = ArtifactStoreSwap()
    yield swap
    swap.restore()


class FlakyArtifactStore:
    """The service's real store, with its first ``failures`` uploads failing as the real adapters fail in an outage.

    With ``lands_anyway`` each failing upload is written first and then reported as
    failed, as when an upload's reply is lost: the worst case for leftovers.
    """

    def __init__(self, store, failures: int, lands_anyway: bool = False) -> None:
        self._store = store
        self._failures = failures
        self._lands_anyway = lands_anyway
        self.put_calls = 0

    def put_file(self, key: str, path: Path, content_type: str) -> StoredArtifact:
        return self._put(lambda: self._store.put_file(key, path, content_type), key)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredArtifact:
        return self._put(lambda: self._store.put_bytes(key, data, content_type), key)

    def _put(self, put: Callable[[], StoredArtifact], key: str) -> StoredArtifact:
        self.put_calls += 1
        if self.put_calls > self._failures:
            return put()
        if self._lands_anyway:
            put()
        raise StorageUnavailableError(f"could not upload {key}: the store is unavailable")

    def __getattr__(self, name: str):
        return getattr(self._store, name)


class DiskFullArtifactStore(FilesystemArtifactStore):
    """The real folder store on the service's folder, on a disk that fills up halfway through every upload."""

    def put_file(self, key: str, path: Path, content_type: str) -> StoredArtifact:
        # The store's own write path (temporary name, rename, error translation) with a
        # writer that meets ENOSPC after half the bytes: what a full disk does to a copy.
        data = path.read_bytes()

        def fill_up(partial: Path) -> None:
            partial.write_bytes(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(partial))

        return self._write(key, fill_up, content_type)


class FaultySource:
    """Serves one file with Range support, misbehaving where told.

    ``behaviour(connection_number, range_start)`` picks each connection's fate: "serve"
    answers properly; "drop" sends the headers and a quarter of the body, then closes;
    "stall" sends the same and then nothing more; "silent" accepts and never answers.
    """

    def __init__(self, path: Path, behaviour: Callable[[int, int], str]) -> None:
        self._data = path.read_bytes()
        self._behaviour = behaviour
        self.actions: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        source = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                source._handle(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="faulty-source", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/source.mp4"

    def count(self, action: str) -> int:
        with self._lock:
            return sum(1 for taken, _ in self.actions if taken == action)

    def _handle(self, connection: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            received = connection.recv(4096)
            if not received:
                return
            head += received
        asked = re.search(rb"(?im)^range:\s*bytes=(\d+)-(\d*)", head)
        start = int(asked.group(1)) if asked else 0
        end = min(int(asked.group(2)) if asked and asked.group(2) else len(self._data) - 1, len(self._data) - 1)
        with self._lock:
            action = self._behaviour(len(self.actions) + 1, start)
            self.actions.append((action, start))
        if action == "silent":
            self._released.wait()
            return
        body = self._data[start : end + 1]
        status = "206 Partial Content" if asked else "200 OK"
        content_range = f"Content-Range: bytes {start}-{end}/{len(self._data)}\r\n" if asked else ""
        headers = (
            f"HTTP/1.1 {status}\r\nContent-Type: video/mp4\r\nAccept-Ranges: bytes\r\n"
            f"Content-Length: {len(body)}\r\n{content_range}Connection: close\r\n\r\n"
        )
        try:
            connection.sendall(headers.encode())
            if action == "serve":
                connection.sendall(body)
                return
            connection.sendall(body[: len(body) // 4])
            if action == "stall":
                self._released.wait()
        except OSError:
            return

    def __enter__(self) -> "FaultySource":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()


def past_the_head(action: str) -> Callable[[int, int], str]:
    """A FaultySource behaviour: serve the file's head (all a probe reads), ``action`` on reads past it."""
    return lambda connection, start: action if start > HEAD_BYTES else "serve"


def _events_by_state(running: RunningService, job_id: str) -> Iterator[tuple[str | None, dict]]:
    """Every event of the job's execution, in order, with the name of the state it came in."""
    state = None
    for event in running.execution_history(job_id):
        if "stateEnteredEventDetails" in event:
            state = event["stateEnteredEventDetails"]["name"]
        yield state, event


def failed_tasks(running: RunningService, job_id: str) -> list[tuple[str, str]]:
    """(state, error) of every failed task attempt, in order."""
    return [
        (state, event["taskFailedEventDetails"]["error"])
        for state, event in _events_by_state(running, job_id)
        if event["type"] == "TaskFailed"
    ]


def task_events(running: RunningService, job_id: str) -> list[tuple[str, str]]:
    """(state, event type) of every task event, in order."""
    task_types = ("TaskScheduled", "TaskStarted", "TaskFailed", "TaskSucceeded", "TaskTimedOut")
    return [(state, event["type"]) for state, event in _events_by_state(running, job_id) if event["type"] in task_types]


def assert_left_nothing(running: RunningService, job: dict) -> None:
    assert job["resultKeys"] == {}
    assert running.artifact_files(job["id"]) == []
    result = running.client.request("GET", f"/api/jobs/{job['id']}/result")
    assert result.status == 409 and result.code == "JOB_FAILED"


# Storage


def test_transient_storage_failures_are_retried_with_backoff_and_the_job_succeeds(
    faulty, replace_artifacts, media_server
):
    # Given an artifact store whose first two uploads fail as in an outage
    store = replace_artifacts(lambda real: FlakyArtifactStore(real, failures=2))
    # When a clip job runs
    job = faulty.client.wait(faulty.client.create(media_server.url("long.mp4"), 10, 11).body["id"])
    # Then the state machine ran ClipSource again after each failure, and the third upload made it
    assert job["status"] == "succeeded", job
    assert store.put_calls == 3
    assert failed_tasks(faulty, job["id"]) == [("ClipSource", "StorageUnavailableError")] * 2
    clip_events = [kind for state, kind in task_events(faulty, job["id"]) if state == "ClipSource"]
    attempt = ["TaskScheduled", "TaskStarted"]
    assert clip_events == [*attempt, "TaskFailed", *attempt, "TaskFailed", *attempt, "TaskSucceeded"]
    assert [p.name for p in faulty.artifact_files(job["id"])] == ["clip.mp4"]


def test_a_storage_outage_that_lasts_fails_the_job_with_storage_failure_and_leaves_nothing(
    faulty, replace_artifacts, media_server
):
    # Given a store where every upload lands and is then reported failed (a lost reply)
    store = replace_artifacts(lambda real: FlakyArtifactStore(real, failures=10**6, lands_anyway=True))
    # When a clip job runs
    job = faulty.client.wait(faulty.client.create(media_server.url("long.mp4"), 10, 11).body["id"])
    # Then it was tried as often as the state machine allows, then failed with the storage code
    assert store.put_calls == STEP_ATTEMPTS
    assert failed_tasks(faulty, job["id"]) == [("ClipSource", "StorageUnavailableError")] * STEP_ATTEMPTS
    assert job["status"] == "failed" and job["error"]["code"] == "STORAGE_FAILURE", job
    assert job["stage"] == "clip"
    # And the clip that did land was removed with the failure
    assert "1 partial artifact(s) removed" in job["events"][-1]["message"]
    assert_left_nothing(faulty, job)


def test_a_full_artifact_disk_fails_the_job_cleanly_and_the_service_keeps_serving(
    faulty, replace_artifacts, media_server
):
    # Given the artifacts folder's disk is full: every upload meets ENOSPC halfway
    root = faulty.service.data.artifacts
    replace_artifacts(lambda real: DiskFullArtifactStore(root, faulty.service.data.signer(), faulty.client.base_url))
    # When a clip job runs
    job = faulty.client.wait(faulty.client.create(media_server.url("long.mp4"), 20, 21).body["id"])
    # Then it fails with the storage code and the disk's own reason, after the state machine's retries
    assert job["status"] == "failed" and job["error"]["code"] == "STORAGE_FAILURE", job
    assert "No space left on device" in job["error"]["message"]
    assert failed_tasks(faulty, job["id"]) == [("ClipSource", "StorageUnavailableError")] * STEP_ATTEMPTS
    # And no half-written file is left, not even under a temporary name
    assert_left_nothing(faulty, job)
    assert not [p for p in root.rglob("*") if p.name.endswith(".partial")]
    # And the service still answers while the disk is full
    assert Client(faulty.client.base_url, None).request("GET", "/health").body == {"status": "ok"}
    assert faulty.client.request("GET", f"/api/jobs/{job['id']}").status == 200
    # When space is free again, Then the next job succeeds
    replace_artifacts.restore()
    after = faulty.client.wait(faulty.client.create(media_server.url("long.mp4"), 20, 21).body["id"])
    assert after["status"] == "succeeded", after


# Sources


def test_a_source_that_drops_every_connection_mid_read_fails_after_bounded_retries(faulty, media_dir):
    # Given a source that sends its headers and part of the body, then closes, every time
    with FaultySource(media_dir / "long.mp4", lambda n, start: "drop") as source:
        # When a job asks for a clip of it
        job = faulty.client.wait(faulty.client.create(source.url, 10, 11).body["id"])
    # Then the probe was tried as often as pipeline.asl.json allows, once per connection
    assert failed_tasks(faulty, job["id"]) == [("ProbeSource", "SourceUnreachableError")] * STEP_ATTEMPTS
    assert source.count("drop") == len(source.actions) == STEP_ATTEMPTS
    # And the job fails with the source's code and a message that says what happened
    assert job["status"] == "failed" and job["error"]["code"] == "SOURCE_UNREACHABLE", job
    assert "closed the connection" in job["error"]["message"]
    assert_left_nothing(faulty, job)


def test_a_source_that_drops_while_the_clip_reads_is_unreachable_not_a_bad_clip(faulty, media_dir):
    # Given a source that answers the probe, then drops every read past its head
    with FaultySource(media_dir / "long.mp4", past_the_head("drop")) as source:
        # When a job cuts a clip from far into it
        job = faulty.client.wait(faulty.client.create(source.url, 150, 151).body["id"])
    # Then the cut was retried by the state machine, with one cut-off read per attempt
    assert failed_tasks(faulty, job["id"]) == [("ClipSource", "SourceUnreachableError")] * STEP_ATTEMPTS
    assert source.count("drop") == STEP_ATTEMPTS
    # And the job blames the source, not the clip (a cut-off read once passed for an unreadable clip)
    assert job["error"]["code"] == "SOURCE_UNREACHABLE" and job["stage"] == "clip", job
    assert_left_nothing(faulty, job)


def test_a_source_that_drops_once_succeeds_on_the_retry(faulty, media_dir):
    # Given a source whose first connection is cut off and which serves properly after that
    with FaultySource(media_dir / "long.mp4", lambda n, start: "drop" if n == 1 else "serve") as source:
        # When a job asks for a clip of it
        job = faulty.client.wait(faulty.client.create(source.url, 10, 11).body["id"])
    # Then the probe's retry read it and the job succeeded
    assert job["status"] == "succeeded", job
    assert failed_tasks(faulty, job["id"]) == [("ProbeSource", "SourceUnreachableError")]
    assert source.count("drop") == 1
    assert [p.name for p in faulty.artifact_files(job["id"])] == ["clip.mp4"]


@pytest.mark.parametrize("stall", ["silent", "stall"], ids=["before-answering", "mid-body"])
def test_a_stalled_source_fails_after_bounded_retries_with_source_unreachable(faulty, media_dir, stall):
    # Given a source that stops sending (before its answer, or in the middle of the body)
    with FaultySource(media_dir / "long.mp4", lambda n, start: stall) as source:
        started = time.monotonic()
        # When a job asks for a clip of it
        job = faulty.client.wait(faulty.client.create(source.url, 10, 11).body["id"], timeout=30)
        elapsed = time.monotonic() - started
    # Then each probe gave up after the 1 s read timeout, three times, one connection each
    assert failed_tasks(faulty, job["id"]) == [("ProbeSource", "SourceUnreachableError")] * STEP_ATTEMPTS
    assert source.count(stall) == len(source.actions) == STEP_ATTEMPTS
    assert job["error"]["code"] == "SOURCE_UNREACHABLE" and "1s" in job["error"]["message"], job
    # And the backoff (1 s, then 2 s, fully jittered) kept the whole job well inside the probe's own limit
    assert elapsed < 15
    assert_left_nothing(faulty, job)


# ffmpeg


def test_ffmpeg_that_hangs_in_the_clip_is_killed_at_the_clip_time_limit(tmp_path, media_dir):
    # Given a 2 s clip time limit, a read timeout far longer, and a source that answers
    # the probe but goes silent when the clip reads past its head
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    running = start_service(tmp_path, clip_timeout_seconds=2, first_byte_timeout_seconds=30, work_dir=work_dir)
    try:
        with FaultySource(media_dir / "long.mp4", past_the_head("silent")) as source:
            created = running.client.create(source.url, 150, 151)
            started = time.monotonic()
            job = running.client.wait(created.body["id"], timeout=30)
            elapsed = time.monotonic() - started
            failures = failed_tasks(running, job["id"])
    finally:
        running.service.stop()
    # Then ffmpeg was stopped at the clip's limit, long before any read timeout, and not retried
    assert job["status"] == "failed" and job["error"]["code"] == "CLIP_TIMEOUT", job
    assert "2s clip time limit" in job["error"]["message"]
    assert failures == [("ClipSource", "ClipTimeoutError")]
    assert elapsed < 10
    assert source.count("silent") >= 1
    # And the killed run left nothing behind: no scratch files, no artifacts
    assert list(work_dir.iterdir()) == []
    assert job["resultKeys"] == {} and running.artifact_files(job["id"]) == []
