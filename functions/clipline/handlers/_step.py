"""The template every pipeline-step handler follows."""

from typing import Callable

from ..composition import services
from ..domain.jobs import Job
from ..domain.use_cases import Services
from ..media import running_work
from ..observability import lambda_logging, log_context, logger, tracer
from ..workflow.payloads import StepInput, StepOutput


def step_handler(use_case: Callable[[Services, str], Job], stage: str) -> Callable[[dict, object], dict]:
    """A Lambda handler that logs with the job's correlation id and runs ``use_case`` for the job.

    A failure propagates as the Lambda error the state machine's Retry and Catch
    match; FailJob, which handles it, logs it.
    """

    @lambda_logging(correlation_id_path="correlationId", stage=stage)
    @tracer.capture_lambda_handler
    def lambda_handler(event: dict, context: object) -> dict:
        step = StepInput.model_validate(event)
        log_context(jobId=step.job_id)
        with running_work.working_for(step.job_id):
            job = use_case(services(), step.job_id)
        logger.info("step finished", extra={"status": job.status.value, "progress": job.progress})
        return StepOutput.of(job).dump()

    return lambda_handler
