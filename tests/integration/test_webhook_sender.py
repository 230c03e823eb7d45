"""HttpWebhookSender against real receivers on loopback: what it sends, what it reports, and what it refuses.

Guards are built the way composition.media_services builds them, from Settings,
with the test's resolver where a name must resolve to a chosen address. Where a
test needs a public address, a dialer routes it to a loopback "public" receiver
and every other address to a canary, so a delivery the policy should have
refused shows up as a canary hit.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from clipline.adapters.http_webhook_sender import MAX_RESPONSE_BYTES, HttpWebhookSender
from clipline.domain.errors import SourceUnreachableError
from clipline.domain.ports import WebhookResponse
from clipline.domain.use_cases.webhooks import signed_headers
from clipline.domain.webhooks import new_secret
from clipline.media.egress_proxy import direct_dial
from clipline.media.source_guard import AddressSourceGuard
from clipline.settings import Settings
from tests.webhook_receiver import Receiver

PUBLIC = "93.184.216.34"
NON_PUBLIC_ANSWER = (
    "refused by the egress policy: source host {!r} resolves to a non-public address; only public sources are fetched"
)


def guard_for(settings: Settings, resolver=None) -> AddressSourceGuard:
    """The guard composition.media_services builds from ``settings``, with the test's resolver when given."""
    return AddressSourceGuard(
        settings.source_allowlist_patterns, settings.allow_private_sources, settings.source_port_set, resolver=resolver
    )


def loopback_sender(timeout_seconds: float = 5.0) -> HttpWebhookSender:
    """A sender as local mode's demo has it: private addresses allowed, so loopback receivers are reachable."""
    settings = Settings(allow_private_sources=True, webhook_timeout_seconds=timeout_seconds)
    return HttpWebhookSender(guard_for(settings), settings.webhook_timeout_seconds)


