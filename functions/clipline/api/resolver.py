"""The REST API: its routes gathered on one resolver, request validation and the one error mapping.

Each API Lambda resolves its event with this resolver; local mode's gateway
turns HTTP requests into the same API Gateway REST proxy events. The routes live
by concern in ``job_routes`` and ``upload_routes``, importing them registers them.
"""

from __future__ import annotations

import base64
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from ..composition import services
from ..domain import errors
from ..observability import logger
from . import job_routes, upload_routes
from .app import POLL_AFTER_SECONDS, app, correlation_id, json_response
from .errors import error_envelope, http_status_for

__all__ = ["app", "handle_api_event"]
# Importing a route module registers its routes on app; named here so the import is plainly on purpose.
ROUTE_MODULES = (job_routes, upload_routes)


def handle_api_event(event: dict, context: object) -> dict:
    """Resolve one API Gateway proxy event and count the answer by route template and status class."""
    response = app.resolve(_with_lowercase_media_type(event), context)
    services().telemetry.count(
        "ApiRequests", route=event.get("resource") or "unmatched", statusClass=f"{response['statusCode'] // 100}xx"
    )
    return response


def _with_lowercase_media_type(event: dict) -> dict:
    """The event with its Content-Type's media type in lower case.

    Media types are case-insensitive, but Powertools compares them as written,
    so ``Application/JSON`` would be refused as unsupported.
    """
    headers = event.get("headers") or {}
    name = next((name for name in headers if name.lower() == "content-type"), None)
    if name is None or not isinstance(headers[name], str):
        return event
    media_type, _, parameters = headers[name].partition(";")
    return {**event, "headers": {**headers, name: media_type.strip().lower() + (";" + parameters if parameters else "")}}


@app.exception_handler(errors.ClipLineError)
def handle_clipline_error(error: errors.ClipLineError) -> Response:
    status = http_status_for(error.code)
    if status >= 500:
        logger.error("request failed", extra={"errorCode": error.code, "cause": error.message})
    else:
        logger.info("request refused", extra={"errorCode": error.code, "cause": error.message})
    headers = {"Retry-After": str(POLL_AFTER_SECONDS)} if isinstance(error, errors.JobNotReadyError) else {}
    return json_response(status, error_envelope(error.code, error.message, correlation_id()), **headers)


@app.exception_handler(RequestValidationError)
def handle_validation_error(error: RequestValidationError) -> Response:
    # Powertools also parses form bodies; ours are JSON only, so say that rather than name fields.
    media_type = (app.current_event.headers.get("content-type") or "").partition(";")[0].strip()
    if media_type and media_type != "application/json":
        return handle_clipline_error(_UNSUPPORTED_MEDIA_TYPE)
    problems: list[Any] = list(error.errors())
    if any(problem.get("type") == "json_invalid" for problem in problems):
        return handle_clipline_error(errors.MalformedJsonError("the request body is not valid JSON"))
    return handle_clipline_error(errors.ValidationFailedError(_describe(problems)))


_UNSUPPORTED_MEDIA_TYPE = errors.UnsupportedMediaTypeError("send the request body as application/json")


@app.exception_handler(RequestUnsupportedContentType)
def handle_unsupported_content_type(_: RequestUnsupportedContentType) -> Response:
    return handle_clipline_error(_UNSUPPORTED_MEDIA_TYPE)


@app.exception_handler(UnicodeDecodeError)
def handle_undecodable(error: UnicodeDecodeError) -> Response:
    # A body the gateway had to base64-encode because it is not UTF-8 cannot be JSON;
    # any other decoding failure is ours.
    event = app.current_event
    if event.is_base64_encoded and not _decodes_as_utf8(event.body or ""):
        return handle_clipline_error(errors.MalformedJsonError("the request body is not UTF-8 JSON"))
    return handle_unexpected(error)


def _decodes_as_utf8(base64_body: str) -> bool:
    try:
        base64.b64decode(base64_body).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _describe(problems: list[dict]) -> str:
    parts = []
    for problem in problems[:5]:
        location = ".".join(str(part) for part in problem.get("loc", ()) if part not in ("body",))
        parts.append(f"{location or 'body'}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts)


@app.not_found
def handle_not_found(_: NotFoundError) -> Response:
    return handle_clipline_error(errors.RouteNotFoundError(f"no route {app.current_event.http_method} {app.current_event.path}"))


@app.exception_handler(Exception)
def handle_unexpected(error: Exception) -> Response:
    logger.exception("unexpected error")
    return json_response(500, error_envelope(errors.InternalError.code, "an internal error occurred", correlation_id()))
