"""The upload route: a signed link to PUT a source straight into storage."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body

from ..composition import services
from ..domain import errors
from ..domain.use_cases import create_upload
from ..observability import logger
from .app import app, caller, json_response
from .errors import CORRELATION_RESPONSE_HEADER, error_responses
from .schemas import CreateUploadBody, UploadView, to_wire


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
    link = create_upload(services(), caller(), body.file_name, body.content_type, body.size_bytes)
    logger.info("upload link made", extra={"uploadId": link.upload.id, "sizeBytes": body.size_bytes})
    return json_response(201, to_wire(UploadView.of(link)))
