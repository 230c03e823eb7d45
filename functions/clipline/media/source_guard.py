"""Which source URLs ffmpeg may fetch.

This is the address half of the SSRF policy: scheme, userinfo, host form,
allowlist, port, and the address class of every address the host resolves to.
It runs when a job is created, again in the probe step, and, through the
egress proxy (``egress_proxy``), on every connection ffmpeg opens, including
each redirect hop. The proxy connects to the addresses this guard returned, so
what was checked is what is fetched.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import socket
from typing import Callable
from urllib.parse import urlsplit

from ..domain.errors import SourceNotAllowedError, SourceUnreachableError, UnsupportedSourceUrlError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], list[Address]]

DEFAULT_PORTS = frozenset({80, 443})
_DEFAULT_PORT_BY_SCHEME = {"http": 80, "https": 443}

# A label that inet_aton would read as a number: decimal, octal (leading 0) or hex (0x).
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
_NAME = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$")

# Ranges refused whatever Python's is_global says about them (its tables change between releases).
_NON_PUBLIC_V4 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    )
)  # fmt: skip
_NON_PUBLIC_V6 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible form
        "::ffff:0:0/96", "::ffff:0:0:0/96",  # IPv4-mapped and IPv4-translated
        "64:ff9b:1::/48",  # local-use NAT64: never public
        "100::/64", "2001:db8::/32", "3fff::/20", "5f00::/16",
        "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    )
)  # fmt: skip
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_TEREDO = ipaddress.ip_network("2001::/32")
_SIXTOFOUR = ipaddress.ip_network("2002::/16")


def system_resolver(host: str) -> list[Address]:
    """Every address the system resolver gives for ``host``. Raises SourceUnreachableError."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise SourceUnreachableError(f"source host {host!r} could not be resolved") from error
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


class AddressSourceGuard:
    """SourceGuard that checks the URL's form, the allowlist, the port, and what the host resolves to.

    ``allow_private`` (tests and the demo only) lifts the address check and the
    port restriction; the scheme, form and allowlist checks still apply.
    ``resolver`` is the one place names become addresses; tests inject one.
    """

    def __init__(
        self,
        allowlist: tuple[str, ...],
        allow_private: bool,
        ports: frozenset[int] = DEFAULT_PORTS,
        resolver: Resolver | None = None,
    ) -> None:
        self._allowlist = allowlist
        self._allow_private = allow_private
        self._ports = ports
        self._resolve = resolver or system_resolver

    def check(self, url: str) -> None:
        """Refuse ``url`` unless ffmpeg may fetch it.

        Raises:
            UnsupportedSourceUrlError: not http(s), no host, credentials, not a URL.
            SourceNotAllowedError: host form, allowlist, port, or a non-public address.
            SourceUnreachableError: the host does not resolve.
        """
        _, host, port = split_source_url(url)
        if self._allow_private:
            self._checked_name(host, port)  # no address to refuse, so no lookup to make
        else:
            self.checked_addresses(host, port)

    def checked_addresses(self, host: str, port: int) -> list[Address]:
        """The addresses of ``host`` that may be connected to on ``port``: all of them, or an error.

        Resolves once. The caller must connect to one of these addresses and
        never resolve ``host`` again, or a rebinding resolver could swap them.

        Raises:
            UnsupportedSourceUrlError, SourceNotAllowedError, SourceUnreachableError.
        """
        host, literal = self._checked_name(host, port)
        addresses = [literal] if literal is not None else self._resolve(host)
        if not addresses:
            raise SourceUnreachableError(f"source host {host!r} has no address")
        if not self._allow_private:
            for address in addresses:
                if not is_public_unicast(address):
                    raise SourceNotAllowedError(
                        f"source host {host!r} resolves to a non-public address; only public sources are fetched"
                    )
        return addresses

    def _checked_name(self, host: str, port: int) -> tuple[str, Address | None]:
        host, literal = _canonical_host(host)
        if self._allowlist and not any(fnmatch.fnmatchcase(host, pattern) for pattern in self._allowlist):
            raise SourceNotAllowedError(f"source host {host!r} is not on the allowlist")
        if not self._allow_private and port not in self._ports:
            raise SourceNotAllowedError(
                f"source port {port} is not allowed; allowed: {', '.join(map(str, sorted(self._ports)))}"
            )
        return host, literal


def split_source_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL with no credentials. Raises UnsupportedSourceUrlError."""
    if not isinstance(url, str) or len(url) > 2048:
        raise UnsupportedSourceUrlError("sourceUrl must be an http(s) URL of at most 2048 characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url) or "\\" in url:
        raise UnsupportedSourceUrlError("sourceUrl must not contain spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsupportedSourceUrlError(f"sourceUrl is not a valid URL: {error}") from error
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORT_BY_SCHEME:
        raise UnsupportedSourceUrlError("sourceUrl must use http or https")
    if "@" in parts.netloc:
        raise UnsupportedSourceUrlError("sourceUrl must not carry credentials")
    host = parts.hostname or ""
    if not host:
        raise UnsupportedSourceUrlError("sourceUrl has no host")
    return scheme, host, _DEFAULT_PORT_BY_SCHEME[scheme] if port is None else port


def _canonical_host(host: str) -> tuple[str, Address | None]:
    """The host as it is checked (lower case, one trailing dot dropped from names) and its address if literal.

    Only canonical literals are accepted: a dotted quad, or an IPv6 address
    with no zone. Every other numeric spelling (``2130706433``, ``0177.0.0.1``,
    ``0x7f.1``, ``127.1``, ``127.0.0.1.``) is refused rather than interpreted,
    because ffmpeg, libc and Python do not agree on what they mean.
    """
    host = host.lower()
    if ":" in host:
        if "%" in host:
            raise SourceNotAllowedError("IPv6 zone identifiers are not allowed in a source host")
        try:
            return host, ipaddress.IPv6Address(host)
        except ValueError as error:
            raise UnsupportedSourceUrlError(f"source host {host!r} is not a valid IPv6 address") from error
    bare = host[:-1] if host.endswith(".") else host
    labels = bare.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            address = None
        if address is None or str(address) != host:
            raise SourceNotAllowedError(
                f"source host {host!r} is a numeric form other than a dotted quad; write the address as a.b.c.d"
            )
        return host, address
    if not bare or not _NAME.match(bare):
        raise UnsupportedSourceUrlError(f"source host {host!r} is not a valid host name (use punycode for IDNs)")
    return bare, None


def is_public_unicast(address: Address) -> bool:
    """True for a globally routable unicast address, looking inside IPv6 forms that carry an IPv4 one."""
    if isinstance(address, ipaddress.IPv4Address):
        return address.is_global and not any(address in network for network in _NON_PUBLIC_V4)
    if any(address in network for network in _NON_PUBLIC_V6):
        return False
    embedded: list[ipaddress.IPv4Address] = []
    if address in _NAT64:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address in _SIXTOFOUR and address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address in _TEREDO and address.teredo is not None:
        embedded.extend(address.teredo)
    if any(not is_public_unicast(inner) for inner in embedded):
        return False
    # NAT64's well-known prefix is globally routable though Python may not say so; its embedded address decided.
    return address in _NAT64 or (address.is_global and not address.is_multicast)
