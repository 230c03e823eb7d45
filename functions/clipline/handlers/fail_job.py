"""Pipeline task (the Catch target): record the failure on the job and remove partial artifacts."""

from ..composition import services
from ..domain.use_cases import fail_job
from ..observability import lambda_logging, log_context, tracer
from ..workflow.payloads import FailureInput, StepOutput
from ._failure_log import log_recorded_failure


@lambda_logging(correlation_id_path="correlationId", stage="fail")
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: object) -> dict:
    failure = FailureInput.model_validate(event)
    log_context(jobId=failure.job_id)
    recorded = fail_job(services(), failure.job_id, failure.error, failure.cause)
    log_recorded_failure(recorded, failure.error, failure.cause)
    return StepOutput.of(recorded.job).dump()
