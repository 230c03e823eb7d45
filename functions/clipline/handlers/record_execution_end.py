"""EventBridge target for executions that ended without reaching FailJob (global timeout, abort)."""

from ..composition import services
from ..domain.use_cases import record_execution_end
from ..observability import lambda_logging, log_context, tracer
from ..workflow.payloads import ExecutionEndEvent
from ._failure_log import log_recorded_failure


@lambda_logging(stage="executionEnd")
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: object) -> None:
    detail = ExecutionEndEvent.model_validate(event).detail
    log_context(jobId=detail.name)
    recorded = record_execution_end(services(), detail.name, detail.status, detail.error, detail.cause)
    log_recorded_failure(recorded, detail.error or detail.status, detail.cause)
