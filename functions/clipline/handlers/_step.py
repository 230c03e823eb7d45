"""The template every pipeline-step handler follows."""

from typing import Callable

from ..composition import services
from ..domain.jobs import Job
from ..domain.use_cases import Services
from ..observability import logger, tracer
from ..workflow.payloads import StepInput, StepOutput


def step_handler(use_case: Callable[[Services, str], Job], stage: str) -> Callable[[dict, object], dict]:
    """A Lambda handler that logs with the job's correlation id and runs ``use_case`` for the job."""

    @logger.inject_lambda_context(correlation_id_path="correlationId", clear_state=True)
    @tracer.capture_lambda_handler
    def lambda_handler(event: dict, context: object) -> dict:
        step = StepInput.model_validate(event)
        logger.append_keys(jobId=step.job_id, stage=stage)
        return StepOutput.of(use_case(services(), step.job_id)).dump()

    return lambda_handler
