"""An in-process HTTP proxy that is ffmpeg's only way out to a source.

Checking a URL before handing it to ffmpeg is not enough: ffmpeg resolves the
host again (a rebinding DNS answer can differ), follows redirects on its own,
and parses URLs differently from Python. So ffmpeg is pointed at this proxy
with ``-http_proxy``; every connection it opens, each redirect hop included,
arrives here as ``GET http://host:port/path`` (http) or ``CONNECT host:port``
(https, the TLS stays end to end). For each one the proxy resolves the host
once through the guard, which checks every address, and connects to one of
those checked addresses itself; nothing resolves the name again for that connection.

Each ffmpeg run gets a session: its own listener on 127.0.0.1 (an ephemeral
port), so the run needs no credential. (A proxy password costs a 407 round
trip, after which ffmpeg retries with its full request size instead of the
small first Range request; a custom header would travel inside TLS to the
origin.) The session collects the first
refusal, so the prober and clipper raise the proxy's own error rather than
guess from ffmpeg's stderr, and it carries the run's byte budget
(``max_source_bytes``). The listener closes when the run ends.

Responses are streamed, never buffered: ffmpeg's bounded Range requests stay
bounded. Every upstream read of an http response, the first byte included,
times out after ``first_byte_timeout_seconds``; in an https tunnel only the
first answer is timed here (the proxy cannot tell a stalled source from an idle
ffmpeg inside TLS) and later stalls are ffmpeg's ``-rw_timeout``. Each proxied request uses its own connections
(``Connection: close`` both ways) so that each one is checked.
"""

from __future__ import annotations

import contextlib
import select
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator
from urllib.parse import urlsplit

from ..domain.errors import (
    ClipLineError,
    SourceNotAllowedError,
    SourceTooLargeError,
    SourceUnreachableError,
    UnsupportedSourceUrlError,
)
from .source_guard import Address, AddressSourceGuard

Dialer = Callable[[Address, int, float], socket.socket]

REFUSAL_HEADER = "X-Clipline-Refused"
_MAX_HEAD_BYTES = 64 * 1024
_CHUNK = 64 * 1024
_TUNNEL_IDLE_SECONDS = 600
_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authorization", "proxy-authenticate", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "host",
}  # fmt: skip


def direct_dial(address: Address, port: int, timeout: float) -> socket.socket:
    """Connect to exactly ``address``: a literal, so nothing is resolved here."""
    return socket.create_connection((str(address), port), timeout=timeout)


@dataclass
class EgressSession:
    """One ffmpeg run's use of the proxy: its address, its byte count and its first failure."""

    proxy_url: str
    max_bytes: int
    bytes_relayed: int = 0
    failure: ClipLineError | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail(self, error: ClipLineError) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = error

    def count(self, size: int) -> bool:
        """Add ``size`` relayed bytes; False once the run's budget is spent."""
        with self._lock:
            self.bytes_relayed += size
            return self.bytes_relayed <= self.max_bytes

    def raise_failure(self) -> None:
        """Raise the first error the proxy met in this run, if any."""
        if self.failure is not None:
            raise self.failure


