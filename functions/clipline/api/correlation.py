"""Correlation ids: the caller's ``x-correlation-id`` when it is sane, else the request id."""

import re

CORRELATION_HEADER = "x-correlation-id"
_SANE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def choose_correlation_id(given: str | None, request_id: str) -> str:
    """``given`` if it is 1-128 safe characters (it reaches logs and headers), else ``request_id``."""
    return given if given and _SANE.match(given) else request_id
