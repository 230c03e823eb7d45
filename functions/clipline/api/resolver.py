"""The REST API: routes, request validation and the one error mapping.

Each API Lambda resolves its event with this resolver; local mode's gateway
turns HTTP requests into the same API Gateway REST proxy events.
"""

from __future__ import annotations

import base64
import re
import uuid
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query

from ..composition import services
from ..domain import errors
from ..domain.use_cases import (
    NewJobRequest,
    cancel_or_delete_job,
    create_upload,
    create_job,
    get_job,
    get_job_result,
    list_jobs,
    redeliver_webhook,
)
from ..domain.job_listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from ..domain.jobs import JobStatus
from ..observability import log_context, logger
from .correlation import CORRELATION_HEADER, choose_correlation_id
from .errors import (
    CORRELATION_RESPONSE_HEADER,
    RETRY_AFTER_HEADER,
    error_envelope,
    error_responses,
    http_status_for,
)
from .schemas import CreateJobBody, CreateUploadBody, JobListView, JobView, ResultView, UploadView, to_wire

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# Job ids are uuid4().hex; anything else names no job, so it never reaches the store.
_JOB_ID = re.compile(r"[0-9a-f]{32}")
# How long a client should wait before asking about an unfinished job again
# (Retry-After on 202 and on 409 JOB_NOT_READY): a short clip takes a few seconds.
POLL_AFTER_SECONDS = 2

app = APIGatewayRestResolver(enable_validation=True)


def correlation_id() -> str:
    """The caller's x-correlation-id when it is sane, else the request id API Gateway assigned."""
    event = app.current_event
    given = next((value for name, value in (event.headers or {}).items() if name.lower() == CORRELATION_HEADER), None)
    return choose_correlation_id(given, event.request_context.request_id or uuid.uuid4().hex)


def _caller() -> str:
    """The API key id the gateway authenticated; API Gateway rejects keyless calls before us."""
    key_id = app.current_event.request_context.identity.api_key_id
    if not key_id:
        raise errors.ForbiddenError("an API key is required")
    return key_id


def _log_with_correlation_id(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
    log_context(correlationId=correlation_id())
    return next_middleware(app)


app.use(middlewares=[_log_with_correlation_id])


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


def _json(status: int, body: dict, **headers: str) -> Response:
    return Response(
        status_code=status,
        content_type="application/json",
        body=body,
        headers={CORRELATION_HEADER: correlation_id(), **headers},
    )


@app.post(
    "/api/jobs",
    operation_id="createJob",
    summary="Create a clip job",
    description="Validates the request, stores the job and starts its pipeline. The job is returned at once "
    "(202); poll its status. With Idempotency-Key, a repeat of the same request returns the same job.",
    tags=["jobs"],
    responses={
        202: {
            "description": "The job, queued",
            "headers": {
                "Location": {"description": "The job's status URL", "schema": {"type": "string"}},
                **RETRY_AFTER_HEADER,
                **CORRELATION_RESPONSE_HEADER,
            },
            "content": {"application/json": {"model": JobView}},
            # Where to go next with the new job's id, for clients and tools that follow links.
            "links": {
                "GetJob": {"operationId": "getJob", "parameters": {"id": "$response.body#/id"}},
                "GetJobResult": {"operationId": "getJobResult", "parameters": {"id": "$response.body#/id"}},
            },
        },
        **error_responses(
            errors.MalformedJsonError,
            errors.ValidationFailedError,
            errors.InvalidTimecodeError,
            errors.InvalidTimeRangeError,
            errors.ClipTooLongError,
            errors.UnsupportedSourceUrlError,
            errors.SourceNotAllowedError,
            errors.InvalidSubtitlesError,
            errors.InvalidWebhookUrlError,
            errors.WebhookUrlNotAllowedError,
            errors.UnsupportedMediaTypeError,
            errors.IdempotencyKeyReusedError,
            errors.SourceUnreachableError,
            errors.UploadNotFoundError,
            errors.UploadIncompleteError,
            errors.UploadMismatchError,
            errors.UploadExpiredError,
            # Starting the job's execution failed; the job was not kept.
            errors.ServiceUnavailableError,
        ),
    },
)
def post_job(
    body: Annotated[CreateJobBody, Body()],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="1-255 visible ASCII characters; a repeat of the same request with the same key "
            "within 24 hours returns the same job",
            examples=["clip-2026-11-25-001"],
        ),
    ] = None,
) -> Response[dict]:
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise errors.ValidationFailedError("Idempotency-Key must be 1-255 visible ASCII characters")
    job = create_job(
        services(),
        NewJobRequest(
            source_url=body.source_url,
            start=body.start,
            end=body.end,
            transcribe=body.transcribe,
            language=body.language,
            retention_seconds=body.retention_seconds,
            accuracy=body.accuracy,
            burn_subtitles=body.burn_subtitles,
            subtitle_style=body.subtitle_style,
            subtitles_srt=body.subtitles.srt if body.subtitles else None,
            webhook_url=body.webhook_url,
            source_key=body.source_key,
        ),
        owner=_caller(),
        correlation_id=correlation_id(),
        idempotency_key=idempotency_key,
    )
    log_context(jobId=job.id)
    logger.info("job accepted", extra={"status": job.status.value})
    # A replay may return a job that has already finished: nothing to wait for then.
    poll_after = {} if job.status.is_terminal else {"Retry-After": str(POLL_AFTER_SECONDS)}
    return _json(202, to_wire(JobView.of(job)), Location=f"/api/jobs/{job.id}", **poll_after)


