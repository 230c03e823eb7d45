"""HTTP for the client: one connection pool, the API key, and the retry rules of docs/api.md's Polling advice.

urllib3 rather than another library: it is already one of clipline's own
dependencies, pools connections, and streams bodies without holding them whole.
"""

from __future__ import annotations

import io
import json
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode

import urllib3

from .errors import RATE_LIMIT_STATUS, UNAVAILABLE_STATUS, ApiConnectionError, api_error

# Methods a repeat cannot make do something twice: DELETE on a job is idempotent by contract.
_SAFE_METHODS = frozenset({"GET", "HEAD", "DELETE"})
IDEMPOTENCY_HEADER = "Idempotency-Key"
_RETRIED_STATUSES = frozenset({RATE_LIMIT_STATUS, UNAVAILABLE_STATUS})
_USER_AGENT = "clipline-python-client"
DOWNLOAD_CHUNK_BYTES = 256 * 1024
UPLOAD_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """When a refused or failed request is sent again, and how long to wait first.

    Attributes:
        max_retries: repeats after the first attempt; 0 never repeats.
        max_retry_wait: a ``Retry-After`` longer than this is not waited out (a spent quota's runs
            to the end of its period): the error is raised at once, ``retry_after`` on it.
        backoff_base, backoff_cap: without ``Retry-After``, attempt n waits a random time in
            ``[0, min(cap, base * 2**n)]`` (exponential backoff, full jitter), so many clients
            turned away together do not all come back together.
    """

    max_retries: int = 3
    max_retry_wait: float = 60.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))


