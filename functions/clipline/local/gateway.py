"""Local mode's front door: HTTP on loopback, turned into API Gateway REST proxy events.

It does what API Gateway, its usage plans, WAF and S3 do in AWS: checks
``x-api-key``, applies the key's throttle and quota and the per-address job
creation limit, maps each route to its Lambda handler with the same event shape,
and serves signed artifact links. Without a key it also answers ``/health``,
``/metrics``, ``/openapi.json`` and the web console at ``/console/``.
"""

from __future__ import annotations

import json
import mimetypes
import re
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import Callable, Iterable
from urllib.parse import parse_qs, unquote, urlsplit

from werkzeug.http import parse_range_header

from ..adapters.local.filesystem_artifact_store import FilesystemArtifactStore, LocalUrlSigner
from ..adapters.local.sqlite_api_key_store import SqliteApiKeyStore
from ..api.errors import error_envelope, http_status_for
from ..api.openapi import openapi_document
from ..api.correlation import CORRELATION_HEADER, choose_correlation_id
from ..api.routes import API_ROUTES, ApiRoute
from ..domain import errors
from ..domain.ports import Telemetry
from ..domain.rate_limits import RequestLimiter, UsagePlan
from ..observability import logger
from . import lambda_runtime
from .console_site import CONSOLE_ROOT, console_response
from .prometheus_metrics import PrometheusMetrics
from .proxy_events import ProxyRequestHandler, proxy_response_parts, rest_proxy_event

# API Gateway refuses payloads over 10 MB; ours are small JSON documents.
MAX_BODY_BYTES = 1024 * 1024
_COPY_CHUNK = 1024 * 1024
_DRAIN_LIMIT_BYTES = 16 * 1024 * 1024
# The route WAF's per-address rate rule covers in AWS.
_JOB_CREATION = ("POST", "/api/jobs")
# Powertools' resolver keeps the request it is answering in class attributes shared by every
# resolver (Lambda gives a process one request at a time). The gateway serves many at once, so
# the API handlers take turns, as one Lambda instance per route would; without this a request
# could be answered with another's correlation id, or as another caller.
_API_HANDLER_TURN = threading.Lock()


def _route_pattern(resource: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(resource)) + "$")


_ROUTE_PATTERNS = [(route, _route_pattern(route.resource)) for route in API_ROUTES]


@dataclass(frozen=True)
class GatewayDependencies:
    """``default_plan`` applies to keys created without a plan of their own."""

    keys: SqliteApiKeyStore
    limiter: RequestLimiter
    default_plan: UsagePlan
    artifacts: FilesystemArtifactStore
    signer: LocalUrlSigner
    now: Callable[[], datetime]
    telemetry: Telemetry
    metrics: PrometheusMetrics


