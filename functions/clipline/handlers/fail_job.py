"""Pipeline task (the Catch target): record the failure on the job and remove partial artifacts."""

import logging

from ..composition import services
from ..domain.errors import InternalError
from ..domain.use_cases import fail_job
from ..observability import lambda_logging, log_context, logger, tracer
from ..workflow.payloads import FailureInput, StepOutput


@lambda_logging(correlation_id_path="correlationId", stage="fail")
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: object) -> dict:
    failure = FailureInput.model_validate(event)
    log_context(jobId=failure.job_id)
    job = fail_job(services(), failure.job_id, failure.error, failure.cause)
    if job.error is not None:
        # The one log line of a pipeline failure; an internal error keeps the step's own cause (its trace).
        internal = job.error.code == InternalError.code
        logger.log(
            logging.ERROR if internal else logging.WARNING,
            "job failed",
            extra={
                "errorCode": job.error.code,
                "errorName": failure.error,
                "failedStage": job.stage.value,
                "cause": failure.cause if internal else job.error.message,
            },
        )
    return StepOutput.of(job).dump()
