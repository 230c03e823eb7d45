"""The one error hierarchy.

Every failure a user can meet is a ``ClipLineError`` subclass with a stable
``code``. The API maps codes to HTTP statuses once (``clipline.api.errors``);
the state machine's Retry and Catch blocks match the class names, which is the
``errorType`` Lambda reports for an unhandled exception.
"""

from __future__ import annotations

from typing import ClassVar


class ClipLineError(Exception):
    """Base of every clipline error. ``code`` is part of the public API."""

    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InternalError(ClipLineError):
    code = "INTERNAL_ERROR"


# Request problems (400).
class MalformedJsonError(ClipLineError):
    code = "MALFORMED_JSON"


class ValidationFailedError(ClipLineError):
    code = "VALIDATION_FAILED"


class InvalidTimecodeError(ClipLineError):
    code = "INVALID_TIMECODE"


class InvalidTimeRangeError(ClipLineError):
    code = "INVALID_TIME_RANGE"


class ClipTooLongError(ClipLineError):
    code = "CLIP_TOO_LONG"


class UnsupportedSourceUrlError(ClipLineError):
    code = "UNSUPPORTED_SOURCE_URL"


class SourceNotAllowedError(ClipLineError):
    code = "SOURCE_NOT_ALLOWED"


class InvalidWebhookUrlError(ClipLineError):
    """The webhook URL is not an https URL (http too, where private sources are allowed), or not a URL at all."""

    code = "INVALID_WEBHOOK_URL"


class WebhookUrlNotAllowedError(ClipLineError):
    """The webhook URL's host is one the egress policy refuses: not on the allowlist, a port outside it, not public."""

    code = "WEBHOOK_URL_NOT_ALLOWED"


class NoWebhookError(ClipLineError):
    """A webhook action on a job created without a webhookUrl."""

    code = "NO_WEBHOOK"


class InvalidCursorError(ClipLineError):
    """A listing's cursor is not one the service handed out."""

    code = "INVALID_CURSOR"


class InvalidSubtitlesError(ClipLineError):
    """The user's own subtitles are not valid SubRip, or exceed the size limit."""

    code = "INVALID_SUBTITLES"


# Access (403) and lookups (404/409/410).
class ForbiddenError(ClipLineError):
    code = "FORBIDDEN"


class RouteNotFoundError(ClipLineError):
    code = "NOT_FOUND"


class MethodNotAllowedError(ClipLineError):
    code = "METHOD_NOT_ALLOWED"


class PayloadTooLargeError(ClipLineError):
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaTypeError(ClipLineError):
    code = "UNSUPPORTED_MEDIA_TYPE"


# Usage plans and rate rules (429). The gateway turns ``retry_after_seconds`` into Retry-After.
class TooManyRequestsError(ClipLineError):
    """Over a rate limit: the key's token bucket, or the per-address job creation limit."""

    code = "TOO_MANY_REQUESTS"

    def __init__(self, message: str, retry_after_seconds: int = 1) -> None:
        super().__init__(message)
        self.retry_after_seconds = max(1, int(retry_after_seconds))


class QuotaExceededError(TooManyRequestsError):
    """The key used its quota for the period; ``retry_after_seconds`` runs to the period's end."""

    code = "QUOTA_EXCEEDED"


class ArtifactNotFoundError(ClipLineError):
    code = "ARTIFACT_NOT_FOUND"


class JobNotFoundError(ClipLineError):
    code = "JOB_NOT_FOUND"


class AsrJobNotFoundError(ClipLineError):
    code = "ASR_JOB_NOT_FOUND"


class JobNotReadyError(ClipLineError):
    code = "JOB_NOT_READY"


class JobFinishedError(ClipLineError):
    """A step tried to change a job that already reached a terminal status."""

    code = "JOB_FINISHED"


class WebhookSupersededError(ClipLineError):
    """An attempt's record came after the stored one moved on (a redelivery's newer round, or another
    attempt of the same round recorded first): the stored one stands."""

    code = "WEBHOOK_SUPERSEDED"


class JobFailedError(ClipLineError):
    """The job failed, so it has no result."""

    code = "JOB_FAILED"


class UploadNotFoundError(ClipLineError):
    """No upload has that key, or it is another API key's."""

    code = "UPLOAD_NOT_FOUND"


class UploadIncompleteError(ClipLineError):
    """The upload's link was handed out, but nothing has been stored with it (yet)."""

    code = "UPLOAD_INCOMPLETE"


class UploadMismatchError(ClipLineError):
    """What was stored is not what the upload declared (its size or content type); it was removed."""

    code = "UPLOAD_MISMATCH"


