"""Which source URLs ffmpeg may fetch.

This is the first layer of the SSRF policy: scheme, userinfo, host allowlist and
the address class of every address the host resolves to. It runs when a job is
created and again, at fetch time, in the probe step.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from urllib.parse import urlsplit

from ..domain.errors import SourceNotAllowedError, SourceUnreachableError, UnsupportedSourceUrlError


class AddressSourceGuard:
    """SourceGuard that checks the URL's form, the allowlist, and what the host resolves to."""

    def __init__(self, allowlist: tuple[str, ...], allow_private: bool) -> None:
        self._allowlist = allowlist
        self._allow_private = allow_private

    def check(self, url: str) -> None:
        host = self._check_form(url)
        if self._allowlist and not any(fnmatch.fnmatchcase(host, pattern) for pattern in self._allowlist):
            raise SourceNotAllowedError(f"source host {host!r} is not on the allowlist")
        if not self._allow_private:
            for address in _resolve(host):
                if not _is_public(address):
                    raise SourceNotAllowedError(
                        f"source host {host!r} resolves to a non-public address; only public sources are fetched"
                    )

    @staticmethod
    def _check_form(url: str) -> str:
        if not isinstance(url, str) or len(url) > 2048:
            raise UnsupportedSourceUrlError("sourceUrl must be an http(s) URL of at most 2048 characters")
        try:
            parts = urlsplit(url.strip())
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError as error:
            raise UnsupportedSourceUrlError(f"sourceUrl is not a valid URL: {error}") from error
        if parts.scheme.lower() not in ("http", "https"):
            raise UnsupportedSourceUrlError("sourceUrl must use http or https")
        if parts.username is not None or parts.password is not None:
            raise UnsupportedSourceUrlError("sourceUrl must not carry credentials")
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise UnsupportedSourceUrlError("sourceUrl has no host")
        return host


def _resolve(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise SourceUnreachableError(f"source host {host!r} could not be resolved") from error
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is not None and not embedded.is_global:
            return False
    return address.is_global and not address.is_multicast