def timed_post(sender: HttpWebhookSender, url: str, body: bytes = b"{}") -> tuple[WebhookResponse, float]:
    started = time.monotonic()
    response = sender.post(url, {"content-type": "application/json"}, body)
    return response, time.monotonic() - started


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RawReceiver:
    """A loopback server: reads one request, waits ``delay_seconds``, writes ``answer``, then holds the line, silent.

    What http.server cannot do on purpose: promise a body and stop partway, so a
    sender that reads one byte more than it should waits until its timeout.
    """

    def __init__(self, answer: bytes, delay_seconds: float = 0.0) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._release = threading.Event()
        self._delay = delay_seconds
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, args=(answer,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/hooks"

    def _serve(self, answer: bytes) -> None:
        connection, _ = self._listener.accept()
        with connection:
            if self._release.is_set():
                return
            self.requests.append(_read_request(connection))
            if self._release.wait(self._delay):
                return
            connection.sendall(answer)
            self._release.wait(30)

    def close(self) -> None:
        self._release.set()
        try:  # wakes the accept when no request ever came
            socket.create_connection(self._listener.getsockname(), timeout=1).close()
        except OSError:
            pass
        self._thread.join(5)
        self._listener.close()

    def __enter__(self) -> RawReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_request(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


# Shared by the module: closing a receiver waits out its server's half-second poll.
@pytest.fixture(scope="module")
def shared_public():
    with Receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def shared_canary():
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def public(shared_public):
    """A receiver that answers 204; it starts each test empty."""
    shared_public.received.clear()
    return shared_public


@pytest.fixture
def canary(shared_canary):
    """A receiver no test may reach; it starts each test empty and must end it so."""
    shared_canary.received.clear()
    yield shared_canary
    assert shared_canary.received == [], "a delivery that should not have been made reached the canary"


# --- answers from real receivers -------------------------------------------------------------------


def test_a_2xx_is_returned_with_the_headers_and_the_exact_body_delivered():
    secret = new_secret()
    # Bytes that are not UTF-8, a NUL and a CRLF: the body must arrive byte for byte
    body = b'{"type":"job.succeeded","data":{"name":"caf\xc3\xa9"}}\x00\xff\r\n'
    headers = signed_headers(secret, "msg_1", int(time.time()), body)
    with Receiver(200) as receiver:
        response = loopback_sender().post(receiver.url, headers, body)
        assert response == WebhookResponse(200)
        assert len(receiver.received) == 1
        got_headers, got_body = receiver.received[0]
    assert got_body == body
    for name, value in headers.items():
        assert got_headers[name] == value, name
    assert got_headers["host"] == f"127.0.0.1:{receiver.port}"
    assert got_headers["content-length"] == str(len(body))
    # And what arrived is a message the receiver can verify with the secret
    Verifier(secret).verify(got_body, got_headers, json_parse=False)


def test_any_status_is_returned_as_it_came():
    statuses = (201, 204, 400, 410, 500, 503)
    with Receiver(*statuses) as receiver:
        sender = loopback_sender()
        assert [sender.post(receiver.url, {}, b"{}") for _ in statuses] == [WebhookResponse(s) for s in statuses]
        assert len(receiver.received) == len(statuses)


def test_a_redirect_is_an_answer_and_is_never_followed(canary):
    with Receiver(302, location=canary.url) as receiver:
        response = loopback_sender().post(receiver.url, {}, b"{}")
        # The sender returned: had it followed the Location, the canary would have the POST by now
        assert response == WebhookResponse(302)
        assert len(receiver.received) == 1


# --- hostile and absent receivers: bounded by the timeout -----------------------------------------


def test_a_receiver_trickling_a_large_body_is_cut_off_at_the_timeout():
    # Given a receiver that would take 300 s to send its body a byte at a time (12 s to reach the 4 KiB cap)
    with Receiver(200, trickle_seconds=300, body_bytes=100_000) as receiver:
        # When the sender, with a 1 s timeout, posts to it
        response, elapsed = timed_post(loopback_sender(timeout_seconds=1), receiver.url)
        assert len(receiver.received) == 1
    # Then it is held about the timeout: neither the trickle nor the cap ends it, the deadline does
    assert 0.9 <= elapsed < 5, elapsed
    # And a 200 whose body never finished is no delivery: the answer is the timeout
    assert response == WebhookResponse(None, "no complete answer within 1s"), response


def test_an_answer_cut_off_by_the_timeout_is_reported_as_a_timeout():
    # Given a receiver that waits half a second, sends 200, promises 100 bytes of body, sends 10 and goes silent
    # (the wait makes the timeout's watchdog, not the socket's own per-read timeout, end the exchange)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n" + b"x" * 10
    with RawReceiver(answer, delay_seconds=0.5) as receiver:
        response, elapsed = timed_post(loopback_sender(timeout_seconds=1), receiver.url)
    # Then the exchange ends at the timeout, which the sender says (its own message for a passed deadline)
    assert elapsed < 5, elapsed
    assert response == WebhookResponse(None, "no complete answer within 1s")


def test_a_receiver_that_accepts_and_never_answers_ends_by_the_timeout():
    # Given a socket that listens (the kernel completes the connection) but never reads or answers
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hooks"
        response, elapsed = timed_post(loopback_sender(timeout_seconds=1), url)
    assert 0.9 <= elapsed < 5, elapsed
    assert response == WebhookResponse(None, "no complete answer within 1s")


def test_a_large_body_is_read_only_to_the_cap_and_the_status_is_kept():
    # Given a receiver that promises 10 MB, sends exactly the cap's worth, then holds the connection silent
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n" + b"x" * MAX_RESPONSE_BYTES
    with RawReceiver(answer) as receiver:
        # When the sender posts with a 10 s timeout
        response, elapsed = timed_post(loopback_sender(timeout_seconds=10), receiver.url)
        assert len(receiver.requests) == 1
    # Then it returns at once with the status: a sender reading one byte past the cap would wait out the 10 s
    assert response == WebhookResponse(200)
    assert elapsed < 5, elapsed


def test_a_large_fast_body_from_a_real_receiver_keeps_the_status():
    with Receiver(200, body_bytes=1_000_000) as receiver:
        response, elapsed = timed_post(loopback_sender(timeout_seconds=10), receiver.url)
        assert len(receiver.received) == 1
    assert response == WebhookResponse(200)
    assert elapsed < 5, elapsed


def test_a_url_http_cannot_carry_is_an_answer_not_an_exception():
    # Creation refuses such a URL; a record stored before that check must still not crash a worker
    with Receiver() as receiver:
        response, _ = timed_post(loopback_sender(), receiver.url + "/caf\u00e9-\u2603")
        assert receiver.received == []
    assert response.status is None and response.error.startswith("the request could not be written"), response


def test_a_refused_connection_is_an_answer_not_an_exception():
    port = closed_port()
    response, elapsed = timed_post(loopback_sender(timeout_seconds=10), f"http://127.0.0.1:{port}/hooks")
    assert response.status is None
    assert response.error is not None
    assert response.error.startswith("could not connect to '127.0.0.1':"), response.error
    assert "refused" in response.error.lower(), response.error
    assert elapsed < 5, elapsed


def test_a_name_that_does_not_resolve_is_an_answer_not_an_exception():
    def resolver(host: str):
        raise SourceUnreachableError(f"source host {host!r} could not be resolved")

    settings = Settings(allow_private_sources=True, webhook_timeout_seconds=2)
    sender = HttpWebhookSender(guard_for(settings, resolver), settings.webhook_timeout_seconds)
    assert sender.post("http://nowhere.example/hooks", {}, b"{}") == WebhookResponse(
        None, "source host 'nowhere.example' could not be resolved"
    )


@pytest.mark.parametrize(
    "url",
    ["http://user:secret@127.0.0.1:{port}/hooks", "ftp://127.0.0.1:{port}/hooks", "http://2130706433:{port}/hooks"],
)
def test_urls_of_a_refused_form_are_refused_even_where_private_addresses_are_allowed(canary, url):
    response = loopback_sender().post(url.format(port=canary.port), {}, b"{}")
    assert response.status is None
    assert response.error is not None and response.error.startswith("refused by the egress policy: "), response


# --- the egress policy at delivery: rebinding and non-public names ----------------------------------


class Network:
    """The test's DNS and routes: scripted answers per name (the last one repeats); the public address
    reaches the "public" receiver, every other address the canary."""

    def __init__(self, public_port: int, canary_port: int, answers: dict[str, list[list[str]]]) -> None:
        self._public_port = public_port
        self._canary_port = canary_port
        self._answers = answers
        self.resolved: list[str] = []
        self.dialed: list[tuple[str, int]] = []

    def resolve(self, host: str):
        self.resolved.append(host)
        if host not in self._answers:
            raise SourceUnreachableError(f"test DNS has no {host!r}")
        sequence = self._answers[host]
        answer = sequence.pop(0) if len(sequence) > 1 else sequence[0]
        return [ipaddress.ip_address(address) for address in answer]

    def dial(self, address, port: int, timeout: float) -> socket.socket:
        self.dialed.append((str(address), port))
        target = self._public_port if str(address) == PUBLIC else self._canary_port
        return direct_dial(ipaddress.ip_address("127.0.0.1"), target, timeout)




def strict(network: Network, canary_port: int) -> tuple[AddressSourceGuard, HttpWebhookSender]:
    """As production runs: private addresses refused. The canary's port is allowed, so only the address can refuse."""
    settings = Settings(allow_private_sources=False, source_ports=f"80,443,{canary_port}", webhook_timeout_seconds=2)
    guard = guard_for(settings, network.resolve)
    return guard, HttpWebhookSender(guard, settings.webhook_timeout_seconds, dial=network.dial)


def test_a_name_rebound_to_loopback_after_the_creation_check_is_refused_at_delivery(public, canary):
    # Given a name that answers a public address at the first lookup and loopback after it
    network = Network(public.port, canary.port, {"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    url = f"http://rebind.example:{canary.port}/hooks"
    guard, sender = strict(network, canary.port)
    # And the check the job's creation makes (the same guard) passed on the public answer
    guard.check(url)
    # When the webhook is delivered, the name now answers loopback: refused, nothing dialed
    assert sender.post(url, {}, b"{}") == WebhookResponse(None, NON_PUBLIC_ANSWER.format("rebind.example"))
    assert network.dialed == []
    assert network.resolved == ["rebind.example", "rebind.example"]
    assert public.received == []


def test_the_sender_resolves_once_and_connects_to_the_address_it_checked(public, canary):
    # Given the same rebinding name, first seen by the sender itself
    network = Network(public.port, canary.port, {"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    _, sender = strict(network, canary.port)
    # When it posts, one lookup serves the whole attempt, and the connection goes to that checked address
    assert sender.post("http://rebind.example/hooks", {}, b"{}") == WebhookResponse(204)
    assert network.resolved == ["rebind.example"]
    assert network.dialed == [(PUBLIC, 80)]
    assert len(public.received) == 1
    assert public.received[0][0]["host"] == "rebind.example"
    # And the next attempt looks again, meets loopback, and is refused without a connection
    assert sender.post("http://rebind.example/hooks", {}, b"{}") == WebhookResponse(
        None, NON_PUBLIC_ANSWER.format("rebind.example")
    )
    assert network.dialed == [(PUBLIC, 80)]
    assert len(public.received) == 1


@pytest.mark.parametrize(
    ("host", "answer"),
    [
        ("loop.example", ["127.0.0.1"]),
        ("meta.example", ["169.254.169.254"]),
        ("private.example", ["10.0.0.5"]),
        ("v6loop.example", ["::1"]),
        ("mapped.example", ["::ffff:127.0.0.1"]),
        ("dual.example", [PUBLIC, "127.0.0.1"]),  # every answer is checked, not just the first
    ],
)
def test_a_name_that_resolves_to_a_non_public_address_is_refused_at_delivery(public, canary, host, answer):
    network = Network(public.port, canary.port, {host: [answer]})
    _, sender = strict(network, canary.port)
    for url in (f"http://{host}:{canary.port}/hooks", f"http://{host}/latest/meta-data/"):
        assert sender.post(url, {}, b"{}") == WebhookResponse(None, NON_PUBLIC_ANSWER.format(host))
    assert network.dialed == []
    assert public.received == []


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:{port}/hooks", "http://169.254.169.254/latest/meta-data/", "http://[::1]:{port}/hooks"]
)
def test_a_non_public_literal_address_is_refused_at_delivery(public, canary, url):
    network = Network(public.port, canary.port, {})
    _, sender = strict(network, canary.port)
    response = sender.post(url.format(port=canary.port), {}, b"{}")
    assert response.status is None
    assert response.error is not None and response.error.startswith("refused by the egress policy: "), response
    assert "non-public address" in response.error
    assert network.dialed == [] and network.resolved == []


def test_strict_control_a_public_name_is_delivered(public, canary):
    # The control for the refusals above: the same strict setup delivers to a name that stays public
    network = Network(public.port, canary.port, {"hooks.example": [[PUBLIC]]})
    _, sender = strict(network, canary.port)
    assert sender.post("http://hooks.example/hooks", {}, b"{}") == WebhookResponse(204)
    assert network.dialed == [(PUBLIC, 80)]
    assert len(public.received) == 1


# --- https: the certificate is checked against the name, though the address was pinned --------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed, so there is no test certificate")
    folder = tmp_path_factory.mktemp("webhook-tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=hooks.example",
         "-addext", "subjectAltName=DNS:hooks.example",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def shared_tls_receiver(certificates):
    receiver = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / "cert.pem", certificates / "key.pem")
    # Same listening descriptor, now answering TLS; no connection has been accepted yet
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    yield receiver
    receiver.close()


@pytest.fixture
def tls_receiver(shared_tls_receiver):
    shared_tls_receiver.received.clear()
    return shared_tls_receiver


def tls_sender(certificates, host: str) -> HttpWebhookSender:
    settings = Settings(allow_private_sources=True, webhook_timeout_seconds=3)
    guard = guard_for(settings, lambda name: [ipaddress.ip_address("127.0.0.1")] if name == host else [])
    return HttpWebhookSender(
        guard, settings.webhook_timeout_seconds, tls=ssl.create_default_context(cafile=str(certificates / "cert.pem"))
    )


def test_https_is_delivered_to_the_pinned_address_with_the_certificate_checked_against_the_name(
    certificates, tls_receiver
):
    sender = tls_sender(certificates, "hooks.example")
    body = b'{"type":"job.failed"}'
    assert sender.post(f"https://hooks.example:{tls_receiver.port}/hooks", {}, body) == WebhookResponse(204)
    assert tls_receiver.received[0][1] == body
    assert tls_receiver.received[0][0]["host"] == f"hooks.example:{tls_receiver.port}"


def test_https_to_a_name_the_certificate_does_not_cover_is_refused(certificates, tls_receiver):
    # The same receiver and address, reached under another name: its certificate does not match
    sender = tls_sender(certificates, "other.example")
    response = sender.post(f"https://other.example:{tls_receiver.port}/hooks", {}, b"{}")
    assert response.status is None
    assert response.error is not None and "CERTIFICATE_VERIFY_FAILED" in response.error, response
    assert tls_receiver.received == []
