"""The deployed REST API's front door: each request goes to its method's Lambda proxy integration.

Routes, their methods, whether they need an API key and which function they
integrate with are read from the simulated API Gateway, as deployed. API keys are
the account's own (``apigateway get-api-keys``). moto does not model gateway
responses, so the answers API Gateway makes itself (an unknown route, a missing
key, a failed integration) are shaped by the template's own
``AWS::ApiGateway::GatewayResponse`` definitions, as API Gateway would shape them,
and CORS preflights are answered from the template's own MOCK ``OPTIONS`` methods.
Usage plans and WAF are not simulated (the account lists them).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from ..local.proxy_events import ProxyRequestHandler, proxy_response_parts, rest_proxy_event
from .lambda_host import InvocationResult
from .template import is_mock_method

MAX_BODY_BYTES = 10 * 1024 * 1024
# The x-amzn-ErrorType API Gateway sends with each of its own answers.
_ERROR_TYPES = {
    "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",
    "INVALID_API_KEY": "ForbiddenException",
    "REQUEST_TOO_LARGE": "RequestEntityTooLargeException",
}
_INTEGRATION_FUNCTION = re.compile(r"/functions/(arn:[^/]+)/invocations$")


@dataclass(frozen=True)
class Route:
    resource: str
    method: str
    pattern: re.Pattern[str]
    function_arn: str
    api_key_required: bool


@dataclass(frozen=True)
class GatewayResponse:
    """One of the API's gateway responses: its status (None keeps the type's own), JSON body template and headers."""

    status: int | None
    template: str | None
    headers: dict[str, str] = field(default_factory=dict)

    def render(self, message: str, request_id: str, response_type: str) -> bytes | None:
        if self.template is None:
            return None
        # The few $context variables these templates use; messageString is already a quoted JSON string.
        body = self.template.replace("$context.error.messageString", json.dumps(message))
        body = body.replace("$context.error.message", message).replace("$context.error.responseType", response_type)
        return body.replace("$context.requestId", request_id).encode()


@dataclass(frozen=True)
class Preflight:
    """A MOCK OPTIONS method's answer: API Gateway's to a CORS preflight, without a key or a Lambda."""

    pattern: re.Pattern[str]
    status: int
    headers: dict[str, str]


def gateway_responses(template: dict[str, Any], resolve: Callable[[Any], str]) -> dict[str, GatewayResponse]:
    """The template's gateway responses by response type; ``resolve`` gives a header's deployed value."""
    found = {}
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::ApiGateway::GatewayResponse":
            continue
        properties = resource.get("Properties", {})
        status = properties.get("StatusCode")
        found[properties["ResponseType"]] = GatewayResponse(
            int(status) if status else None,
            (properties.get("ResponseTemplates") or {}).get("application/json"),
            _static_headers(properties.get("ResponseParameters") or {}, "gatewayresponse.header.", resolve),
        )
    return found


def preflights(template: dict[str, Any], resolve: Callable[[Any], str]) -> list[Preflight]:
    """The API's MOCK OPTIONS methods, with the headers their integration responses map."""
    resources = template.get("Resources", {})
    found = []
    for item in resources.values():
        properties = item.get("Properties", {})
        if not is_mock_method(item) or properties.get("HttpMethod") != "OPTIONS":
            continue
        integration = properties["Integration"]
        answer = (integration.get("IntegrationResponses") or [{}])[0]
        found.append(
            Preflight(
                pattern=_pattern(_resource_path(resources, properties["ResourceId"])),
                status=int(answer.get("StatusCode", 200)),
                headers=_static_headers(answer.get("ResponseParameters") or {}, "method.response.header.", resolve),
            )
        )
    return found


def _resource_path(resources: dict[str, Any], resource_id: Any) -> str:
    """The path of the resource ``resource_id`` names: a Ref to an AWS::ApiGateway::Resource, or the API's root."""
    logical_id = resource_id.get("Ref") if isinstance(resource_id, dict) else None
    if logical_id is None:
        return "/"  # Fn::GetAtt [<api>, RootResourceId]
    properties = resources[logical_id]["Properties"]
    return _resource_path(resources, properties["ParentId"]).rstrip("/") + "/" + properties["PathPart"]


def _static_headers(parameters: dict[str, Any], prefix: str, resolve: Callable[[Any], str]) -> dict[str, str]:
    """Headers mapped to static values ('value', in single quotes), as API Gateway writes them."""
    headers = {}
    for name, value in parameters.items():
        text = resolve(value)
        if name.startswith(prefix) and len(text) >= 2 and text[0] == text[-1] == "'":
            headers[name.removeprefix(prefix)] = text[1:-1]
    return headers


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
        responses: dict[str, GatewayResponse] | None = None,
        preflights: list[Preflight] | None = None,
        account_id: str,
        rest_api_id: str,
        stage: str,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.routes = routes
        self.api_keys = api_keys
        self.invoke = invoke
        self.responses = responses or {}
        self.preflights = preflights or []
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
            return self._refuse("REQUEST_TOO_LARGE", 413, "Request Too Long", request_id)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        path = unquote(url.path)
        if self.command == "OPTIONS":
            preflight = next((item for item in self.server.preflights if item.pattern.match(path)), None)
            if preflight is not None:
                return self._answer_preflight(preflight, request_id)
        route, parameters = self._match(path)
        if route is None:
            # What API Gateway answers for a path or method the API does not have.
            return self._refuse("MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token", request_id)
        api_key = self.headers.get("x-api-key")
        keys = self.server.api_keys()
        if route.api_key_required and api_key not in keys:
            return self._refuse("INVALID_API_KEY", 403, "Forbidden", request_id)
        event = rest_proxy_event(
            self.proxy_request(route.resource, path, parameters, url.query, body, request_id),
            stage=self.server.stage,
            account_id=self.server.account_id,
            api_id=self.server.rest_api_id,
            api_key=api_key,
            api_key_id=keys.get(api_key or ""),
        )
        result = self.server.invoke(route.function_arn, json.dumps(event).encode())
        if result.failed:
            return self._refuse("INTEGRATION_FAILURE", 502, "Internal server error", request_id)
        try:
            status, headers, payload = proxy_response_parts(json.loads(result.payload))
        except (ValueError, TypeError, AttributeError):
            return self._refuse("INTEGRATION_FAILURE", 502, "Internal server error", request_id)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _answer_preflight(self, preflight: Preflight, request_id: str) -> None:
        self.send_response(preflight.status)
        for name, value in preflight.headers.items():
            self.send_header(name, value)
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _match(self, path: str) -> tuple[Route | None, dict[str, str]]:
        for route in self.server.routes:
            match = route.pattern.match(path)
            if match and route.method in (self.command, "ANY"):
                return route, match.groupdict()
        return None, {}

    def _refuse(self, response_type: str, status: int, message: str, request_id: str) -> None:
        """API Gateway's own answer of ``response_type``, through the API's gateway response for it if any.

        Like API Gateway, a type the API does not customise falls back to its DEFAULT_4XX or DEFAULT_5XX.
        """
        family = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        response = self.server.responses.get(response_type) or self.server.responses.get(family)
        body = response.render(message, request_id, response_type) if response else None
        status = (response.status if response else None) or status
        payload = body if body is not None else json.dumps({"message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("x-amzn-ErrorType", _ERROR_TYPES.get(response_type, "InternalServerErrorException"))
        for name, value in (response.headers if response else {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
