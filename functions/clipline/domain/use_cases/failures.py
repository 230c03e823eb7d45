"""Recording a job's failure: the Catch target's use case, and executions that ended without one."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .. import errors
from ..jobs import (
    Job,
    JobChange,
    JobError,
    JobStatus,
    Stage,
)
from .context import Services, artifact_prefix
from .steps import seconds_since
from .webhooks import announce, ended_with


@dataclass(frozen=True)
class RecordedFailure:
    """A job after ``fail_job``: ``newly_failed`` is False when it had already finished and was left alone.

    ``failed_stage`` is the stage that failed, or None when the failure came between stages.
    """

    job: Job
    newly_failed: bool
    failed_stage: Stage | None = None


# Errors of the Transcribe state itself; a heartbeat timeout before any worker
# picked the request up arrives as the first, with the Transcribe stage never entered.
_TRANSCRIPTION_ERRORS = {
    errors.TranscriptionTimeoutError.__name__,
    errors.TranscriptionUpstreamError.__name__,
    errors.TranscriptionRejectedError.__name__,
}


def fail_job(services: Services, job_id: str, error_name: str, cause: str | None) -> RecordedFailure:
    """Mark a job failed with the code of ``error_name`` and remove what it had written.

    Called by the state machine's Catch, and for executions that ended without one
    (the global timeout). Failing a job that already finished leaves it unchanged.
    """
    code = errors.code_for_error_name(error_name)
    message = _failure_message(code, cause)
    job = services.jobs.get(job_id)
    if job.status.is_terminal:
        _announce_again(services, job)
        return RecordedFailure(job, newly_failed=False)
    failed_stage = job.running_stage or (Stage.TRANSCRIBE if error_name in _TRANSCRIPTION_ERRORS else None)
    deleted = services.artifacts.delete_prefix(artifact_prefix(job_id))
    now = services.clock.now()
    try:
        job = services.jobs.update(
            job_id,
            JobChange(
                status=JobStatus.FAILED,
                artifacts={},
                error=JobError(code=code, message=message),
                last_heartbeat_at=now,
                event=job.event(
                    "jobFailed",
                    failed_stage or job.stage,
                    now,
                    code=code,
                    message=message if not deleted else f"{message} ({deleted} partial artifact(s) removed)",
                ),
                webhook=ended_with(job, JobStatus.FAILED, now),
            ),
        )
    except errors.JobFinishedError:
        return RecordedFailure(services.jobs.get(job_id), newly_failed=False)
    services.telemetry.count("JobsFailed", errorCode=code)
    services.telemetry.observe("JobDuration", seconds_since(job.created_at, now), outcome="failed")
    announce(services, job)
    if failed_stage is Stage.TRANSCRIBE:
        # A worker counts its own success; failures, heartbeat timeouts included, all end here.
        services.telemetry.count("AsrTranscriptions", status=code.lower())
    return RecordedFailure(job, newly_failed=True, failed_stage=failed_stage)




def _announce_again(services: Services, job: Job) -> None:
    """Announce an ended job's message that was never tried: the step that ended the job may have
    failed to announce it (its queue unreachable), which is what brought the job here. A message
    announced twice is sent once, unless two deliveries race; receivers dedupe by webhook-id."""
    if job.webhook is not None and job.webhook.is_due and job.webhook.attempt_count == 0:
        announce(services, job)


def _failure_message(code: str, cause: str | None) -> str:
    """The user-facing message of a failure: our own errors' messages, never internals."""
    if code == errors.InternalError.code:
        return "an internal error stopped the job"
    if code == errors.JobTimeoutError.code:
        return "the job ran past its time limit"
    message = None
    if cause:
        try:
            message = json.loads(cause).get("errorMessage")
        except (ValueError, AttributeError):
            message = None
    if code == errors.ClipTimeoutError.code and not message:
        return "a pipeline step ran past its time limit"
    return str(message or code)[:500]


# What an execution's terminal status means for a job the pipeline did not finish itself.
_EXECUTION_END_ERRORS = {
    "TIMED_OUT": errors.JobTimeoutError.__name__,
    "ABORTED": errors.JobAbortedError.__name__,
}


def record_execution_end(
    services: Services, job_id: str, status: str, error_name: str | None, cause: str | None
) -> RecordedFailure | None:
    """Fail a job whose execution ended (timed out, aborted, failed) while it was unfinished.

    Jobs that already succeeded or failed are left alone, so this is safe to repeat.
    """
    if status == "SUCCEEDED":
        return None
    try:
        job = services.jobs.get(job_id)
    except errors.JobNotFoundError:
        return None
    if job.status.is_terminal:
        # The step that ended it may have failed to queue its webhook, which is what failed the execution.
        _announce_again(services, job)
        return None
    return fail_job(services, job_id, _EXECUTION_END_ERRORS.get(status, error_name or "InternalError"), cause)
