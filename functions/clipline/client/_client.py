"""``Client``: clipline's HTTP API as Python calls that return the API's own models."""

from __future__ import annotations

import mimetypes
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from pydantic import BaseModel, ValidationError

from ..api.schemas import JobListView, JobView, ResultView, UploadView
from ._transport import IDEMPOTENCY_HEADER, Answer, RetryPolicy, Transport
from .errors import JobNotReadyError, UnexpectedAnswerError, WaitTimeoutError

Model = TypeVar("Model", bound=BaseModel)

# docs/api.md's Polling advice: every 2 seconds, and a job that is not moving less often.
DEFAULT_POLL_INTERVAL = 2.0
DEFAULT_MAX_POLL_INTERVAL = 15.0
_POLL_BACKOFF_FACTOR = 1.5
DEFAULT_WAIT_TIMEOUT = 600.0
_NO_CONTENT = 204


class Client:
    """A client of one clipline API, with one API key.

    Every method raises ``ClipLineApiError`` (or a subclass) when the API refuses, and
    ``ApiConnectionError`` when it cannot be reached; both derive from ``ClipLineClientError``.
    Answers of ``429`` and ``503`` are retried up to ``max_retries`` times, waiting as
    ``Retry-After`` says (at most ``max_retry_wait`` seconds; a longer one is raised at once) or,
    without it, with exponential backoff and full jitter. A job creation is retried only because
    it carries an ``Idempotency-Key``, so a repeat returns the job the first attempt created.

    ``session`` is a ``urllib3.PoolManager`` to send through (for a proxy, or TLS settings);
    by default the client makes its own. ``timeout`` bounds connecting and each read, in seconds.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        session: urllib3.PoolManager | None = None,
    ) -> None:
        retry = RetryPolicy(max_retries=max_retries, max_retry_wait=max_retry_wait)
        self._http = Transport(base_url, api_key, timeout, retry, session)
        # When the last 202 or 409 JOB_NOT_READY about each job said to ask again (monotonic time):
        # ``wait`` polls no sooner, and no later either once that time has passed.
        self._poll_after: dict[str, float] = {}

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def create_job(
        self,
        source: str | UploadView,
        start: float | str,
        end: float | str,
        *,
        transcribe: bool | None = None,
        language: str | None = None,
        retention_seconds: int | None = None,
        accuracy: str | None = None,
        burn_subtitles: bool | None = None,
        subtitle_style: Mapping[str, Any] | BaseModel | None = None,
        subtitles: str | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> JobView:
        """Create a clip job (``POST /api/jobs``); it runs on its own, and ``wait`` follows it.

        ``source`` is the http(s) URL of the media, or an upload ``upload_file`` returned (the
        job clips it by its ``sourceKey``). ``start`` and ``end`` are seconds (a float) or
        ``[HH:]MM:SS[.mmm]``. ``subtitles`` is
        SubRip text to burn in (with ``burn_subtitles=True``). ``subtitle_style`` takes
        ``SubtitleStyle`` or its fields. Arguments left ``None`` are not sent, so the service's
        defaults apply; the service checks everything sent and refuses with a ``ClipLineApiError``.

        ``idempotency_key`` defaults to a fresh uuid4: the client's own retries then never
        create a second job. Pass your own to make a retry of this whole call safe too (the same
        request with the same key within 24 hours returns the same job).
        """
        origin = {"sourceKey": source.source_key} if isinstance(source, UploadView) else {"sourceUrl": source}
        body: dict[str, Any] = {**origin, "start": start, "end": end}
        optional = {
            "transcribe": transcribe,
            "language": language,
            "retentionSeconds": retention_seconds,
            "accuracy": accuracy,
            "burnSubtitles": burn_subtitles,
            "subtitleStyle": _wire(subtitle_style),
            "subtitles": {"srt": subtitles} if subtitles is not None else None,
            "webhookUrl": webhook_url,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        headers = {IDEMPOTENCY_HEADER: idempotency_key or uuid.uuid4().hex}
        answer = self._http.call("POST", "/api/jobs", body=body, headers=headers)
        job = _parse(JobView, answer)
        self._remember_poll_after(job.id, answer.retry_after)
        return job

    def get_job(self, job_id: str) -> JobView:
        """The job as it is now (``GET /api/jobs/{id}``)."""
        return _parse(JobView, self._http.call("GET", f"/api/jobs/{job_id}"))

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        on_update: Callable[[JobView], None] | None = None,
    ) -> JobView:
        """Poll the job until it has ended (succeeded, failed, cancelled or deleted) and return it.

        The first poll comes no sooner than the ``Retry-After`` of the job's creation (or of a
        ``409 JOB_NOT_READY`` from ``result``) asked, capped at ``max_poll_interval``. After that
        the job is polled every ``poll_interval`` seconds while its stage or progress moves; each
        poll that finds it unmoved makes the next wait half as long again, up to
        ``max_poll_interval``, so a job stuck on a slow source costs fewer requests against the
        key's quota. ``on_update(job)`` sees every poll, for a progress bar.

        Raises:
            WaitTimeoutError: ``timeout`` seconds passed first; the job goes on running.
        """
        deadline = time.monotonic() + timeout
        delay = min(max(0.0, self._poll_after.pop(job_id, 0.0) - time.monotonic()), max_poll_interval)
        last: JobView | None = None
        while True:
            left = deadline - time.monotonic()
            if last is not None and left <= 0:
                raise WaitTimeoutError(last, timeout)
            time.sleep(max(0.0, min(delay, left)))
            job = self.get_job(job_id)
            if on_update is not None:
                on_update(job)
            if job.status.is_terminal:
                return job
            moved = last is None or (job.stage, job.progress) != (last.stage, last.progress)
            delay = poll_interval if moved else min(max(delay, poll_interval) * _POLL_BACKOFF_FACTOR, max_poll_interval)
            last = job

    def result(self, job_id: str) -> ResultView:
        """Signed, expiring links to a succeeded job's artifacts (``GET /api/jobs/{id}/result``).

        Raises:
            JobNotReadyError: the job is still running (``wait`` first); a later ``wait`` honours
                its ``Retry-After``.
            ClipLineApiError: ``409 JOB_FAILED`` or ``JOB_CANCELLED``, ``410 RESULT_EXPIRED`` or
                ``JOB_DELETED``: there is no result to have.
        """
        try:
            return _parse(ResultView, self._http.call("GET", f"/api/jobs/{job_id}/result"))
        except JobNotReadyError as error:
            self._remember_poll_after(job_id, error.retry_after)
            raise

    def download(
        self,
        job: str | ResultView,
        out_dir: str | Path,
        *,
        on_progress: Callable[[str, int, int | None], None] | None = None,
    ) -> dict[str, Path]:
        """Save every artifact of a succeeded job into ``out_dir``, streamed to disk in chunks.

        ``job`` is a job id (its result is fetched now, so the links are fresh) or a
        ``ResultView`` whose links have not expired. Files are named as their storage keys end
        (``clip.mp4``, ``transcript.srt``, ``clip.burned.mp4``), replacing any there.
        ``on_progress(artifact_name, bytes_so_far, total_bytes_or_None)`` follows each download.

        Returns:
            artifact name (``clip``, ``srt``, ``vtt``, ``txt``, ``json``, ``burned``) -> saved path.
        """
        result = self.result(job) if isinstance(job, str) else job
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        saved: dict[str, Path] = {}
        for artifact in result.artifacts:
            target = folder / _file_name(artifact.key)
            report = None if on_progress is None else _progress_of(artifact.name, on_progress)
            saved[artifact.name] = self._http.save(artifact.url, target, report)
        return saved

    def list_jobs(self, *, status: str | None = None, page_size: int = 20) -> Iterator[JobView]:
        """Every job of this key, newest first, across all pages (``GET /api/jobs``).

        Pages are fetched as the iteration reaches them, ``page_size`` (1-100) jobs at a time, until
        the API's ``nextCursor`` is null: a page may be short and still not be the last.
        ``status`` keeps only jobs with that status.
        """
        cursor: str | None = None
        while True:
            query = {"status": status, "limit": page_size, "cursor": cursor}
            page = _parse(JobListView, self._http.call("GET", "/api/jobs", query=query))
            yield from page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def cancel(self, job_id: str) -> JobView | None:
        """``DELETE /api/jobs/{id}``: stop a queued or running job, or delete an ended job's artifacts.

        Returns:
            the job, now ``cancelled``, when it was still queued or running (``202``); None
            when it had ended (``204``): its artifacts are deleted now (status ``deleted``), or
            it was already cancelled or deleted and nothing changed. Read it with ``get_job``.
        """
        answer = self._http.call("DELETE", f"/api/jobs/{job_id}")
        return None if answer.status == _NO_CONTENT else _parse(JobView, answer)

    def upload_file(
        self,
        path: str | Path,
        *,
        content_type: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> UploadView:
        """Upload a media file for jobs to clip: ``POST /api/uploads`` for a signed link, then one streamed PUT.

        ``content_type`` defaults to what the file name suggests (``video/mp4`` for ``.mp4``).
        ``on_progress(bytes_sent, total_bytes)`` follows the PUT. Pass the returned upload to
        ``create_job`` as its source, as often as you like until its ``upload_expires_at``.

        Raises:
            ClipLineApiError: the API refused the upload (``UPLOAD_TOO_LARGE``,
                ``VALIDATION_FAILED`` for a type that is not audio or video), or storage refused
                the PUT (``HTTP_403`` from S3, ``LINK_INVALID`` or ``LINK_EXPIRED`` locally).
        """
        file = Path(path)
        media_type = content_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        body = {"fileName": file.name, "contentType": media_type, "sizeBytes": file.stat().st_size}
        upload = _parse(UploadView, self._http.call("POST", "/api/uploads", body=body))
        self._http.put_file(upload.url, file, upload.headers, on_progress)
        return upload

    def _remember_poll_after(self, job_id: str, seconds: float | None) -> None:
        if seconds is not None:
            self._poll_after[job_id] = time.monotonic() + seconds


def _parse(model: type[Model], answer: Answer) -> Model:
    """The answer's body as the API's model; a body of another shape is an ``UnexpectedAnswerError``."""
    try:
        return model.model_validate(answer.json())
    except (ValueError, ValidationError) as error:
        raise UnexpectedAnswerError(
            f"HTTP {answer.status} answer is not a {model.__name__}: {error}; body: {answer.body[:200]!r}"
        ) from error


def _wire(value: Mapping[str, Any] | BaseModel | None) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    return dict(value) if value is not None else None


def _file_name(key: str) -> str:
    """The last part of a storage key: never a path that would leave the output folder."""
    name = key.rstrip("/").rpartition("/")[2]
    if name in ("", ".", ".."):
        raise UnexpectedAnswerError(f"artifact key {key!r} names no file")
    return name


def _progress_of(name: str, on_progress: Callable[[str, int, int | None], None]) -> Callable[[int, int | None], None]:
    return lambda done, total: on_progress(name, done, total)
