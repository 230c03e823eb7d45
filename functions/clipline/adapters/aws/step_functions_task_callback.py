"""Task-token callbacks to Step Functions (in AWS, or moto's engine in local mode)."""

from __future__ import annotations

import json
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from ...domain.errors import ServiceUnavailableError, TaskAbandonedError

# What Step Functions answers for a token whose task no longer waits.
_ABANDONED_CODES = {"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"}
# SendTaskFailure limits: error 256 characters, cause 32768.
_MAX_ERROR = 256
_MAX_CAUSE = 32768


class StepFunctionsTaskCallback:
    """TaskCallback on the Step Functions API; the client's standard retries cover throttling."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def _call(self, operation: Callable[..., Any], **arguments: Any) -> None:
        try:
            operation(**arguments)
        except ClientError as error:
            if error.response["Error"]["Code"] in _ABANDONED_CODES:
                raise TaskAbandonedError(f"the state machine no longer waits for this task: {error}") from error
            raise ServiceUnavailableError(f"could not report to the state machine: {error}") from error
        except BotoCoreError as error:
            raise ServiceUnavailableError(f"could not report to the state machine: {error}") from error

    def heartbeat(self, task_token: str) -> None:
        self._call(self._client.send_task_heartbeat, taskToken=task_token)

    def succeed(self, task_token: str, output: dict) -> None:
        self._call(self._client.send_task_success, taskToken=task_token, output=json.dumps(output))

    def fail(self, task_token: str, error_name: str, cause: str) -> None:
        self._call(
            self._client.send_task_failure,
            taskToken=task_token,
            error=error_name[:_MAX_ERROR],
            cause=cause[:_MAX_CAUSE],
        )
