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
