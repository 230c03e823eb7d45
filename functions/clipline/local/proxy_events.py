"""API Gateway REST proxy events, as API Gateway builds them for a Lambda proxy integration.

Both gateways that stand in for API Gateway build their events here: local mode's
and the simulated AWS account's.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs


@dataclass(frozen=True)
class ProxyRequest:
    """One HTTP request as the gateway received it, with the route it matched."""

    method: str
    resource: str
    path: str
    path_parameters: dict[str, str]
    query: str
    headers: Message
    body: bytes
    source_ip: str
    protocol: str
    request_id: str


def rest_proxy_event(
    request: ProxyRequest, *, stage: str, account_id: str, api_id: str, api_key: str | None, api_key_id: str | None
) -> dict:
    """The ``event`` a Lambda proxy integration receives; a body that is not UTF-8 goes base64-encoded."""
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    query_values = parse_qs(request.query, keep_blank_values=True)
    body = request.body
    try:
        text_body, is_base64 = (body.decode("utf-8"), False) if body else (None, False)
    except UnicodeDecodeError:
        text_body, is_base64 = base64.b64encode(body).decode(), True
    return {
        "resource": request.resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in query_values.items()} or None,
        "multiValueQueryStringParameters": query_values or None,
        "pathParameters": request.path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": request.resource,
            "httpMethod": request.method,
            "path": request.path,
            "stage": stage,
            "requestId": request.request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "accountId": account_id,
            "apiId": api_id,
            "protocol": request.protocol,
            "identity": {
                "sourceIp": request.source_ip,
                "userAgent": request.headers.get("User-Agent"),
                "apiKey": api_key,
                "apiKeyId": api_key_id,
            },
        },
        "body": text_body,
        "isBase64Encoded": is_base64,
    }


def proxy_response_parts(response: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of a proxy integration's answer, as API Gateway sends them on."""
    body = response.get("body") or ""
    payload = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    headers: list[tuple[str, str]] = []
    sent = set()
    for name, values in (response.get("multiValueHeaders") or {}).items():
        for value in values:
            headers.append((name, value))
        sent.add(name.lower())
    for name, value in (response.get("headers") or {}).items():
        if name.lower() not in sent:
            headers.append((name, value))
    return int(response.get("statusCode", 500)), headers, payload


class ProxyRequestHandler(BaseHTTPRequestHandler):
    """Every method goes to ``_dispatch``, which a gateway defines; HTTP/1.1, without the default log line."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        # Requests are logged as structured JSON by the handlers; the default line would be noise.
        pass

    def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's naming
        self._dispatch()

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch()

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        raise NotImplementedError

    def proxy_request(
        self, resource: str, path: str, path_parameters: dict[str, str], query: str, body: bytes, request_id: str
    ) -> ProxyRequest:
        """This request, matched to ``resource``, as a proxy integration sees it."""
        return ProxyRequest(
            method=self.command,
            resource=resource,
            path=path,
            path_parameters=path_parameters,
            query=query,
            headers=self.headers,
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
            request_id=request_id,
        )
