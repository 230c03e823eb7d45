"""A typed Python client of clipline's HTTP API (docs/client.md).

    from clipline.client import Client

    client = Client("http://127.0.0.1:8080", api_key)
    job = client.wait(client.create_job("https://example.com/talk.mp4", "00:01:00", 70.5).id)
    files = client.download(job.id, "out")

Methods return the API's own models (``JobView``, ``ResultView``, from ``clipline.api.schemas``)
and raise ``ClipLineClientError`` subclasses.
"""

from ..api.schemas import ArtifactView, JobListView, JobView, ResultView, UploadView
from ._client import Client
from .errors import (
    ApiConnectionError,
    ClipLineApiError,
    ClipLineClientError,
    JobNotFoundError,
    JobNotReadyError,
    RateLimitedError,
    UnexpectedAnswerError,
    WaitTimeoutError,
)

__all__ = [
    "ApiConnectionError",
    "ArtifactView",
    "Client",
    "ClipLineApiError",
    "ClipLineClientError",
    "JobListView",
    "JobNotFoundError",
    "JobNotReadyError",
    "JobView",
    "RateLimitedError",
    "ResultView",
    "UnexpectedAnswerError",
    "UploadView",
    "WaitTimeoutError",
]
