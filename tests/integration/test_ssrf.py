"""SSRF: every attempt is refused, and a canary on loopback proves none of them reached it.

The test network: a resolver that knows a few fake names, and a dialer that
routes the fake public address 93.184.216.34 (ports 80 and 443) to a loopback
"public site" and EVERY other address and port to the canary. So a check that
let anything through would show up as a canary hit. The real ffmpeg fetches
through the real egress proxy; only the resolver and the dialer are the test's.
"""

from __future__ import annotations

import http.server
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clipline.domain import errors
from clipline.domain.jobs import ClipRequest
from clipline.domain.use_cases import NewJobRequest, clip_source, create_job, probe_source
from clipline.media.clip import FfmpegClipper
from clipline.media.egress_proxy import EgressProxy, direct_dial
from clipline.media.probe import FfmpegProber, SourceAccess
from clipline.media.source_guard import AddressSourceGuard, is_public_unicast
from tests.fakes import FixedClock, fake_services

PUBLIC_IP = ipaddress.ip_address("93.184.216.34")


class Canary:
    """A loopback HTTP server that records every request it gets."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        canary = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                canary.hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def public_site_handler(media: Path, canary_port: int):
    """The pretend public origin: real media, redirects and hostile playlists."""
    loopback = f"http://127.0.0.1:{canary_port}"
    redirects = {
        "/to-loopback": f"{loopback}/from-redirect",
        "/to-loopback-default-port": "http://127.0.0.1/from-redirect",
        "/to-metadata": "http://169.254.169.254/latest/meta-data/",
        "/to-decimal": "http://2130706433/from-redirect",
        "/to-ipv6-loopback": "http://[::1]/from-redirect",
        "/to-mapped": "http://[::ffff:127.0.0.1]/from-redirect",
        "/to-localhost": "http://localhost/from-redirect",
        "/to-file": "file:///etc/passwd",
        "/to-https-loopback": "https://127.0.0.1/from-redirect",
        "/loop": "/loop",
    }
    bodies = {
        "/file.m3u8": b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
        "/loopback.m3u8": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{loopback}/segment.ts\n#EXT-X-ENDLIST\n".encode(),
        # A playlist dressed as an MP4: the demuxer is chosen by content, and refused by it.
        "/disguised.mp4": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{loopback}/segment.ts\n#EXT-X-ENDLIST\n".encode(),
        "/list.ffconcat": f"ffconcat version 1.0\nfile {loopback}/concat.mp4\nfile file:///etc/passwd\n".encode(),
        "/master.mpd": (
            f'<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
            f'mediaPresentationDuration="PT10S"><Period><AdaptationSet><Representation id="1" bandwidth="1">'
            f"<BaseURL>{loopback}/dash.mp4</BaseURL></Representation></AdaptationSet></Period></MPD>"
        ).encode(),
    }

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(media), **kwargs)

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path in redirects:
                self.send_response(302)
                self.send_header("Location", redirects[path])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path in bodies:
                self.send_response(200)
                self.send_header("Content-Length", str(len(bodies[path])))
                self.end_headers()
                self.wfile.write(bodies[path])
            else:
                super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

        def handle(self) -> None:
            try:
                super().handle()
            except (ConnectionError, ssl.SSLError):
                pass  # ffmpeg hangs up once it has enough

    return Handler


@dataclass
class FakeNetwork:
    """The resolver and dialer the guard and proxy are given."""

    public_http: int
    public_https: int | None
    canary_port: int
    stall_port: int
    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    resolved: list[str] = field(default_factory=list)
    dialed: list[tuple[str, int]] = field(default_factory=list)

    def resolve(self, host: str):
        self.resolved.append(host)
        if host not in self.answers:
            raise errors.SourceUnreachableError(f"test DNS has no {host!r}")
        sequence = self.answers[host]
        answer = sequence[0] if len(sequence) == 1 else sequence.pop(0)
        return [ipaddress.ip_address(a) for a in answer]

    def dial(self, address, port: int, timeout: float) -> socket.socket:
        self.dialed.append((str(address), port))
        if address == PUBLIC_IP and port == 80:
            target = self.public_http
        elif address == PUBLIC_IP and port == 443 and self.public_https:
            target = self.public_https
        elif address == ipaddress.ip_address("93.184.216.35"):
            target = self.stall_port
        else:
            target = self.canary_port  # anything a broken check let through lands here
        return direct_dial(ipaddress.ip_address("127.0.0.1"), target, timeout)


@pytest.fixture(scope="module")
def canary():
    server = Canary()
    yield server
    server.server.shutdown()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if shutil.which("openssl") is None:
        return None
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=public.example",
         "-addext", "subjectAltName=DNS:public.example", "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def network(media_dir, canary, tls_files):
    handler = public_site_handler(media_dir, canary.port)
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    servers = [plain]
    https_port = None
    if tls_files is not None:
        secure = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls_files / "cert.pem", tls_files / "key.pem")
        secure.socket = context.wrap_socket(secure.socket, server_side=True)
        servers.append(secure)
        https_port = secure.server_address[1]
    stall = socket.socket()
    stall.bind(("127.0.0.1", 0))
    stall.listen()
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield FakeNetwork(plain.server_address[1], https_port, canary.port, stall.getsockname()[1])
    for server in servers:
        server.shutdown()
    stall.close()


@pytest.fixture
def net(network, canary, monkeypatch, tls_files):
    """Fresh answers and logs per test; afterwards nothing reached the canary or dialed a non-public address."""
    network.answers = {
        "public.example": [["93.184.216.34"]],
        "stall.example": [["93.184.216.35"]],
        "localhost": [["127.0.0.1", "::1"]],
        "meta.example": [["169.254.169.254"]],
        "dual.example": [["93.184.216.34", "10.0.0.5"]],
        "v6loop.example": [["::1"]],
        "mapped.example": [["::ffff:10.0.0.1"]],
        "rebind.example": [["93.184.216.34"], ["127.0.0.1"]],
    }
    network.resolved.clear()
    network.dialed.clear()
    canary.hits.clear()
    if tls_files is not None:
        # ffmpeg verifies certificates; trust the test site's.
        monkeypatch.setenv("SSL_CERT_FILE", str(tls_files / "cert.pem"))
    yield network
    assert canary.hits == [], f"requests reached the canary: {canary.hits}"
    assert all(is_public_unicast(ipaddress.ip_address(a)) for a, _ in network.dialed), network.dialed


def strict_media(ffmpeg, network, **limits):
    guard = AddressSourceGuard((), allow_private=False, resolver=network.resolve)
    proxy = EgressProxy(
        guard, limits.get("max_bytes", 10**9), limits.get("first_byte_timeout", 5), dial=network.dial
    )
    access = SourceAccess(proxy, max_redirects=3, read_timeout_seconds=limits.get("first_byte_timeout", 5))
    prober = FfmpegProber(ffmpeg, 20, access, limits.get("max_seconds"))
    return guard, prober, FfmpegClipper(ffmpeg, prober, 30, 1, access)


# (url, the code the job creation check gives). Every one of these must also be
# refused by the fetch path on its own (the proxy), without the creation check.
ATTEMPTS = [
    # loopback, every spelling
    ("http://127.0.0.1/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://127.0.0.1:80/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://127.255.255.254/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://127.1/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://2130706433/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://0x7f000001/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://0177.0.0.1/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://0x7f.1/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://127.000.000.001/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://127.0.0.1./a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://localhost/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://LOCALHOST./a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://0.0.0.0/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://0/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("https://127.0.0.1/a.mp4", "SOURCE_NOT_ALLOWED"),
    # private, shared, link-local and the rest of the special-purpose blocks
    ("http://10.0.0.1/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://172.16.0.1/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://192.168.1.1/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://100.64.0.1/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://169.254.169.254/latest/meta-data/", "SOURCE_NOT_ALLOWED"),
    ("http://169.254.170.2/v2/credentials", "SOURCE_NOT_ALLOWED"),
    ("http://127.0.0.1:9001/2018-06-01/runtime/invocation/next", "SOURCE_NOT_ALLOWED"),
    ("http://224.0.0.1/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://255.255.255.255/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://240.0.0.1/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://198.18.0.1/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://192.0.0.170/a.mp4", "SOURCE_NOT_ALLOWED"),
    # IPv6, and IPv6 forms that carry a private IPv4 address
    ("http://[::1]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[::]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[0:0:0:0:0:0:0:1]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[fd00::1]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[fe80::1]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[fe80::1%25eth0]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[ff02::1]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[::ffff:127.0.0.1]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[::ffff:7f00:1]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[::ffff:169.254.169.254]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[::127.0.0.1]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[64:ff9b::7f00:1]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[64:ff9b::a9fe:a9fe]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[64:ff9b:1::a00:1]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[2002:7f00:1::1]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[2002:c0a8:101::1]/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/a.mp4", "SOURCE_NOT_ALLOWED"),
    # names that resolve to non-public addresses (every answer is checked)
    ("http://meta.example/latest/meta-data/", "SOURCE_NOT_ALLOWED"),
    ("http://dual.example/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://v6loop.example/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://mapped.example/a.mp4", "SOURCE_NOT_ALLOWED"),
    # ports outside the allowed set, on a public host
    ("http://public.example:8080/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://public.example:22/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("https://public.example:8443/a.mp4", "SOURCE_NOT_ALLOWED"),
    ("http://93.184.216.34:6379/a.mp4", "SOURCE_NOT_ALLOWED"),
    # a fragment that hides the host from a sloppy parser
    ("http://127.0.0.1#@public.example/a.mp4", "SOURCE_NOT_ALLOWED"),
    # userinfo: refused for its form, whatever host follows
    ("http://public.example@127.0.0.1/a.mp4", "UNSUPPORTED_SOURCE_URL"),
    ("http://user:pass@127.0.0.1/a.mp4", "UNSUPPORTED_SOURCE_URL"),
    ("http://public.example:80@127.0.0.1/a.mp4", "UNSUPPORTED_SOURCE_URL"),
    ("http://public.example\\@127.0.0.1/a.mp4", "UNSUPPORTED_SOURCE_URL"),
]

# Schemes ffmpeg would read locally or over other protocols: refused before any fetch.
OTHER_SCHEMES = [
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "ftp://public.example/a.mp4",
    "concat:http://public.example/a.mp4|file:///etc/passwd",
    "subfile,,start,0,end,0,,:/etc/passwd",
    "data:text/plain,hello",
    "tcp://127.0.0.1:6379",
]

# Public at creation; what ffmpeg meets when it fetches is refused by the proxy or
# the whitelists (SOURCE_NOT_ALLOWED). A playlist ffmpeg does not even recognise
# as one (wrong extension, or a format it only detects by name) is not media to it.
FETCH_TIME_ATTEMPTS = [
    ("http://public.example/to-loopback", "SOURCE_NOT_ALLOWED"),
    ("http://public.example/to-loopback-default-port", "SOURCE_NOT_ALLOWED"),
    ("http://public.example/to-metadata", "SOURCE_NOT_ALLOWED"),
    ("http://public.example/to-decimal", "SOURCE_NOT_ALLOWED"),
    ("http://public.example/to-ipv6-loopback", "SOURCE_NOT_ALLOWED"),
    ("http://public.example/to-mapped", "SOURCE_NOT_ALLOWED"),
    ("http://public.example/to-localhost", "SOURCE_NOT_ALLOWED"),
    ("http://public.example/to-https-loopback", "SOURCE_NOT_ALLOWED"),
    ("http://public.example/to-file", "SOURCE_NOT_ALLOWED"),
    ("http://public.example/file.m3u8", "SOURCE_NOT_ALLOWED"),
    ("http://public.example/loopback.m3u8", "SOURCE_NOT_ALLOWED"),
    ("http://public.example/list.ffconcat", "SOURCE_NOT_ALLOWED"),
    ("http://public.example/disguised.mp4", "SOURCE_NOT_MEDIA"),
    ("http://public.example/master.mpd", "SOURCE_NOT_MEDIA"),
]


def submit(services, url):
    return create_job(services, NewJobRequest(url, 0, 2), owner="k", correlation_id="c")


def test_the_table_is_big_enough():
    assert len(ATTEMPTS) + len(OTHER_SCHEMES) + len(FETCH_TIME_ATTEMPTS) >= 40


@pytest.mark.parametrize(("url", "code"), ATTEMPTS)
def test_attempts_are_refused_at_creation_and_again_by_the_fetch_path(ffmpeg, net, url, code):
    guard, prober, _ = strict_media(ffmpeg, net)
    services = fake_services(FixedClock(), source_guard=guard)
    # When a job is created for it, it is refused with the table's code
    with pytest.raises(errors.ClipLineError) as created:
        submit(services, url)
    assert created.value.code == code, created.value.message
    # And ffmpeg, asked directly (as if the creation check were missing), is refused by the proxy
    with pytest.raises(errors.ClipLineError) as fetched:
        prober.probe(url)
    assert fetched.value.code in ("SOURCE_NOT_ALLOWED", "SOURCE_NOT_FOUND", "SOURCE_UNREACHABLE", "SOURCE_NOT_MEDIA")


@pytest.mark.parametrize("url", OTHER_SCHEMES)
def test_other_schemes_are_refused_before_any_fetch(ffmpeg, net, url):
    guard, prober, _ = strict_media(ffmpeg, net)
    with pytest.raises(errors.UnsupportedSourceUrlError):
        submit(fake_services(FixedClock(), source_guard=guard), url)
    assert net.resolved == []


@pytest.mark.parametrize(("url", "code"), FETCH_TIME_ATTEMPTS)
def test_redirects_and_playlists_are_refused_when_fetched(ffmpeg, net, url, code):
    # Given a job for a public host, which passes the creation check
    guard, prober, _ = strict_media(ffmpeg, net)
    services = fake_services(FixedClock(), source_guard=guard, prober=prober)
    job = submit(services, url)
    # When the probe step fetches it, the redirect hop or the playlist is refused
    with pytest.raises(errors.ClipLineError) as refused:
        probe_source(services, job.id)
    assert refused.value.code == code, refused.value.message


@pytest.mark.parametrize("path", ["/to-loopback", "/loopback.m3u8"])
def test_the_same_over_https_through_connect(ffmpeg, net, path):
    if net.public_https is None:
        pytest.skip("openssl is not installed, so there is no test certificate")
    _, prober, _ = strict_media(ffmpeg, net)
    with pytest.raises(errors.SourceNotAllowedError):
        prober.probe(f"https://public.example{path}")


def test_a_public_source_is_fetched_over_http_and_https(ffmpeg, net, tmp_path):
    # The control: the same setup lets a real public-looking source through, pinned to the checked address
    _, prober, clipper = strict_media(ffmpeg, net)
    info = prober.probe("http://public.example/long.mp4")
    assert info.duration_seconds == pytest.approx(180, abs=0.05)
    outcome = clipper.clip(ClipRequest(source_url="http://public.example/long.mp4", start_seconds=10, end_seconds=12), info, tmp_path, lambda _: None)
    assert outcome.info.duration_seconds == pytest.approx(2, abs=1 / 25)
    if net.public_https is not None:
        assert prober.probe("https://public.example/long.mp4").duration_seconds == pytest.approx(180, abs=0.05)
    assert {port for _, port in net.dialed} <= {80, 443}


def test_a_rebinding_name_is_refused_at_fetch_time(ffmpeg, net):
    # Given a name that answers a public address first and loopback after
    guard, prober, _ = strict_media(ffmpeg, net)
    services = fake_services(FixedClock(), source_guard=guard, prober=prober)
    job = submit(services, "http://rebind.example/long.mp4")  # the first answer: public
    # When the probe step checks and fetches it, the second answer (loopback) is refused
    with pytest.raises(errors.SourceNotAllowedError):
        probe_source(services, job.id)


def test_the_proxy_connects_to_the_address_it_checked_and_never_resolves_twice(ffmpeg, net, tmp_path):
    # Given the rebinding name, fetched directly (no creation check): the proxy sees the public answer
    _, prober, clipper = strict_media(ffmpeg, net)
    info = prober.probe("http://rebind.example/long.mp4")
    # Then that one resolution served the whole connection; ffmpeg did no lookup of its own
    assert net.resolved == ["rebind.example"]
    assert net.dialed == [("93.184.216.34", 80)]
    # And the next connection (the clip) is checked again, meets loopback, and is refused
    with pytest.raises(errors.SourceNotAllowedError):
        clipper.clip(ClipRequest(source_url="http://rebind.example/long.mp4", start_seconds=0, end_seconds=2), info, tmp_path, lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_a_rebinding_name_is_refused_at_clip_time_too(ffmpeg, net, tmp_path):
    guard, prober, clipper = strict_media(ffmpeg, net)
    net.answers["rebind.example"] = [["93.184.216.34"], ["93.184.216.34"], ["93.184.216.34"], ["127.0.0.1"]]
    services = fake_services(FixedClock(), source_guard=guard, prober=prober, clipper=clipper, work_dir=tmp_path)
    job = submit(services, "http://rebind.example/long.mp4")
    probe_source(services, job.id)
    with pytest.raises(errors.SourceNotAllowedError):
        clip_source(services, job.id)


def test_redirects_are_bounded(ffmpeg, net):
    _, prober, _ = strict_media(ffmpeg, net)
    with pytest.raises(errors.ClipLineError):
        prober.probe("http://public.example/loop")
    assert len(net.dialed) <= 4  # the first request and max_redirects (3) hops


def test_no_proxy_in_the_environment_does_not_let_ffmpeg_around_the_proxy(ffmpeg, net, monkeypatch, canary):
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    _, prober, _ = strict_media(ffmpeg, net)
    with pytest.raises(errors.SourceNotAllowedError):
        prober.probe(f"http://127.0.0.1:{canary.port}/bypass")


def test_a_source_over_the_byte_limit_is_refused(ffmpeg, net):
    _, prober, _ = strict_media(ffmpeg, net, max_bytes=100_000)
    with pytest.raises(errors.SourceTooLargeError):
        prober.probe("http://public.example/long.mp4")


def test_a_source_over_the_duration_limit_is_refused(ffmpeg, net):
    _, prober, _ = strict_media(ffmpeg, net, max_seconds=60)
    with pytest.raises(errors.SourceTooLargeError, match="180"):
        prober.probe("http://public.example/long.mp4")


def test_a_source_that_never_sends_a_first_byte_is_unreachable(ffmpeg, net):
    import time

    _, prober, _ = strict_media(ffmpeg, net, first_byte_timeout=1)
    started = time.monotonic()
    with pytest.raises(errors.SourceUnreachableError):
        prober.probe("http://stall.example/a.mp4")
    assert time.monotonic() - started < 5
