"""The OpenAPI document of the HTTP API, generated from the resolver's own routes and models.

``docs/openapi.json`` is this document: ``python -m clipline.api.openapi docs/openapi.json``
writes it, a test fails when the committed file is stale, and local mode serves it
at ``GET /openapi.json``. ``api_gateway_model`` turns a request body's schema into
the JSON Schema draft 4 that API Gateway's request validation reads, so the
deployed API checks bodies against the same models.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server

from .correlation import CORRELATION_HEADER
from .resolver import app
from .schemas import CreateJobBody

TITLE = "clipline"
DESCRIPTION = (
    "Cut clips from media at a URL, transcribe them, burn subtitles in, and fetch every artifact "
    "through expiring signed links. Every route needs an API key in `x-api-key`; every error is "
    "`{\"error\": {\"code\", \"message\", \"correlationId\"}}` with a stable code."
)
API_KEY_SCHEME = "apiKey"
SERVERS = [
    Server(url="http://127.0.0.1:8080", description="local mode (`clipline serve`)"),
    Server(
        url="https://{restApiId}.execute-api.{region}.amazonaws.com/{stage}",
        description="a deployed stack (its ApiUrl output)",
        variables={
            "restApiId": {"default": "abcdef1234", "description": "the REST API's id"},
            "region": {"default": "eu-west-1"},
            "stage": {"default": "prod"},
        },
    ),
]
# Sent by the caller and echoed on every response; read by a middleware rather than
# declared per route, because an unusable value is replaced, not refused.
CORRELATION_PARAMETER = {
    "name": CORRELATION_HEADER,
    "in": "header",
    "required": False,
    "description": "Your id for this request, 1-128 characters of A-Za-z0-9._:-; "
    "anything else is replaced by the request's own id. Echoed on the response and logged.",
    "schema": {"type": "string"},
}


def _api_version() -> str:
    try:
        return version("clipline")
    except PackageNotFoundError:  # the Lambda asset carries the code without its metadata
        return "0"


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    document = json.loads(
        app.get_openapi_json_schema(
            title=TITLE,
            version=_api_version(),
            description=DESCRIPTION,
            servers=SERVERS,
            security_schemes={API_KEY_SCHEME: APIKey(name="x-api-key", in_=APIKeyIn.header)},
            security=[{API_KEY_SCHEME: []}],
        )
    )
    for operations in document["paths"].values():
        for operation in operations.values():
            operation.setdefault("parameters", []).append(CORRELATION_PARAMETER)
            # Powertools gives every response the route's return type as its body; a 204 has none.
            operation["responses"].get("204", {}).pop("content", None)
            # Powertools documents a 422 for its own validation errors; ours are 400 VALIDATION_FAILED.
            if "HTTPValidationError" not in json.dumps(operation["responses"].get("422", {})):
                continue
            del operation["responses"]["422"]
    for unused in ("HTTPValidationError", "ResponseValidationError", "ValidationError"):
        document["components"]["schemas"].pop(unused, None)
    return document


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def api_gateway_model(model: type = CreateJobBody) -> dict[str, Any]:
    """``model``'s JSON Schema as API Gateway request validation reads it: draft 4, references inlined."""
    schema = model.model_json_schema(by_alias=True)
    definitions = schema.pop("$defs", {})
    converted = _draft4(schema, definitions)
    return {"$schema": "http://json-schema.org/draft-04/schema#", **converted}


def _draft4(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_draft4(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        return _draft4({**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}, definitions)
    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("examples", "default"):
            # Values, not schemas, and neither validates anything; API Gateway would only carry them along.
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # Draft 4 spells "> 3" as a bound with a flag. Pydantic emits one bound per side.
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            if bound in node:
                raise ValueError(f"both {bound} and {key} are set; draft 4 cannot say both")
            converted[bound] = value
            converted[key] = True
        elif key == "const":
            converted["enum"] = [value]
        elif key == "properties":
            converted[key] = {name: _draft4(child, definitions) for name, child in value.items()}
        else:
            converted[key] = _draft4(value, definitions)
    return converted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the HTTP API's OpenAPI document.")
    parser.add_argument("path", type=Path, help="the file to write, e.g. docs/openapi.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs instead of writing it")
    args = parser.parse_args(argv)
    wanted = render(openapi_document())
    if args.check:
        if not args.path.is_file() or args.path.read_text(encoding="utf-8") != wanted:
            print(f"{args.path} is stale: run python -m clipline.api.openapi {args.path}", file=sys.stderr)
            return 1
        return 0
    args.path.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
