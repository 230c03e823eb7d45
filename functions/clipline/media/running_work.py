"""The work this process is doing for each job, so that stopping a job can end it at once.

Where the pipeline's steps run in the same process as the API (local mode), a
cancel stops the job's ffmpeg children here and now, and makes its transcription
stop at the next segment, rather than waiting for each step to find its job
ended. In Lambda the work runs elsewhere, nothing here is ever stopped, and the
steps stop themselves when they next write to the job.

A step says whose work it does with ``working_for``; everything it runs on its
thread is counted as that job's.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ..domain.errors import JobFinishedError

# Long enough for a queued transcription of a stopped job to reach a worker and be refused at once.
_REMEMBER_STOPPED_SECONDS = 3600.0

_current_job: ContextVar[str | None] = ContextVar("clipline_current_job", default=None)
_lock = threading.Lock()
_processes: dict[str, set[subprocess.Popen]] = {}
_stopped: dict[str, float] = {}  # job id -> when it was stopped, on the monotonic clock


@contextmanager
def working_for(job_id: str) -> Iterator[None]:
    token = _current_job.set(job_id)
    try:
        yield
    finally:
        _current_job.reset(token)


@contextmanager
def tracked(process: subprocess.Popen) -> Iterator[None]:
    """Count ``process`` as the current job's while the block runs; kill it at once if that job was stopped."""
    job_id = _current_job.get()
    if job_id is None:
        yield
        return
    with _lock:
        _processes.setdefault(job_id, set()).add(process)
        already_stopped = job_id in _stopped
    if already_stopped:
        process.kill()
    try:
        yield
    finally:
        with _lock:
            running = _processes.get(job_id)
            if running is not None:
                running.discard(process)
                if not running:
                    del _processes[job_id]


def stop(job_id: str) -> int:
    """Kill the job's processes, and mark it stopped for whatever it starts next. Returns how many were killed."""
    now = time.monotonic()
    with _lock:
        for old in [old for old, at in _stopped.items() if now - at > _REMEMBER_STOPPED_SECONDS]:
            del _stopped[old]
        _stopped[job_id] = now
        running = list(_processes.get(job_id, ()))
    for process in running:
        process.kill()
    return len(running)


def was_stopped() -> bool:
    """Whether the job whose work this is was stopped: long-running work in this process asks between its steps."""
    job_id = _current_job.get()
    with _lock:
        return job_id is not None and job_id in _stopped


def raise_if_stopped() -> None:
    """Raises:
    JobFinishedError: the job whose work this is was stopped.
    """
    if was_stopped():
        raise JobFinishedError(f"job {_current_job.get()} was stopped while it worked")


def running_processes(job_id: str) -> int:
    """How many of the job's processes are running: for tests and diagnostics."""
    with _lock:
        return len(_processes.get(job_id, ()))
