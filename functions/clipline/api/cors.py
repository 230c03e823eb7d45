"""CORS for the console's origin: the headers a browser page may send and read, and the check the API answers with.

API Gateway answers preflights from the same lists (infra.api reads them), so what
a preflight allows and what an answer carries cannot drift apart.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import CORSConfig

from ..composition import services
from .correlation import CORRELATION_HEADER

# What the console sends besides the CORS-safe headers, and what it reads of an answer.
REQUEST_HEADERS = ("Content-Type", "X-Api-Key", "Idempotency-Key", CORRELATION_HEADER)
EXPOSED_HEADERS = (CORRELATION_HEADER, "Retry-After", "Location")
# How long a browser may reuse a preflight's answer.
MAX_AGE_SECONDS = 3600


class ConsoleOrigins(CORSConfig):
    """Powertools' CORS headers, for the origins CLIPLINE_CONSOLE_ORIGINS names and no other.

    The origins are read when a request asks, not when the module loads: nothing reads
    settings at import. A request from any other origin gets no CORS headers, so the
    browser keeps the answer from that page.
    """

    def __init__(self) -> None:
        super().__init__(
            # Never answered as such: allowed_origin below answers only a named origin, with itself.
            allow_origin="*",
            allow_headers=list(REQUEST_HEADERS),
            expose_headers=list(EXPOSED_HEADERS),
            max_age=MAX_AGE_SECONDS,
        )

    def allowed_origin(self, extracted_origin: str) -> str | None:
        return extracted_origin if extracted_origin in services().browser_origins else None

    def to_dict(self, origin: str | None) -> dict[str, str]:
        headers = super().to_dict(origin)
        # The answer names the origin that asked, so a cache must keep one per origin.
        return {**headers, "Vary": "Origin"} if headers else headers
