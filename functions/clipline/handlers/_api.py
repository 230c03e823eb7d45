"""The template every API handler follows: log with the request's correlation id, resolve the route."""

from typing import Callable

from ..api.resolver import handle_api_event
from ..observability import lambda_logging, tracer


def api_handler() -> Callable[[dict, object], dict]:
    """A Lambda handler for the REST API; API Gateway maps one route to each such function."""

    # The resolver sets the correlation id itself: the caller's x-correlation-id wins over the request id.
    @lambda_logging(stage="api")
    @tracer.capture_lambda_handler
    def lambda_handler(event: dict, context: object) -> dict:
        return handle_api_event(event, context)

    return lambda_handler