class LocalGateway(ThreadingHTTPServer):
    daemon_threads = True
    # Many pollers at once should queue, not be refused.
    request_queue_size = 128

    def __init__(self, host: str, port: int, dependencies: GatewayDependencies | None = None) -> None:
        super().__init__((host, port), _GatewayRequestHandler)
        self.dependencies = dependencies

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def handle_error(self, request: object, client_address: object) -> None:
        # A player drops its connection whenever it seeks; a client that went away is not a failure to report.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _GatewayRequestHandler(ProxyRequestHandler):
    server: LocalGateway
    server_version = "clipline-local"

    def _dispatch(self) -> None:
        request_id = str(uuid.uuid4())
        try:
            url = urlsplit(self.path)
            path = unquote(url.path)
            if path == "/health" and self.command in ("GET", "HEAD"):
                self._send_json(200, {"status": "ok"}, request_id)
            elif path == "/metrics" and self.command in ("GET", "HEAD"):
                self._serve_metrics()
            elif path == "/openapi.json" and self.command in ("GET", "HEAD"):
                # The API's description is public, like the docs it is generated with.
                self._send_json(200, openapi_document(), request_id)
            elif (path + "/").startswith(CONSOLE_ROOT) and self.command in ("GET", "HEAD"):
                self._serve_console(path)
            elif path.startswith("/artifacts/") and self.command in ("GET", "HEAD"):
                self._serve_artifact(path.removeprefix("/artifacts/"), parse_qs(url.query), request_id)
            elif path.startswith("/uploads/") and self.command == "PUT":
                self._store_upload(path.removeprefix("/uploads/"), parse_qs(url.query), request_id)
            else:
                self._call_api(path, url.query, request_id)
        except errors.ClipLineError as error:
            self._send_error(error, request_id)
        except ConnectionError:
            # The client went away mid-answer (a player seeking elsewhere): nothing is left to answer.
            self.close_connection = True
        except Exception:  # noqa: BLE001 - the server must survive any one request
            logger.exception("gateway failure", extra={"path": self.path})
            self._send_error(errors.InternalError("an internal error occurred"), request_id)

    def _correlation_id(self, request_id: str) -> str:
        return choose_correlation_id(self.headers.get(CORRELATION_HEADER), request_id)

    def _send_error(self, error: errors.ClipLineError, request_id: str) -> None:
        cid = self._correlation_id(request_id)
        headers = {}
        if isinstance(error, errors.TooManyRequestsError):
            headers["Retry-After"] = str(error.retry_after_seconds)
        envelope = error_envelope(error.code, error.message, cid)
        self._send_json(http_status_for(error.code), envelope, request_id, headers)

    def _send_json(self, status: int, body: dict, request_id: str, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header(CORRELATION_HEADER, self._correlation_id(request_id))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise errors.ValidationFailedError("chunked request bodies are not accepted; send Content-Length")
        if not length:
            return b""
        if not length.isdigit():
            raise errors.ValidationFailedError("Content-Length is not a number")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            # Drain a moderately large body first so the client reads our 413 rather than a reset.
            if int(length) <= _DRAIN_LIMIT_BYTES:
                remaining = int(length)
                while remaining > 0:
                    remaining -= len(self.rfile.read(min(remaining, _COPY_CHUNK))) or remaining
            raise errors.PayloadTooLargeError(f"request bodies are limited to {MAX_BODY_BYTES} bytes")
        return self.rfile.read(int(length))

    def _match(self, path: str) -> tuple[ApiRoute, dict[str, str]]:
        allowed = False
        for route, pattern in _ROUTE_PATTERNS:
            match = pattern.match(path)
            if match:
                allowed = True
                if route.method == self.command:
                    return route, match.groupdict()
        if allowed:
            raise errors.MethodNotAllowedError(f"{self.command} is not allowed on {path}")
        raise errors.RouteNotFoundError(f"no route {self.command} {path}")

    def _call_api(self, path: str, query: str, request_id: str) -> None:
        body = self._read_body()
        route, path_parameters = self._match(path)
        dependencies = self.server.dependencies
        api_key = self.headers.get("x-api-key")
        key = dependencies.keys.authenticate(api_key) if dependencies else None
        if dependencies is None or key is None:
            raise errors.ForbiddenError("a valid x-api-key header is required")
        creating_job = (route.method, route.resource) == _JOB_CREATION
        try:
            dependencies.limiter.admit(
                key.id, key.plan or dependencies.default_plan, self.client_address[0] if creating_job else None
            )
        except errors.TooManyRequestsError:
            dependencies.telemetry.count("RateLimitRefusals")
            raise
        event = rest_proxy_event(
            self.proxy_request(route.resource, path, path_parameters, query, body, request_id),
            stage="local",
            account_id=lambda_runtime.LOCAL_ACCOUNT,
            api_id="local",
            api_key=api_key,
            api_key_id=key.id,
        )
        with _API_HANDLER_TURN:
            response = lambda_runtime.invoke(route.handler, event)
        self._send_proxy_response(response)

    def _send_proxy_response(self, response: dict) -> None:
        self._send(*proxy_response_parts(response))

    def _send(self, status: int, headers: Iterable[tuple[str, str]], payload: bytes) -> None:
        """An answer whose body is in hand: its headers, its length, and the body unless asked with HEAD."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _serve_metrics(self) -> None:
        """Prometheus text, without a key like a node exporter: the gateway listens on loopback only by default."""
        dependencies = self.server.dependencies
        if dependencies is None:
            raise errors.RouteNotFoundError("metrics are not served yet")
        payload = dependencies.metrics.exposition()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", dependencies.metrics.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(payload)

    def _serve_console(self, path: str) -> None:
        """The console's files; like the API's description, they hold nothing that needs a key."""
        response = console_response(path)
        self._send(response.status, response.headers.items(), response.body)

    def _store_upload(self, key: str, query: dict[str, list[str]], request_id: str) -> None:
        """One PUT through a signed upload link, stored only whole and only as declared, as S3 would.

        The link signs the content type and size: a PUT with other headers is refused
        before a byte is read, and one whose body ends short stores nothing.
        """
        dependencies = self.server.dependencies
        if dependencies is None:
            raise errors.RouteNotFoundError("uploads are not taken yet")
        # Whatever happens, the body is not read as a next request.
        self.close_connection = True
        declared_type, declared_size = _last(query, "type"), _last(query, "size")
        dependencies.signer.verify_upload(
            key, _last(query, "expires"), declared_type, declared_size, _last(query, "signature"), dependencies.now()
        )
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise errors.LinkInvalidError("send the upload with Content-Length, not chunked")
        if (self.headers.get("Content-Type") or "").strip() != declared_type:
            raise errors.LinkInvalidError(f"the upload was declared as {declared_type}; send that Content-Type")
        if (self.headers.get("Content-Length") or "").strip() != declared_size:
            raise errors.LinkInvalidError(f"the upload was declared as {declared_size} bytes; send exactly that many")
        dependencies.artifacts.put_stream(key, self.rfile, int(declared_size))
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Length", "0")
        self.send_header(CORRELATION_HEADER, self._correlation_id(request_id))
        self.end_headers()

    def _serve_artifact(self, key: str, query: dict[str, list[str]], request_id: str) -> None:
        dependencies = self.server.dependencies
        if dependencies is None:
            raise errors.RouteNotFoundError("artifacts are not served yet")
        dependencies.signer.verify(key, _last(query, "expires"), _last(query, "signature"), dependencies.now())
        path = dependencies.artifacts.path_of(key)
        if not path.is_file():
            raise errors.ArtifactNotFoundError("the artifact no longer exists")
        size = path.stat().st_size
        span = _byte_range(self.headers.get("Range"), size)
        if span == _UNSATISFIABLE:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.send_header(CORRELATION_HEADER, self._correlation_id(request_id))
            self.end_headers()
            return
        (start, stop), status = span or (0, size), HTTPStatus.PARTIAL_CONTENT if span else HTTPStatus.OK
        self.send_response(status)
        self.send_header("Content-Type", mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        self.send_header("Content-Length", str(stop - start))
        self.send_header("Accept-Ranges", "bytes")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.send_header("Content-Disposition", f'attachment; filename="{path.name}"')
        self.send_header("Cache-Control", "private, max-age=0")
        self.send_header(CORRELATION_HEADER, self._correlation_id(request_id))
        self.end_headers()
        if self.command == "GET":
            with path.open("rb") as file:
                file.seek(start)
                remaining = stop - start
                while remaining > 0:
                    chunk = file.read(min(_COPY_CHUNK, remaining))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)


_UNSATISFIABLE = (-1, -1)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range ``header`` asks of ``size`` bytes, as [start, stop); None for the whole file.

    Players seek with Range requests, as they do on S3. As RFC 9110 says, a header that
    does not parse, names another unit or several ranges is ignored (the whole file is
    sent), a suffix longer than the file means all of it, and a start past the end is
    unsatisfiable (``_UNSATISFIABLE``).
    """
    requested = parse_range_header(header)
    if requested is None or requested.units != "bytes" or len(requested.ranges) != 1:
        return None
    start, end = requested.ranges[0]
    if start < 0:  # bytes=-N: the last N bytes
        return (max(0, size + start), size) if size else _UNSATISFIABLE
    if start >= size:
        return _UNSATISFIABLE
    return start, size if end is None else min(end, size)


def _last(query: dict[str, list[str]], name: str) -> str:
    """The last value of ``name`` in a parsed query string, or "" when it has none."""
    return (query.get(name) or [""])[-1]