class EgressProxy:
    """The egress policy ffmpeg runs go through: one per process, one listener per run."""

    def __init__(
        self,
        guard: AddressSourceGuard,
        max_source_bytes: int,
        first_byte_timeout_seconds: float,
        dial: Dialer = direct_dial,
    ) -> None:
        self.guard = guard
        self.max_source_bytes = max_source_bytes
        self.timeout = first_byte_timeout_seconds
        self.dial = dial

    @contextlib.contextmanager
    def session(self) -> Iterator[EgressSession]:
        """Listen for one ffmpeg run; pass ``session.proxy_url`` to ffmpeg as ``-http_proxy``."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.proxy = self
        session = EgressSession(f"http://127.0.0.1:{server.server_address[1]}", self.max_source_bytes)
        server.session = session
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="egress-proxy", daemon=True)
        thread.start()
        try:
            yield session
        finally:
            server.shutdown()
            server.server_close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    proxy: EgressProxy
    session: EgressSession


class _Refused(Exception):
    """Answer the client with ``status`` and record ``error`` on the session."""

    def __init__(self, status: int, reason: str, error: ClipLineError) -> None:
        super().__init__(error.message)
        self.status, self.reason, self.error = status, reason, error


class _Handler(socketserver.StreamRequestHandler):
    server: _Server
    # ffmpeg may read slowly while it encodes; its own run time limit ends it long before this.
    timeout = 900

    def handle(self) -> None:
        head = _read_head_or_refusal(self.rfile)
        if head is None:
            return
        session = self.server.session
        try:
            self._serve(self.server.proxy, session, *head)
        except _Refused as refused:
            session.fail(refused.error)
            self._answer(refused.status, refused.reason, {REFUSAL_HEADER: refused.error.code})
        except Exception as error:  # noqa: BLE001 - a hostile or broken origin must end the run cleanly, not the thread
            session.fail(SourceUnreachableError(f"the source's response could not be relayed: {error}"))
            with contextlib.suppress(OSError):
                self._answer(502, "Bad Gateway", {})

    def _serve(self, proxy: EgressProxy, session: EgressSession, request_line: str, headers: dict[str, str]) -> None:
        method, _, rest = request_line.partition(" ")
        target, _, _version = rest.partition(" ")
        if method == "CONNECT":
            (host, port), path = _authority(target), ""
        elif method in ("GET", "HEAD"):
            host, port, path = _absolute_url(target)
        else:
            raise _Refused(405, "Method Not Allowed", SourceNotAllowedError(f"ffmpeg may not send {method} to a source"))
        upstream = _connect(proxy, host, port)
        with upstream:
            if method == "CONNECT":
                self._answer(200, "Connection Established", {}, keep=True)
                _tunnel(self.connection, upstream, session, proxy.timeout)
                return
            authority = host if port == 80 else f"{host}:{port}"
            if ":" in host:
                authority = f"[{host}]" if port == 80 else f"[{host}]:{port}"
            forwarded = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k not in _HOP_BY_HOP)
            upstream.sendall(f"{method} {path} HTTP/1.1\r\nHost: {authority}\r\n{forwarded}Connection: close\r\n\r\n".encode("latin-1"))
            self._relay_response(upstream, session, method == "HEAD", proxy.timeout)

    def _relay_response(self, upstream: socket.socket, session: EgressSession, head_only: bool, timeout: float) -> None:
        upstream.settimeout(timeout)
        reader = upstream.makefile("rb")
        try:
            head = _read_head(reader)
        except TimeoutError as error:
            raise _Refused(504, "Gateway Timeout", SourceUnreachableError(f"the source sent nothing for {timeout:g}s")) from error
        except OSError as error:
            raise _Refused(502, "Bad Gateway", SourceUnreachableError(f"the source connection failed: {error}")) from error
        if head is None:
            raise _Refused(502, "Bad Gateway", SourceUnreachableError("the source closed the connection without answering"))
        status_line, headers = head
        total = _declared_size(headers)
        if total is not None and total > session.max_bytes:
            raise _Refused(
                403, "Forbidden", SourceTooLargeError(f"the source is {total} bytes; the limit is {session.max_bytes}")
            )
        out = [status_line + "\r\n"]
        out += [f"{k}: {v}\r\n" for k, v in headers.items() if k not in ("connection", "keep-alive", "proxy-connection")]
        self.wfile.write(("".join(out) + "Connection: close\r\n\r\n").encode("latin-1"))
        status = status_line.split(" ", 2)[1] if status_line.count(" ") else ""
        if head_only or status in ("204", "304") or status.startswith("1"):
            return
        remaining = None
        if "chunked" not in headers.get("transfer-encoding", "").lower() and _is_number(headers.get("content-length", "")):
            remaining = int(headers["content-length"])
        while remaining is None or remaining > 0:
            try:
                chunk = reader.read1(_CHUNK if remaining is None else min(_CHUNK, remaining))
            except TimeoutError:
                session.fail(SourceUnreachableError(f"the source stalled for {timeout:g}s"))
                return
            if not chunk:
                if remaining:
                    # ffmpeg reads a cut-off body as a short file and may even exit 0; the
                    # source's fault, and transient, so the run must not pass as a bad clip.
                    session.fail(
                        SourceUnreachableError(
                            f"the source closed the connection with {remaining} bytes of its response unsent"
                        )
                    )
                return
            if not session.count(len(chunk)):
                session.fail(SourceTooLargeError(f"more than {session.max_bytes} bytes were read from the source"))
                return
            if remaining is not None:
                remaining -= len(chunk)
            try:
                self.wfile.write(chunk)
            except OSError:
                return  # ffmpeg has what it wanted and hung up

    def _answer(self, status: int, reason: str, headers: dict[str, str], keep: bool = False) -> None:
        lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
        if status != 200:
            lines.append("Content-Length: 0")
        if not keep:
            lines.append("Connection: close")
        with contextlib.suppress(OSError):
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            self.wfile.flush()


def _connect(proxy: EgressProxy, host: str, port: int) -> socket.socket:
    """Check ``host`` once and connect to one of the checked addresses."""
    try:
        addresses = proxy.guard.checked_addresses(host, port)
    except (SourceNotAllowedError, UnsupportedSourceUrlError) as error:
        raise _Refused(403, "Forbidden", SourceNotAllowedError(f"fetch refused: {error.message}")) from error
    except SourceUnreachableError as error:
        raise _Refused(502, "Bad Gateway", error) from error
    last: OSError | None = None
    for address in addresses:
        try:
            return proxy.dial(address, port, proxy.timeout)
        except OSError as error:
            last = error
    raise _Refused(502, "Bad Gateway", SourceUnreachableError(f"could not connect to the source host {host!r}: {last}"))


def _absolute_url(target: str) -> tuple[str, int, str]:
    try:
        parts = urlsplit(target)
        port = parts.port
    except ValueError as error:
        raise _Refused(403, "Forbidden", SourceNotAllowedError(f"not a valid URL: {target[:200]!r}")) from error
    if parts.scheme != "http" or not parts.hostname or "@" in parts.netloc:
        raise _Refused(403, "Forbidden", SourceNotAllowedError(f"only plain http URLs are proxied, not {target[:200]!r}"))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, 80 if port is None else port, path


def _authority(target: str) -> tuple[str, int]:
    try:
        parts = urlsplit(f"//{target}")
        port = parts.port
    except ValueError as error:
        raise _Refused(403, "Forbidden", SourceNotAllowedError(f"not a valid CONNECT target: {target[:200]!r}")) from error
    if not parts.hostname or port is None or "@" in parts.netloc:
        raise _Refused(403, "Forbidden", SourceNotAllowedError(f"not a valid CONNECT target: {target[:200]!r}"))
    return parts.hostname, port


def _read_head_or_refusal(reader) -> tuple[str, dict[str, str]] | None:  # noqa: ANN001
    try:
        return _read_head(reader)
    except _Refused:
        return None
    except OSError:
        return None


def _read_head(reader) -> tuple[str, dict[str, str]] | None:  # noqa: ANN001 - a binary file object
    """The start line and the headers (names lower-cased), or None at a clean end of stream."""
    lines: list[str] = []
    size = 0
    while True:
        line = reader.readline(_MAX_HEAD_BYTES + 1)
        if not line:
            return None if not lines else _bad_head()
        size += len(line)
        if size > _MAX_HEAD_BYTES:
            return _bad_head()
        if line in (b"\r\n", b"\n"):
            if lines:
                break
            continue
        lines.append(line.decode("latin-1").rstrip("\r\n"))
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            return _bad_head()
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _bad_head() -> None:
    raise _Refused(502, "Bad Gateway", SourceUnreachableError("a malformed or oversized HTTP head"))


def _declared_size(headers: dict[str, str]) -> int | None:
    """The whole resource's size as the response declares it: Content-Range's total, else Content-Length."""
    content_range = headers.get("content-range", "")
    total = content_range.rpartition("/")[2]
    if _is_number(total):
        return int(total)
    length = headers.get("content-length", "")
    return int(length) if _is_number(length) else None


def _is_number(text: str) -> bool:
    # str.isdigit() also accepts "²" and other digits int() refuses.
    return text.isascii() and text.isdigit()


def _tunnel(client: socket.socket, upstream: socket.socket, session: EgressSession, timeout: float) -> None:
    """Relay bytes both ways until one side closes; the downstream bytes count against the budget.

    Inside TLS the proxy cannot tell a stalled source from an idle ffmpeg, so
    only the first answer is timed here; later stalls are ffmpeg's
    ``-rw_timeout``. An idle tunnel is dropped after ``_TUNNEL_IDLE_SECONDS``.
    """
    sockets = [client, upstream]
    client_spoke = upstream_spoke = False
    idle = 0.0
    while True:
        readable, _, _ = select.select(sockets, [], [], timeout)
        if not readable:
            idle += timeout
            if client_spoke and not upstream_spoke:
                session.fail(SourceUnreachableError(f"the source sent nothing for {timeout:g}s"))
                return
            if idle >= _TUNNEL_IDLE_SECONDS:
                return
            continue
        idle = 0.0
        for source in readable:
            try:
                data = source.recv(_CHUNK)
            except OSError:
                return
            if not data:
                return
            if source is upstream:
                upstream_spoke = True
                if not session.count(len(data)):
                    session.fail(SourceTooLargeError(f"more than {session.max_bytes} bytes were read from the source"))
                    return
            else:
                client_spoke = True
            try:
                (upstream if source is client else client).sendall(data)
            except OSError:
                return
