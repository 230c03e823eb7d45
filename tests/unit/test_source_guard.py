import pytest

from clipline.domain.errors import SourceNotAllowedError, UnsupportedSourceUrlError
from clipline.media.source_guard import AddressSourceGuard

PUBLIC = AddressSourceGuard(allowlist=(), allow_private=False)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/a.mp4", "file:///etc/passwd", "gopher://x", "data:video/mp4;base64,AAAA", "/local/path.mp4", "http://", "http://[::1"],
)
def test_only_http_urls_with_a_host(url):
    with pytest.raises(UnsupportedSourceUrlError):
        PUBLIC.check(url)


def test_credentials_in_urls_are_refused():
    with pytest.raises(UnsupportedSourceUrlError, match="credentials"):
        PUBLIC.check("http://user:pw@93.184.216.34/a.mp4")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.mp4",
        "http://localhost:8080/a.mp4",
        "http://10.1.2.3/a.mp4",
        "http://192.168.0.1/a.mp4",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/a.mp4",
        "http://0.0.0.0/a.mp4",
        "http://[::1]/a.mp4",
        "http://[fd00::1]/a.mp4",
        "http://[::ffff:127.0.0.1]/a.mp4",
        "http://2130706433/a.mp4",
        "http://0x7f000001/a.mp4",
        "http://127.1/a.mp4",
        "http://224.0.0.1/a.mp4",
    ],
)
def test_non_public_addresses_are_refused(url):
    with pytest.raises(SourceNotAllowedError):
        PUBLIC.check(url)


def test_public_addresses_pass():
    PUBLIC.check("https://93.184.216.34/video.mp4")
    PUBLIC.check("http://[2606:2800:220:1:248:1893:25c8:1946]/video.mp4")


def test_private_sources_can_be_allowed_for_tests_and_the_demo():
    AddressSourceGuard(allowlist=(), allow_private=True).check("http://127.0.0.1:9000/a.mp4")


def test_allowlist_limits_hosts_with_wildcards():
    guard = AddressSourceGuard(allowlist=("media.example.com", "*.cdn.example.net"), allow_private=True)
    guard.check("https://media.example.com/a.mp4")
    guard.check("https://eu.cdn.example.net./a.mp4")
    for url in ("https://example.com/a.mp4", "https://cdn.example.net.evil.com/a.mp4", "https://media.example.com.evil/a"):
        with pytest.raises(SourceNotAllowedError, match="allowlist"):
            guard.check(url)


def resolver_of(*answers):
    import ipaddress

    calls = []

    def resolve(host):
        calls.append(host)
        return [ipaddress.ip_address(a) for a in answers]

    resolve.calls = calls
    return resolve


@pytest.mark.parametrize(
    "url",
    ["http://0177.0.0.1/a", "http://0x7f.1/a", "http://127.0.0.1./a", "http://93.184.216.034/a", "http://0x5db8d822/a", "http://1.2.3/a"],
)
def test_numeric_host_spellings_other_than_a_dotted_quad_are_refused_even_when_public(url):
    # Given a resolver that would say "public" to anything
    guard = AddressSourceGuard((), allow_private=False, resolver=resolver_of("93.184.216.34"))
    with pytest.raises(SourceNotAllowedError, match="numeric"):
        guard.check(url)


def test_ports_outside_the_set_are_refused_unless_private_sources_are_allowed():
    guard = AddressSourceGuard((), allow_private=False, ports=frozenset({443}), resolver=resolver_of("93.184.216.34"))
    guard.check("https://media.example.com/a.mp4")
    for url in ("http://media.example.com/a.mp4", "https://media.example.com:8443/a.mp4", "https://media.example.com:0/a"):
        with pytest.raises(SourceNotAllowedError, match="port"):
            guard.check(url)
    AddressSourceGuard((), allow_private=True, ports=frozenset({443})).check("http://127.0.0.1:8080/a.mp4")


def test_every_answer_is_checked_and_the_checked_answers_are_returned():
    import ipaddress

    resolve = resolver_of("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    guard = AddressSourceGuard((), allow_private=False, resolver=resolve)
    assert guard.checked_addresses("media.example.com", 443) == [
        ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946")
    ]
    assert resolve.calls == ["media.example.com"]
    with pytest.raises(SourceNotAllowedError):
        AddressSourceGuard((), allow_private=False, resolver=resolver_of("93.184.216.34", "10.0.0.1")).check("http://a.example/")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True), ("64:ff9b::5db8:d822", True),
        ("100.64.0.1", False), ("192.0.0.170", False), ("198.18.0.1", False), ("240.0.0.1", False), ("224.0.0.1", False),
        ("::", False), ("::1", False), ("::7f00:1", False), ("::ffff:93.184.216.34", False), ("fd00::1", False),
        ("fe80::1", False), ("ff0e::1", False), ("64:ff9b::7f00:1", False), ("64:ff9b::a00:1", False),
        ("64:ff9b:1::5db8:d822", False), ("2002:7f00:1::1", False), ("2002:c0a8:101::1", False),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False), ("2001:db8::1", False),
    ],
)  # fmt: skip
def test_address_classes(address, public):
    import ipaddress

    from clipline.media.source_guard import is_public_unicast

    assert is_public_unicast(ipaddress.ip_address(address)) is public
