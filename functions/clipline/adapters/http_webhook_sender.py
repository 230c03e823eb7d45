"""The webhook sender: one POST per attempt, to an address the egress policy checked, bounded in time and size.

The receiver's name is resolved once, by the same guard that checks sources, and
the connection goes to one of the addresses it returned, so a DNS answer that
changes between the check and the connect (rebinding) cannot send the POST
anywhere else. TLS still verifies the certificate against the name. Redirects
are answers like any other: a 3xx is not a delivery and is never followed.

``timeout_seconds`` bounds the whole exchange, not each read: a watchdog shuts the
socket at the deadline, so a receiver that trickles its answer a byte at a time
holds the worker no longer than one that never answers.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

from ..domain.errors import (
    SourceNotAllowedError,
    SourceUnreachableError,
    UnsupportedSourceUrlError,
)
from ..domain.ports import WebhookResponse
from ..media.egress_proxy import Dialer, direct_dial
from ..media.source_guard import AddressSourceGuard, split_source_url

# The answer is read to this much and ignored: a receiver's body is not ours to keep.
MAX_RESPONSE_BYTES = 4096


class HttpWebhookSender:
    def __init__(
        self,
        guard: AddressSourceGuard,
        timeout_seconds: float = 10.0,
        *,
        dial: Dialer = direct_dial,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._guard = guard
        self._timeout = timeout_seconds
        self._dial = dial
        self._tls = tls or ssl.create_default_context()

    def post(self, url: str, headers: dict[str, str], body: bytes) -> WebhookResponse:
        try:
            scheme, host, port = split_source_url(url)
            addresses = self._guard.checked_addresses(host, port)
        except (UnsupportedSourceUrlError, SourceNotAllowedError) as error:
            return WebhookResponse(None, f"refused by the egress policy: {error.message}")
        except SourceUnreachableError as error:
            return WebhookResponse(None, error.message)
        deadline = time.monotonic() + self._timeout
        try:
            sock = self._connect(addresses, port, deadline)
        except OSError as error:
            return WebhookResponse(None, f"could not connect to {host!r}: {error}")
        # The socket in use, which the watchdog shuts: the TLS one, once it is wrapped.
        current = [sock]
        cut_off = threading.Event()
        watchdog = threading.Timer(max(deadline - time.monotonic(), 0.0), _shut, args=(current, cut_off))
        watchdog.daemon = True
        watchdog.start()
        timed_out = WebhookResponse(None, f"no complete answer within {self._timeout:g}s")
        try:
            if scheme == "https":
                current[0] = self._tls.wrap_socket(sock, server_hostname=host)
            response = self._exchange(current[0], _host_header(scheme, host, port), _target(url), headers, body)
        except (OSError, http.client.HTTPException) as error:
            if cut_off.is_set() or time.monotonic() >= deadline:
                return timed_out
            return WebhookResponse(None, f"the exchange failed: {error or type(error).__name__}")
        except UnicodeError as error:
            # http.client writes the request line and headers as Latin-1: a URL must be ASCII (percent-encoded).
            return WebhookResponse(None, f"the request could not be written: {error}")
        finally:
            watchdog.cancel()
            current[0].close()
        # A socket shut mid-body reads as a clean end, so only the watchdog can tell: an answer it
        # cut off is no answer, even with a 2xx status line, or a receiver could stop the retries.
        return timed_out if cut_off.is_set() else response

    def _connect(self, addresses: list, port: int, deadline: float) -> socket.socket:
        last: OSError | None = None
        for address in addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                return self._dial(address, port, remaining)
            except OSError as error:
                last = error
        raise last or TimeoutError("timed out")

    @staticmethod
    def _exchange(
        sock: socket.socket, host_header: str, target: str, headers: dict[str, str], body: bytes
    ) -> WebhookResponse:
        connection = http.client.HTTPConnection(host_header)
        # Already connected to the checked address: http.client must not resolve the name itself.
        connection.sock = sock
        connection.request("POST", target, body=body, headers={**headers, "host": host_header, "connection": "close"})
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return WebhookResponse(response.status)


def _target(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _host_header(scheme: str, host: str, port: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if scheme == "https" else 80) else f"{name}:{port}"


def _shut(current: list[socket.socket], cut_off: threading.Event) -> None:
    cut_off.set()
    try:
        current[0].shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