@app.get(
    "/api/jobs",
    operation_id="listJobs",
    summary="List your jobs",
    description="Your jobs, newest first, a page at a time: pass each page's nextCursor as cursor to get the next, "
    "until nextCursor is null. Jobs stay listed until they expire.",
    tags=["jobs"],
    responses={
        200: {
            "description": "A page of jobs",
            "headers": dict(CORRELATION_RESPONSE_HEADER),
            "content": {"application/json": {"model": JobListView}},
        },
        **error_responses(errors.InvalidCursorError),
    },
)
def get_jobs(
    status: Annotated[JobStatus | None, Query(description="Only jobs with this status")] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"Jobs per page, at most {MAX_PAGE_SIZE}")
    ] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=256, description="The previous page's nextCursor, to go on from there")
    ] = None,
) -> Response[dict]:
    listing = list_jobs(services(), owner=_caller(), status=status, limit=limit, cursor=cursor)
    return _json(200, to_wire(JobListView.of(listing)))


def _checked_job_id(job_id: str) -> str:
    if not _JOB_ID.fullmatch(job_id):
        raise errors.JobNotFoundError("no job has that id")
    log_context(jobId=job_id)
    return job_id


# Path parameters are named as in API Gateway's resources (clipline.api.routes), so the
# OpenAPI document and the deployed API agree. An id of another shape names no job:
# 404, not a validation error, so the id pattern is described rather than enforced here.
JobId = Annotated[str, Path(description="The job's id: 32 lowercase hex digits", examples=["52ae7c5d56dc493cb7268d3eace73466"])]
@app.get(
    "/api/jobs/<id>",
    operation_id="getJob",
    summary="Get a job's status",
    description="Status, stage, progress 0-100 and the most recent events of one of your jobs.",
    tags=["jobs"],
    responses={
        200: {
            "description": "The job",
            "headers": dict(CORRELATION_RESPONSE_HEADER),
            "content": {"application/json": {"model": JobView}},
        },
        **error_responses(errors.JobNotFoundError),
    },
)
def get_job_status(id: JobId) -> Response[dict]:  # noqa: A002 - the route's parameter name
    job_id = _checked_job_id(id)
    return _json(200, to_wire(JobView.of(get_job(services(), job_id, owner=_caller()))))


@app.get(
    "/api/jobs/<id>/result",
    operation_id="getJobResult",
    summary="Get signed links to a finished job's artifacts",
    description="Expiring links to the clip and, when asked for, the transcript files and the burned-in clip. "
    "404 for an unknown job, 409 while it runs or when it failed or was cancelled, 410 once it has expired or "
    "its artifacts were deleted.",
    tags=["jobs"],
    responses={
        200: {
            "description": "The artifacts, each with a signed link",
            "headers": dict(CORRELATION_RESPONSE_HEADER),
            "content": {"application/json": {"model": ResultView}},
        },
        **error_responses(
            errors.JobNotFoundError,
            errors.JobNotReadyError,
            errors.JobFailedError,
            errors.JobCancelledError,
            errors.JobDeletedError,
            errors.ResultExpiredError,
        ),
    },
)
def get_result(id: JobId) -> Response[dict]:  # noqa: A002 - the route's parameter name
    job_id = _checked_job_id(id)
    return _json(200, to_wire(ResultView.of(get_job_result(services(), job_id, owner=_caller()))))