@dataclass(frozen=True)
class Answer:
    """A successful (1xx-3xx) answer, read whole: the API's bodies are small JSON documents."""

    status: int
    body: bytes
    headers: Mapping[str, str]
    retry_after: float | None

    def json(self) -> Any:
        return json.loads(self.body)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds: the API sends whole seconds, HTTP also allows a date."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Transport:
    """Sends requests to one API with one key, retrying what the rules allow."""

    def __init__(
        self, base_url: str, api_key: str, timeout: float, retry: RetryPolicy, pool: urllib3.PoolManager | None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._retry = retry
        # A caller's pool may carry proxies or TLS settings; ours keeps connections open between polls.
        self._pool = pool if pool is not None else urllib3.PoolManager()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One API call, with the key; raises ``ClipLineApiError`` for any answer of 400 or more."""
        wanted = {name: value for name, value in (query or {}).items() if value is not None}
        url = self.base_url + path + (f"?{urlencode(wanted)}" if wanted else "")
        sent = {"x-api-key": self._api_key, "Accept": "application/json", "User-Agent": _USER_AGENT, **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        response = self._send(method, url, sent, data, stream=False)
        return Answer(response.status, response.data, response.headers, retry_after_seconds(response.headers))

    def save(self, url: str, target: Path, on_chunk: Callable[[int, int | None], None] | None = None) -> Path:
        """Stream ``url`` into ``target`` a chunk at a time, never holding it whole.

        The bytes go to a ``.part`` file renamed into place once complete, so ``target`` is
        never a truncated download. ``on_chunk(bytes_so_far, total_or_None)`` follows along.
        No API key is sent: an artifact link is its own credential, and it may point at
        another host (S3 in AWS).
        """
        partial = target.with_name(target.name + ".part")
        try:
            with self._stream(url) as response, partial.open("wb") as file:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                done = 0
                for chunk in response.stream(DOWNLOAD_CHUNK_BYTES):
                    file.write(chunk)
                    done += len(chunk)
                    if on_chunk is not None:
                        on_chunk(done, total)
            os.replace(partial, target)
        except urllib3.exceptions.HTTPError as error:
            raise ApiConnectionError(f"downloading {_without_query(url)} failed: {error}") from error
        finally:
            partial.unlink(missing_ok=True)
        return target

    def put_file(
        self, url: str, path: Path, headers: Mapping[str, str], on_chunk: Callable[[int, int], None] | None = None
    ) -> None:
        """PUT ``path`` to a signed upload link, read a chunk at a time, never held whole.

        Sent once, never retried: a link is for one PUT, and what a failed one stored is
        nothing. No API key is sent; the link is its own credential (an S3 presigned URL on AWS).
        """
        size = path.stat().st_size
        sent = {"User-Agent": _USER_AGENT, **headers, "Content-Length": str(size)}
        try:
            with path.open("rb") as file:
                response = self._pool.request(
                    "PUT", url, body=_Counted(file, size, on_chunk), headers=sent, timeout=self._timeout,
                    retries=False, redirect=False, chunked=False,
                )  # fmt: skip
        except urllib3.exceptions.HTTPError as error:
            raise ApiConnectionError(f"uploading {path.name} to {_without_query(url)} failed: {error}") from error
        if response.status >= 400:
            raise api_error(response.status, response.data, response.headers, None)

    @contextmanager
    def _stream(self, url: str) -> Iterator[urllib3.BaseHTTPResponse]:
        response = self._send("GET", url, {"User-Agent": _USER_AGENT}, None, stream=True)
        try:
            yield response
        finally:
            response.release_conn()

    def _send(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None, *, stream: bool
    ) -> urllib3.BaseHTTPResponse:
        """Send until answered, retrying network failures, 429 and 503 when the request may be repeated.

        A POST may be repeated only with an ``Idempotency-Key``: without one, a repeat after a
        lost answer could create a second job.
        """
        repeatable = method in _SAFE_METHODS or IDEMPOTENCY_HEADER in headers
        attempt = 0
        while True:
            retries_left = repeatable and attempt < self._retry.max_retries
            try:
                response = self._pool.request(
                    method, url, body=data, headers=headers, timeout=self._timeout, retries=False,
                    redirect=False, preload_content=not stream,
                )  # fmt: skip
            except urllib3.exceptions.HTTPError as error:
                if not retries_left:
                    raise ApiConnectionError(f"{method} {_without_query(url)} failed: {error}") from error
                time.sleep(self._retry.backoff(attempt))
                attempt += 1
                continue
            if response.status < 400:
                return response
            wait = self._retry_wait(response, attempt) if retries_left else None
            if wait is None:
                raise self._error(response)
            _discard(response)
            time.sleep(wait)
            attempt += 1

    def _retry_wait(self, response: urllib3.BaseHTTPResponse, attempt: int) -> float | None:
        """How long to wait before repeating a refused request; None when it should not be repeated."""
        if response.status not in _RETRIED_STATUSES:
            return None
        asked = retry_after_seconds(response.headers)
        if asked is None:
            return self._retry.backoff(attempt)
        return asked if asked <= self._retry.max_retry_wait else None

    @staticmethod
    def _error(response: urllib3.BaseHTTPResponse) -> Exception:
        try:
            body = response.data
        except urllib3.exceptions.HTTPError:
            body = b""
        finally:
            response.release_conn()
        return api_error(response.status, body, response.headers, retry_after_seconds(response.headers))


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Finish with an answer not used, so its connection goes back to the pool."""
    try:
        response.drain_conn()
    except urllib3.exceptions.HTTPError:
        pass
    response.release_conn()


def _without_query(url: str) -> str:
    """The URL without its query, which for an artifact link is a signature not to print."""
    return url.partition("?")[0]


class _Counted(io.RawIOBase):
    """A file read for a request body, telling ``on_chunk`` how far the read has got."""

    def __init__(self, file: BinaryIO, size: int, on_chunk: Callable[[int, int], None] | None) -> None:
        self._file = file
        self._size = size
        self._on_chunk = on_chunk
        self._done = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(UPLOAD_CHUNK_BYTES if size is None or size < 0 else size)
        self._done += len(chunk)
        if chunk and self._on_chunk is not None:
            self._on_chunk(self._done, self._size)
        return chunk
