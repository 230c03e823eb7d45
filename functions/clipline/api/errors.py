"""The one map from error code to HTTP status, and the error envelope."""

from __future__ import annotations

from http import HTTPStatus

from ..domain import errors

HTTP_STATUS_BY_CODE: dict[str, int] = {
    errors.MalformedJsonError.code: HTTPStatus.BAD_REQUEST,
    errors.ValidationFailedError.code: HTTPStatus.BAD_REQUEST,
    errors.InvalidTimecodeError.code: HTTPStatus.BAD_REQUEST,
    errors.InvalidTimeRangeError.code: HTTPStatus.BAD_REQUEST,
    errors.ClipTooLongError.code: HTTPStatus.BAD_REQUEST,
    errors.UnsupportedSourceUrlError.code: HTTPStatus.BAD_REQUEST,
    errors.SourceNotAllowedError.code: HTTPStatus.BAD_REQUEST,
    errors.InvalidSubtitlesError.code: HTTPStatus.BAD_REQUEST,
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
    errors.JobNotReadyError.code: HTTPStatus.CONFLICT,
    errors.JobFailedError.code: HTTPStatus.CONFLICT,
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
