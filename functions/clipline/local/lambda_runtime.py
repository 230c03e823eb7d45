"""Calling a Lambda handler in-process the way the Lambda runtime does."""

from __future__ import annotations

import importlib
import json
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

LOCAL_ACCOUNT = "123456789012"
LOCAL_REGION = "us-east-1"


def function_name_for(handler_module: str) -> str:
    """``clipline.handlers.probe_source`` -> ``clipline-probe-source``: the local function's name."""
    return "clipline-" + handler_module.rsplit(".", 1)[-1].replace("_", "-")


def function_arn_for(handler_module: str) -> str:
    return f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:function:{function_name_for(handler_module)}"


@dataclass
class LocalLambdaContext:
    """The attributes of the Lambda context object that Powertools and our handlers read."""

    function_name: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def load_handler(handler_module: str) -> Callable[[Any, Any], Any]:
    return importlib.import_module(handler_module).lambda_handler


def invoke(handler_module: str, event: Any) -> Any:
    """Run the handler like the Lambda runtime; exceptions propagate to the caller."""
    return load_handler(handler_module)(event, LocalLambdaContext(function_name_for(handler_module)))


def error_payload(error: BaseException) -> dict:
    """What the Lambda Python runtime returns for an unhandled exception; Step Functions reads errorType."""
    return {
        "errorType": type(error).__name__,
        "errorMessage": str(error),
        "stackTrace": traceback.format_exception(error)[-5:],
    }


def encode(payload: Any) -> bytes:
    return json.dumps(payload, default=str).encode()