class UploadExpiredError(ClipLineError):
    """The upload's retention has passed; it and its object are gone or about to be."""

    code = "UPLOAD_EXPIRED"


class UploadTooLargeError(ClipLineError):
    """The declared size is over the source size limit."""

    code = "UPLOAD_TOO_LARGE"


class JobCancelledError(ClipLineError):
    """The job was cancelled before it ended: it has no result."""

    code = "JOB_CANCELLED"


class JobDeletedError(ClipLineError):
    """The job's artifacts were deleted by its owner."""

    code = "JOB_DELETED"


class ResultExpiredError(ClipLineError):
    code = "RESULT_EXPIRED"


class IdempotencyKeyReusedError(ClipLineError):
    code = "IDEMPOTENCY_KEY_REUSED"


class LinkInvalidError(ClipLineError):
    code = "LINK_INVALID"


class LinkExpiredError(ClipLineError):
    code = "LINK_EXPIRED"


# Failures found while the pipeline runs; they end the job with this code.
class SourceNotFoundError(ClipLineError):
    code = "SOURCE_NOT_FOUND"


class SourceUnreachableError(ClipLineError):
    """The source host did not answer. Transient: the state machine retries it."""

    code = "SOURCE_UNREACHABLE"


class SourceNotMediaError(ClipLineError):
    code = "SOURCE_NOT_MEDIA"


class SourceTooLargeError(ClipLineError):
    """The source is larger than ``max_source_bytes`` or longer than ``max_source_seconds``."""

    code = "SOURCE_TOO_LARGE"


class RangeOutsideSourceError(ClipLineError):
    code = "RANGE_OUTSIDE_SOURCE"


class ClipFailedError(ClipLineError):
    code = "CLIP_FAILED"


class ClipTimeoutError(ClipLineError):
    code = "CLIP_TIMEOUT"


class BurnInFailedError(ClipLineError):
    code = "BURN_IN_FAILED"


class JobTimeoutError(ClipLineError):
    code = "JOB_TIMEOUT"


class JobAbortedError(ClipLineError):
    code = "JOB_ABORTED"


class JobInterruptedError(ClipLineError):
    """The service stopped while the job ran; its execution went with the process (local mode)."""

    code = "INTERRUPTED"


# Speech recognition. Every provider maps its own failures to these three codes
# and keeps the provider's message in the cause.
class TranscriptionTimeoutError(ClipLineError):
    """The provider did not finish in time, or the worker stopped sending heartbeats."""

    code = "TIMEOUT"


class TranscriptionUpstreamError(ClipLineError):
    """The provider failed or could not be reached. Transient: the state machine retries it."""

    code = "UPSTREAM_FAILURE"


class TranscriptionRejectedError(ClipLineError):
    """The provider refused the request or the audio (bad format, language, size)."""

    code = "VALIDATION_FAILED"


class TaskAbandonedError(ClipLineError):
    """The state machine stopped waiting for a task (timed out, retried, or its execution ended)."""

    code = "TASK_ABANDONED"


class NoAudioError(ClipLineError):
    """Transcription was asked for, but the source has no audio stream; found when it is probed."""

    code = "NO_AUDIO_STREAM"


class NoVideoStreamError(ClipLineError):
    """Burned-in subtitles were asked for, but the source has no video stream; found when it is probed."""

    code = "NO_VIDEO_STREAM"


class AudioExtractionError(ClipLineError):
    code = "AUDIO_EXTRACTION_FAILED"


class StorageUnavailableError(ClipLineError):
    """A storage call failed after the SDK's own retries; the step may be retried whole."""

    code = "STORAGE_FAILURE"


class StorageFailureError(ClipLineError):
    code = "STORAGE_FAILURE"


class ServiceUnavailableError(ClipLineError):
    code = "SERVICE_UNAVAILABLE"


def _all_error_classes(base: type[ClipLineError] = ClipLineError) -> dict[str, type[ClipLineError]]:
    found: dict[str, type[ClipLineError]] = {base.__name__: base}
    for sub in base.__subclasses__():
        found.update(_all_error_classes(sub))
    return found


# Step Functions reports a failed task by the error's class name, and timeouts as States.Timeout.
_STATES_ERROR_CODES = {"States.Timeout": ClipTimeoutError.code}


def code_for_error_name(error_name: str) -> str:
    """The stable code for an error name seen by the state machine (a class name or a States.* error)."""
    if error_name in _STATES_ERROR_CODES:
        return _STATES_ERROR_CODES[error_name]
    error_class = _all_error_classes().get(error_name)
    return error_class.code if error_class else InternalError.code


def all_error_codes() -> set[str]:
    return {cls.code for cls in _all_error_classes().values()}
