"""EventBridge target for executions that ended without reaching FailJob (global timeout, abort)."""

from ..composition import services
from ..domain.use_cases import record_execution_end
from ..observability import logger, tracer
from ..workflow.payloads import ExecutionEndEvent


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: object) -> None:
    detail = ExecutionEndEvent.model_validate(event).detail
    logger.append_keys(jobId=detail.name, stage="executionEnd")
    record_execution_end(services(), detail.name, detail.status, detail.error, detail.cause)
