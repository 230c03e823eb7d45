"""Stopping a job that runs, and deleting what an ended job made: DELETE /api/jobs/{id}."""

from __future__ import annotations

from dataclasses import dataclass

from .. import errors
from ..jobs import Job, JobChange, JobStatus
from .context import Services, artifact_prefix, get_job
from .steps import seconds_since
from .webhooks import announce, ended_with

CANCEL_CAUSE = "cancelled by its owner"


@dataclass(frozen=True)
class Removal:
    job: Job
    # True when this call cancelled a queued or running job: its execution is stopped and its files
    # removed, while a step in flight may still be stopping. False when there was nothing left to stop.
    cancelled_now: bool
    # True when this call deleted an ended job's artifacts.
    deleted_now: bool = False
    artifacts_removed: int = 0
    # What could not be done, and what makes up for it, for the log.
    warnings: tuple[str, ...] = ()


def cancel_or_delete_job(services: Services, job_id: str, owner: str) -> Removal:
    """Cancel ``owner``'s job if it is queued or running; delete its artifacts if it has ended.

    A cancelled job's execution is stopped and whatever it had stored is removed;
    a step still running finds its job ended at its next write, stops, and removes
    what it stored since. An ended job keeps its record, as ``deleted``, until it
    expires. Repeating the call changes nothing more, but removes the job's files
    again, in case a step wrote one late or an earlier removal failed.

    Raises:
        JobNotFoundError, StorageUnavailableError (the job or its files could not be
        reached; the call may be repeated).
    """
    job = get_job(services, job_id, owner)
    if not job.status.is_terminal:
        try:
            return _cancel(services, job)
        except errors.JobFinishedError:
            # It ended while we looked: delete what it made instead.
            job = services.jobs.get(job_id)
    return _delete(services, job)


def _cancel(services: Services, job: Job) -> Removal:
    now = services.clock.now()
    stage = job.running_stage or job.stage
    cancelled = services.jobs.update(
        job.id,
        JobChange(
            status=JobStatus.CANCELLED,
            artifacts={},
            event=job.event("jobCancelled", stage, now, message=CANCEL_CAUSE),
            webhook=ended_with(job, JobStatus.CANCELLED, now),
        ),
    )
    warnings = []
    try:
        services.workflow.stop(job.id, CANCEL_CAUSE)
    except errors.ServiceUnavailableError as error:
        # Cancelled all the same: each step refuses to run for an ended job, so the execution fails at the next.
        warnings.append(f"the execution was not stopped ({error.message}); it fails at its next step")
    removed = services.artifacts.delete_prefix(artifact_prefix(job.id))
    services.telemetry.count("JobsCancelled", stage=stage.value)
    services.telemetry.observe("JobDuration", seconds_since(job.created_at, now), outcome="cancelled")
    try:
        announce(services, cancelled)
    except errors.ServiceUnavailableError as error:
        # The execution's end (ABORTED) is recorded next, and that announces a message never tried.
        warnings.append(f"the webhook was not queued ({error.message}); the execution's end queues it")
    return Removal(cancelled, cancelled_now=True, artifacts_removed=removed, warnings=tuple(warnings))


def _delete(services: Services, job: Job) -> Removal:
    newly_deleted = job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
    # Recorded first, so no one is handed a link to a file about to go.
    if newly_deleted:
        job = services.jobs.mark_deleted(job.id)
    removed = services.artifacts.delete_prefix(artifact_prefix(job.id))
    if newly_deleted:
        services.telemetry.count("JobsDeleted")
    return Removal(job, cancelled_now=False, deleted_now=newly_deleted, artifacts_removed=removed)
