"""The one log line of a failed job, written where the failure is recorded."""

import logging

from ..domain.errors import InternalError
from ..domain.use_cases import RecordedFailure
from ..observability import log_context, logger


def log_recorded_failure(failure: RecordedFailure | None, error_name: str | None, cause: str | None) -> None:
    """Log the job's failure once: not for a job that had already finished (a retried FailJob)."""
    if failure is None or not failure.newly_failed or failure.job.error is None:
        return
    job = failure.job
    log_context(jobId=job.id, correlationId=job.correlation_id)
    # An internal error keeps the step's own cause, its trace; for the others the user's message says it.
    internal = job.error.code == InternalError.code
    logger.log(
        logging.ERROR if internal else logging.WARNING,
        "job failed",
        extra={
            "errorCode": job.error.code,
            "errorName": error_name,
            "failedStage": failure.failed_stage.value if failure.failed_stage else None,
            "cause": cause if internal else job.error.message,
        },
    )
