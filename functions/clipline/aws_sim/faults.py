"""Faults injected into the simulated account's endpoint, for testing how the stack copes with AWS failing.

Every AWS call the functions make reaches moto through this WSGI layer. A rule
names a service (from the request's SigV4 credential scope), optionally an HTTP
method and a path prefix, and answers the next ``count`` matching calls with an
error of the service's own form, as a throttled or failing AWS endpoint would.
Rules are set over HTTP at ``/_sim/faults`` (POST a rule, DELETE to clear).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

FAULTS_PATH = "/_sim/faults"
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")


@dataclass
class FaultRule:
    service: str
    count: int
    method: str | None = None
    path_prefix: str = "/"
    status: int = 503
    code: str = "SlowDown"
    message: str = "Please reduce your request rate."
    matched: int = 0


def _service_of(environ: dict) -> str | None:
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    match = _SCOPE.search(authorization) or _SCOPE.search(environ.get("QUERY_STRING", "").replace("%2F", "/"))
    return match.group(1) if match else None


def _error_body(rule: FaultRule) -> tuple[str, bytes]:
    if rule.service == "s3":
        body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{rule.code}</Code><Message>{rule.message}</Message></Error>"
        return "application/xml", body.encode()
    return "application/x-amz-json-1.0", json.dumps({"__type": rule.code, "message": rule.message}).encode()


class FaultInjector:
    """WSGI middleware in front of moto's application."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == FAULTS_PATH:
            return self._control(environ, start_response)
        rule = self._take(environ)
        if rule is None:
            return self._app(environ, start_response)
        content_type, body = _error_body(rule)
        start_response(f"{rule.status} Injected", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    def _take(self, environ: dict) -> FaultRule | None:
        service = _service_of(environ)
        with self._lock:
            for rule in self._rules:
                if rule.matched >= rule.count or rule.service != service:
                    continue
                if rule.method and rule.method != environ.get("REQUEST_METHOD"):
                    continue
                if not environ.get("PATH_INFO", "").startswith(rule.path_prefix):
                    continue
                rule.matched += 1
                return rule
        return None

    def _control(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        with self._lock:
            # Every call answers with the rules as they stand, DELETE with those it removed.
            answer = json.dumps([rule.__dict__ for rule in self._rules]).encode()
            if method == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                self._rules.append(FaultRule(**json.loads(environ["wsgi.input"].read(length) or b"{}")))
                answer = json.dumps([rule.__dict__ for rule in self._rules]).encode()
            elif method == "DELETE":
                self._rules.clear()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))])
        return [answer]
