"""The one map from error code to HTTP status, and the error envelope."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from ..domain import errors
from .correlation import CORRELATION_HEADER
from .schemas import ErrorEnvelope

HTTP_STATUS_BY_CODE: dict[str, int] = {
    errors.MalformedJsonError.code: HTTPStatus.BAD_REQUEST,
    errors.ValidationFailedError.code: HTTPStatus.BAD_REQUEST,
    errors.InvalidTimecodeError.code: HTTPStatus.BAD_REQUEST,
    errors.InvalidTimeRangeError.code: HTTPStatus.BAD_REQUEST,
    errors.ClipTooLongError.code: HTTPStatus.BAD_REQUEST,
    errors.UnsupportedSourceUrlError.code: HTTPStatus.BAD_REQUEST,
    errors.SourceNotAllowedError.code: HTTPStatus.BAD_REQUEST,
    errors.InvalidSubtitlesError.code: HTTPStatus.BAD_REQUEST,
    errors.InvalidCursorError.code: HTTPStatus.BAD_REQUEST,
    errors.InvalidWebhookUrlError.code: HTTPStatus.BAD_REQUEST,
    errors.WebhookUrlNotAllowedError.code: HTTPStatus.BAD_REQUEST,
    errors.NoWebhookError.code: HTTPStatus.CONFLICT,
    # Found when the source is probed, so they reach users as a failed job's code;
    # they are the request's fault, like the 400s above.
    errors.NoAudioError.code: HTTPStatus.BAD_REQUEST,
    errors.NoVideoStreamError.code: HTTPStatus.BAD_REQUEST,
    errors.SourceUnreachableError.code: HTTPStatus.UNPROCESSABLE_ENTITY,
    errors.SourceTooLargeError.code: HTTPStatus.UNPROCESSABLE_ENTITY,
    errors.ForbiddenError.code: HTTPStatus.FORBIDDEN,
    errors.LinkInvalidError.code: HTTPStatus.FORBIDDEN,
    errors.LinkExpiredError.code: HTTPStatus.FORBIDDEN,
    errors.RouteNotFoundError.code: HTTPStatus.NOT_FOUND,
    errors.JobNotFoundError.code: HTTPStatus.NOT_FOUND,
    errors.ArtifactNotFoundError.code: HTTPStatus.NOT_FOUND,
    errors.MethodNotAllowedError.code: HTTPStatus.METHOD_NOT_ALLOWED,
    errors.PayloadTooLargeError.code: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    errors.UnsupportedMediaTypeError.code: HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    errors.JobNotReadyError.code: HTTPStatus.CONFLICT,
    errors.JobFailedError.code: HTTPStatus.CONFLICT,
    errors.JobCancelledError.code: HTTPStatus.CONFLICT,
    errors.UploadNotFoundError.code: HTTPStatus.NOT_FOUND,
    errors.UploadIncompleteError.code: HTTPStatus.CONFLICT,
    errors.UploadMismatchError.code: HTTPStatus.CONFLICT,
    errors.UploadExpiredError.code: HTTPStatus.GONE,
    errors.UploadTooLargeError.code: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    errors.JobDeletedError.code: HTTPStatus.GONE,
    errors.IdempotencyKeyReusedError.code: HTTPStatus.CONFLICT,
    errors.ResultExpiredError.code: HTTPStatus.GONE,
    errors.TooManyRequestsError.code: HTTPStatus.TOO_MANY_REQUESTS,
    errors.QuotaExceededError.code: HTTPStatus.TOO_MANY_REQUESTS,
    errors.ServiceUnavailableError.code: HTTPStatus.SERVICE_UNAVAILABLE,
    errors.StorageFailureError.code: HTTPStatus.SERVICE_UNAVAILABLE,
}


def http_status_for(code: str) -> int:
    """The HTTP status of an error code; codes the API never returns directly are 500."""
    return int(HTTP_STATUS_BY_CODE.get(code, HTTPStatus.INTERNAL_SERVER_ERROR))


def error_envelope(code: str, message: str, correlation_id: str) -> dict:
    return {"error": {"code": code, "message": message, "correlationId": correlation_id}}


# What the gateway itself may answer on any route: a request it cannot read, a
# refused key, a body over the limit, throttling and quotas, failures of the service.
GATEWAY_ERRORS: tuple[type[errors.ClipLineError], ...] = (
    errors.ValidationFailedError,
    errors.ForbiddenError,
    errors.PayloadTooLargeError,
    errors.TooManyRequestsError,
    errors.QuotaExceededError,
    errors.InternalError,
    errors.StorageFailureError,
)

CORRELATION_RESPONSE_HEADER = {
    CORRELATION_HEADER: {
        "description": "The x-correlation-id you sent (when sane), else one the service made",
        "schema": {"type": "string"},
    }
}
RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Whole seconds to wait before asking again (on 202, 409 JOB_NOT_READY and 429)",
        "schema": {"type": "integer"},
    }
}


def error_responses(*route_errors: type[errors.ClipLineError]) -> dict[int, dict[str, Any]]:
    """OpenAPI responses for the errors a route may answer, with the gateway's, grouped by status."""
    codes_by_status: dict[int, list[str]] = {}
    for error in (*route_errors, *GATEWAY_ERRORS):
        codes = codes_by_status.setdefault(http_status_for(error.code), [])
        if error.code not in codes:
            codes.append(error.code)
    responses: dict[int, dict[str, Any]] = {}
    for status, codes in sorted(codes_by_status.items()):
        headers = dict(CORRELATION_RESPONSE_HEADER)
        if errors.TooManyRequestsError.code in codes or errors.JobNotReadyError.code in codes:
            headers.update(RETRY_AFTER_HEADER)
        responses[status] = {
            "description": f"{HTTPStatus(status).phrase}: {', '.join(codes)}",
            "headers": headers,
            "content": {"application/json": {"model": ErrorEnvelope}},
        }
    return responses
