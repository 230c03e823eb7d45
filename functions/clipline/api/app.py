"""The API's resolver and what every route shares: the caller, the correlation id, the JSON answer, job ids.

Routes register on ``app`` in their own modules (``job_routes``, ``upload_routes``);
``clipline.api.resolver`` gathers them with the one error mapping.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.params import Path

from ..domain import errors
from ..observability import log_context
from .correlation import CORRELATION_HEADER, choose_correlation_id
from .cors import ConsoleOrigins

# Job ids are uuid4().hex; anything else names no job, so it never reaches the store.
_JOB_ID = re.compile(r"[0-9a-f]{32}")
# How long a client should wait before asking about an unfinished job again
# (Retry-After on 202 and on 409 JOB_NOT_READY): a short clip takes a few seconds.
POLL_AFTER_SECONDS = 2

app = APIGatewayRestResolver(enable_validation=True, cors=ConsoleOrigins())


def correlation_id() -> str:
    """The caller's x-correlation-id when it is sane, else the request id API Gateway assigned."""
    event = app.current_event
    given = next((value for name, value in (event.headers or {}).items() if name.lower() == CORRELATION_HEADER), None)
    return choose_correlation_id(given, event.request_context.request_id or uuid.uuid4().hex)


def caller() -> str:
    """The API key id the gateway authenticated; API Gateway rejects keyless calls before us."""
    key_id = app.current_event.request_context.identity.api_key_id
    if not key_id:
        raise errors.ForbiddenError("an API key is required")
    return key_id


def _log_with_correlation_id(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
    log_context(correlationId=correlation_id())
    return next_middleware(app)


app.use(middlewares=[_log_with_correlation_id])


def json_response(status: int, body: dict, **headers: str) -> Response:
    return Response(
        status_code=status,
        content_type="application/json",
        body=body,
        headers={CORRELATION_HEADER: correlation_id(), **headers},
    )


def checked_job_id(job_id: str) -> str:
    if not _JOB_ID.fullmatch(job_id):
        raise errors.JobNotFoundError("no job has that id")
    log_context(jobId=job_id)
    return job_id


# Path parameters are named as in API Gateway's resources (clipline.api.routes), so the
# OpenAPI document and the deployed API agree. An id of another shape names no job:
# 404, not a validation error, so the id pattern is described rather than enforced here.
JobId = Annotated[str, Path(description="The job's id: 32 lowercase hex digits", examples=["52ae7c5d56dc493cb7268d3eace73466"])]
