"""What the client raises: the API's error envelope as exceptions, and failures to reach the API at all.

Every answer the API refuses carries ``{"error": {"code", "message", "correlationId"}}``;
``code`` is the stable part to act on (docs/api.md lists each one), and the
correlation id is what to quote when reporting a problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..api.schemas import JobView

# Answers that say nothing about the job but "slow down" or "try later".
RATE_LIMIT_STATUS = 429
UNAVAILABLE_STATUS = 503
CORRELATION_HEADER = "x-correlation-id"
# An error body that is not the envelope (a proxy's HTML page) is quoted this far.
_QUOTED_BODY_CHARS = 200


class ClipLineClientError(Exception):
    """The root of everything the client raises, so one ``except`` catches them all."""


class ClipLineApiError(ClipLineClientError):
    """The API answered with an error.

    Attributes:
        code: the envelope's stable error code, such as ``JOB_NOT_FOUND``; ``HTTP_<status>`` when the
            answer was not the API's envelope (a proxy in between, say).
        message: the envelope's message, for people; it may change between releases.
        correlation_id: the request's id in the service's logs ("" when the answer had none).
        status: the HTTP status.
        retry_after: seconds the answer's ``Retry-After`` asked to wait, if it had one.
    """

    def __init__(
        self, code: str, message: str, correlation_id: str, status: int, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{code}: {message} (HTTP {status}, correlation id {correlation_id or 'none'})")
        self.code = code
        self.message = message
        self.correlation_id = correlation_id
        self.status = status
        self.retry_after = retry_after


class JobNotFoundError(ClipLineApiError):
    """``404 JOB_NOT_FOUND``: no such job for this key (another key's job looks the same), or it expired."""


class JobNotReadyError(ClipLineApiError):
    """``409 JOB_NOT_READY``: the job is still queued or running; ``retry_after`` says when to ask again."""


class RateLimitedError(ClipLineApiError):
    """``429``: over the key's throttle or quota, or the address's creation limit, after any retries."""


class ApiConnectionError(ClipLineClientError):
    """The API could not be reached, or stopped answering mid-way, after any retries."""


class WaitTimeoutError(ClipLineClientError, TimeoutError):
    """``Client.wait`` gave up before the job ended; ``job`` is how it was when last seen."""

    def __init__(self, job: JobView, timeout: float) -> None:
        super().__init__(f"job {job.id} is still {job.status.value} after {timeout:g} s")
        self.job = job
        self.timeout = timeout


class UnexpectedAnswerError(ClipLineClientError):
    """A success answer whose body is not what the API describes: a different service, or a version skew."""


_BY_CODE: dict[str, type[ClipLineApiError]] = {
    "JOB_NOT_FOUND": JobNotFoundError,
    "JOB_NOT_READY": JobNotReadyError,
}


def api_error(status: int, body: bytes, headers: Mapping[str, str], retry_after: float | None) -> ClipLineApiError:
    """The exception for an error answer, from its envelope when it has one."""
    detail = _envelope_detail(body)
    correlation_id = str(detail.get("correlationId") or headers.get(CORRELATION_HEADER) or "")
    if detail.get("code"):
        code, message = str(detail["code"]), str(detail.get("message", ""))
    else:
        code, message = f"HTTP_{status}", body[:_QUOTED_BODY_CHARS].decode(errors="replace") or "no body"
    kind = RateLimitedError if status == RATE_LIMIT_STATUS else _BY_CODE.get(code, ClipLineApiError)
    return kind(code, message, correlation_id, status, retry_after)


def _envelope_detail(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    detail = document.get("error") if isinstance(document, dict) else None
    return detail if isinstance(detail, dict) else {}
