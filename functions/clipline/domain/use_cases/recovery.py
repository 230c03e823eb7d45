"""Settling the jobs a host left unfinished when it stopped."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import errors
from ..jobs import (
    Job,
    JobStatus,
)
from .context import SUBTITLES_FILE, Services, artifact_key
from .failures import RecordedFailure, fail_job

# Jobs read per round of ``interrupt_unfinished_jobs``.
INTERRUPT_BATCH = 100


@dataclass(frozen=True)
class Recovery:
    """What ``interrupt_unfinished_jobs`` did, job by job."""

    failed: list[RecordedFailure] = field(default_factory=list)
    # Ids of the jobs stored but never started that it started now.
    started: list[str] = field(default_factory=list)
    # Job id and the error that kept it from handling that job; the others were handled all the same.
    unhandled: list[tuple[str, Exception]] = field(default_factory=list)


def interrupt_unfinished_jobs(services: Services, reason: str) -> Recovery:
    """Settle every job still queued or running, and report what it did with each.

    For a host whose executions die with it (local mode keeps them in memory): called
    when it starts, before it takes requests, while no other host on the same store is
    alive, so every unfinished job lost its execution.

    A running job fails with INTERRUPTED through ``fail_job``, as a caught step failure
    does: partial artifacts removed, the failure counted; ``reason`` is the message users
    read. Its steps' scratch folders, which the kill left behind, are removed too.
    A queued job did no work yet, so it is started, as ``create_job`` starts a replayed
    request whose job was stored but never started; it fails like a running one if it
    cannot start, or if its own subtitles were never stored.

    A job that finishes or is removed meanwhile is left alone, so a second call changes
    nothing. A job whose handling raises is reported in ``unhandled`` and the rest are
    handled anyway: one bad record must not keep the host from starting.
    ASR records stay as they are: one left running is never a cache entry (only done
    ones are), no route shows it, and the sweeper removes it and its files when it expires.

    Raises:
        StorageUnavailableError: the job store could not list the unfinished jobs.
    """
    error_name = errors.JobInterruptedError.__name__
    cause = json.dumps({"errorType": error_name, "errorMessage": reason})
    recovery = Recovery()
    tried: set[str] = set()
    while True:
        # Handled jobs may stay listed (a started one is still queued); the limit grows past
        # the tried ones, so such a job cannot hide the rest or loop for ever.
        fresh = [job for job in services.jobs.list_unfinished(INTERRUPT_BATCH + len(tried)) if job.id not in tried]
        if not fresh:
            return recovery
        for job in fresh:
            tried.add(job.id)
            try:
                if job.status is JobStatus.QUEUED and _start_stored_job(services, job):
                    recovery.started.append(job.id)
                    continue
                recorded = fail_job(services, job.id, error_name, cause)
                if recorded.newly_failed:
                    recovery.failed.append(recorded)
                    remove_scratch_folders(services, job.id)
            except errors.JobNotFoundError:
                continue  # removed meanwhile, by `clipline cleanup` in another process
            except Exception as error:  # noqa: BLE001 - reported to the caller, who logs it
                recovery.unhandled.append((job.id, error))


def _start_stored_job(services: Services, job: Job) -> bool:
    """Start the execution of a job stored but never started; False when it cannot run."""
    if job.request.subtitles_sha256 is not None and not services.artifacts.exists(artifact_key(job.id, SUBTITLES_FILE)):
        return False  # only the lost request held them
    try:
        services.workflow.start(job)
    except errors.ServiceUnavailableError:
        return False
    return True


def remove_scratch_folders(services: Services, job_id: str) -> list[Path]:
    """Remove the scratch folders of ``job_id``'s steps from the work dir, and return them.

    For a job whose host was killed mid-step: ``scratch_folder`` removes its folder only
    when the step ends. Each step names its folder ``<step>-<job id>-<random>`` at its own
    call site; matching any step keeps a new one covered without a list of prefixes to
    keep in step with those call sites, and a job id (a UUID) names no one else's folder.
    """
    work_dir = services.work_dir or Path(tempfile.gettempdir())
    folders = [path for path in work_dir.glob(f"*-{job_id}-*") if path.is_dir() and not path.is_symlink()]
    for folder in folders:
        shutil.rmtree(folder)
    return folders