@app.post(
    "/api/jobs/<id>/webhook/redeliver",
    operation_id="redeliverWebhook",
    summary="Send an ended job's webhook again",
    description="Queues the job's job.succeeded, job.failed or job.cancelled message again, with the same webhook-id "
    "and body and a fresh retry schedule, whatever became of the last round. 409 while the job runs or when it has "
    "no webhook, 410 once the job was deleted.",
    tags=["jobs"],
    responses={
        202: {
            "description": "The job, its webhook pending again",
            "headers": dict(CORRELATION_RESPONSE_HEADER),
            "content": {"application/json": {"model": JobView}},
        },
        # 503: the queue could not take the message; the webhook is pending again, so call once more.
        **error_responses(
            errors.JobNotFoundError,
            errors.JobNotReadyError,
            errors.NoWebhookError,
            errors.JobDeletedError,
            errors.ServiceUnavailableError,
        ),
    },
)
def post_webhook_redelivery(id: JobId) -> Response[dict]:  # noqa: A002 - the route's parameter name
    job_id = _checked_job_id(id)
    job = redeliver_webhook(services(), job_id, owner=_caller())
    logger.info("webhook redelivery queued")
    return _json(202, to_wire(JobView.of(job)))


@app.delete(
    "/api/jobs/<id>",
    operation_id="deleteJob",
    summary="Cancel a job, or delete an ended job's artifacts",
    description="A queued or running job is cancelled: its execution is stopped, its running ffmpeg or "
    "transcription ends, and what it stored is removed (202, the job as cancelled). An ended job's artifacts "
    "are deleted now; its record stays, as deleted, until it expires (204). Calling again answers 204.",
    tags=["jobs"],
    responses={
        202: {
            "description": "Cancelled: the job, now cancelled; a step in flight stops within seconds",
            "headers": dict(CORRELATION_RESPONSE_HEADER),
            "content": {"application/json": {"model": JobView}},
        },
        204: {
            "description": "Nothing left to stop: the ended job's artifacts are deleted, or it was cancelled before",
            "headers": dict(CORRELATION_RESPONSE_HEADER),
        },
        **error_responses(errors.JobNotFoundError),
    },
)
def delete_job(id: JobId) -> Response[dict | None]:  # noqa: A002 - the route's parameter name
    job_id = _checked_job_id(id)
    removal = cancel_or_delete_job(services(), job_id, owner=_caller())
    for warning in removal.warnings:
        logger.warning(warning)
    if removal.cancelled_now:
        logger.info("job cancelled", extra={"stage": removal.job.stage.value, "artifactsRemoved": removal.artifacts_removed})
        return _json(202, to_wire(JobView.of(removal.job)))
    if removal.deleted_now:
        logger.info("job deleted", extra={"artifactsRemoved": removal.artifacts_removed})
    return Response(status_code=204, body=None, headers={CORRELATION_HEADER: correlation_id()})


@app.post(
    "/api/uploads",
    operation_id="createUpload",
    summary="Get a signed link to upload a source",
    description="Records an upload and answers with a link for one PUT of exactly sizeBytes of contentType, valid "
    "for 15 minutes by default. Once the PUT succeeded, create jobs with its sourceKey instead of a sourceUrl; "
    "the upload is kept for 24 hours by default.",
    tags=["uploads"],
    responses={
        201: {
            "description": "The upload link",
            "headers": dict(CORRELATION_RESPONSE_HEADER),
            "content": {"application/json": {"model": UploadView}},
        },
        **error_responses(
            errors.MalformedJsonError,
            errors.ValidationFailedError,
            errors.UnsupportedMediaTypeError,
            errors.UploadTooLargeError,
        ),
    },
)
def post_upload(body: Annotated[CreateUploadBody, Body()]) -> Response[dict]:
    link = create_upload(services(), _caller(), body.file_name, body.content_type, body.size_bytes)
    logger.info("upload link made", extra={"uploadId": link.upload.id, "sizeBytes": body.size_bytes})
    return _json(201, to_wire(UploadView.of(link)))


@app.exception_handler(errors.ClipLineError)
def handle_clipline_error(error: errors.ClipLineError) -> Response:
    status = http_status_for(error.code)
    if status >= 500:
        logger.error("request failed", extra={"errorCode": error.code, "cause": error.message})
    else:
        logger.info("request refused", extra={"errorCode": error.code, "cause": error.message})
    headers = {"Retry-After": str(POLL_AFTER_SECONDS)} if isinstance(error, errors.JobNotReadyError) else {}
    return _json(status, error_envelope(error.code, error.message, correlation_id()), **headers)


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
    return _json(500, error_envelope(errors.InternalError.code, "an internal error occurred", correlation_id()))
