"""The deployed REST API's front door: each request goes to its method's Lambda proxy integration.

Routes, their methods, whether they need an API key and which function they
integrate with are read from the simulated API Gateway, as deployed. API keys are
the account's own (``apigateway get-api-keys``). Answers that API Gateway makes
itself use its default bodies: the stack's gateway responses, usage plans and
WAF are not simulated (the account lists them).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from ..local.proxy_events import ProxyRequest, ProxyRequestHandler, proxy_response_parts, rest_proxy_event
from .lambda_host import InvocationResult

MAX_BODY_BYTES = 10 * 1024 * 1024
_INTEGRATION_FUNCTION = re.compile(r"/functions/(arn:[^/]+)/invocations$")


@dataclass(frozen=True)
class Route:
    resource: str
    method: str
    pattern: re.Pattern[str]
    function_arn: str
    api_key_required: bool


def _pattern(resource: str) -> re.Pattern[str]:
    escaped = re.escape(resource)
    escaped = re.sub(r"\\\{(\w+)\\\+\\\}", r"(?P<\1>.+)", escaped)
    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", escaped) + "$")


def deployed_routes(apigateway: Any, rest_api_id: str) -> list[Route]:
    """Every method of the API with a Lambda proxy integration."""
    routes = []
    pages = apigateway.get_paginator("get_resources").paginate(restApiId=rest_api_id, embed=["methods"])
    for resource in (item for page in pages for item in page["items"]):
        for method, description in (resource.get("resourceMethods") or {}).items():
            integration = description.get("methodIntegration") or {}
            match = _INTEGRATION_FUNCTION.search(integration.get("uri", ""))
            if integration.get("type") != "AWS_PROXY" or not match:
                continue
            routes.append(
                Route(
                    resource=resource["path"],
                    method=method,
                    pattern=_pattern(resource["path"]),
                    function_arn=match.group(1),
                    api_key_required=bool(description.get("apiKeyRequired")),
                )
            )
    return routes


class SimulatedApiGateway(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        host: str,
        port: int,
        *,
        routes: list[Route],
        api_keys: Callable[[], dict[str, str]],
        invoke: Callable[[str, bytes], InvocationResult],
        account_id: str,
        rest_api_id: str,
        stage: str,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.routes = routes
        self.api_keys = api_keys
        self.invoke = invoke
        self.account_id = account_id
        self.rest_api_id = rest_api_id
        self.stage = stage

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def serve_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="api-gateway", daemon=True)
        thread.start()
        return thread


class _Handler(ProxyRequestHandler):
    server: SimulatedApiGateway
    server_version = "clipline-aws-sim"

    def _dispatch(self) -> None:
        request_id = str(uuid.uuid4())
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            return self._answer(413, {"message": "Request Too Long"}, request_id)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        path = unquote(url.path)
        route, parameters = self._match(path)
        if route is None:
            # What API Gateway answers for a path or method the API does not have.
            return self._answer(403, {"message": "Missing Authentication Token"}, request_id)
        api_key = self.headers.get("x-api-key")
        keys = self.server.api_keys()
        if route.api_key_required and api_key not in keys:
            return self._answer(403, {"message": "Forbidden"}, request_id)
        request = ProxyRequest(
            method=self.command,
            resource=route.resource,
            path=path,
            path_parameters=parameters,
            query=url.query,
            headers=self.headers,
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
            request_id=request_id,
        )
        event = rest_proxy_event(
            request,
            stage=self.server.stage,
            account_id=self.server.account_id,
            api_id=self.server.rest_api_id,
            api_key=api_key,
            api_key_id=keys.get(api_key or ""),
        )
        result = self.server.invoke(route.function_arn, json.dumps(event).encode())
        if result.failed:
            return self._answer(502, {"message": "Internal server error"}, request_id)
        try:
            status, headers, payload = proxy_response_parts(json.loads(result.payload))
        except (ValueError, TypeError, AttributeError):
            return self._answer(502, {"message": "Internal server error"}, request_id)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _match(self, path: str) -> tuple[Route | None, dict[str, str]]:
        for route in self.server.routes:
            match = route.pattern.match(path)
            if match and route.method in (self.command, "ANY"):
                return route, match.groupdict()
        return None, {}

    def _answer(self, status: int, body: dict, request_id: str) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("x-amzn-ErrorType", "ForbiddenException" if status == 403 else "InternalServerErrorException")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
