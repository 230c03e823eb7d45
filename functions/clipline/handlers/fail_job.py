"""Pipeline task (the Catch target): record the failure on the job and remove partial artifacts."""

from ..composition import services
from ..domain.use_cases import fail_job
from ..observability import logger, tracer
from ..workflow.payloads import FailureInput, StepOutput


@logger.inject_lambda_context(correlation_id_path="correlationId", clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: object) -> dict:
    failure = FailureInput.model_validate(event)
    logger.append_keys(jobId=failure.job_id, stage="fail")
    return StepOutput.of(fail_job(services(), failure.job_id, failure.error, failure.cause)).dump()
