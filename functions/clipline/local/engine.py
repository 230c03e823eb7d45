"""Hosts the pipeline on moto's Step Functions engine, on loopback, with Lambda tasks run in-process.

The engine executes ``pipeline.asl.json`` as Step Functions would (Retry, Catch,
timeouts, history). Its ``lambda:invoke`` calls land in moto's Lambda backend,
whose ``invoke`` we route to our handler modules: the one place a function name
becomes a Python call.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

import boto3
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.responses import EmptyResult
from moto.moto_api._internal.models import moto_api_backend
from moto.server import ThreadedMotoServer
from moto.stepfunctions.responses import StepFunctionResponse

from ..observability import logger
from ..settings import Settings
from ..workflow import ASR_QUEUE_PLACEHOLDER, TASK_HANDLERS, render_definition, timeout_substitutions
from . import lambda_runtime

STATE_MACHINE_NAME = "clipline-pipeline"
ASR_QUEUE_NAME = "clipline-asr"
ASR_DEAD_LETTER_QUEUE_NAME = "clipline-asr-dlq"
# As in AWS: a message that failed this often goes to the dead-letter queue.
ASR_MAX_RECEIVES = 3
EXECUTION_END_HANDLER = "clipline.handlers.record_execution_end"
# Statuses of executions that may have ended without the pipeline finishing its job.
_ENDED_UNFINISHED = ("TIMED_OUT", "ABORTED", "FAILED")
_WATCH_INTERVAL_SECONDS = 1.0

_handlers_by_function: dict[str, str] = {}


def _invoke_in_process(
    backend: LambdaSimpleBackend, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: dict
) -> bytes:
    name = function_name.rsplit(":", 1)[-1]
    handler_module = _handlers_by_function.get(name)
    if handler_module is None:
        response_headers["x-amz-function-error"] = "Unhandled"
        return lambda_runtime.encode({"errorType": "ResourceNotFoundException", "errorMessage": f"no function {name}"})
    event = json.loads(body) if body else {}
    try:
        return lambda_runtime.encode(lambda_runtime.invoke(handler_module, event))
    except Exception as error:  # noqa: BLE001 - reported to the engine exactly as Lambda reports it
        response_headers["x-amz-function-error"] = "Unhandled"
        return lambda_runtime.encode(lambda_runtime.error_payload(error))


def _send_task_failure_with_cause(self: StepFunctionResponse) -> EmptyResult:
    """SendTaskFailure as AWS does it: moto 5.2's response layer drops ``cause``, which carries our message."""
    self.stepfunction_backend.send_task_failure(
        self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
    )
    return EmptyResult()


class EngineHost:
    """moto's server on 127.0.0.1 with the pipeline state machine created in it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._server: ThreadedMotoServer | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.endpoint_url = ""
        self.state_machine_arn = ""
        self.asr_queue_url = ""

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # moto's backends live for the process; each engine starts from an empty one.
        moto_api_backend.reset()
        moto_api_backend.set_config(
            {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
        )
        for handler_module in (*TASK_HANDLERS.values(), EXECUTION_END_HANDLER):
            _handlers_by_function[lambda_runtime.function_name_for(handler_module)] = handler_module
        LambdaSimpleBackend.invoke = _invoke_in_process  # type: ignore[method-assign]
        StepFunctionResponse.send_task_failure = _send_task_failure_with_cause  # type: ignore[method-assign]

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        # The engine makes its own service calls (lambda:invoke) to the port moto reads from here.
        os.environ["MOTO_PORT"] = str(port)
        self.endpoint_url = f"http://{host}:{port}"
        self.asr_queue_url = self._create_asr_queue()

        definition = render_definition(
            {
                **{name: lambda_runtime.function_arn_for(module) for name, module in TASK_HANDLERS.items()},
                **timeout_substitutions(self._settings),
                ASR_QUEUE_PLACEHOLDER: self.asr_queue_url,
            }
        )
        self.state_machine_arn = self.client("stepfunctions").create_state_machine(
            name=STATE_MACHINE_NAME,
            definition=definition,
            roleArn=f"arn:aws:iam::{lambda_runtime.LOCAL_ACCOUNT}:role/clipline-pipeline",
        )["stateMachineArn"]
        self._watcher = threading.Thread(target=self._watch_ended_executions, name="execution-watcher", daemon=True)
        self._watcher.start()

    def _create_asr_queue(self) -> str:
        """The ASR queue and its dead-letter queue, shaped as the CDK stack makes them."""
        sqs = self.client("sqs")
        dead_letters = sqs.create_queue(QueueName=ASR_DEAD_LETTER_QUEUE_NAME)["QueueUrl"]
        dead_letter_arn = sqs.get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return sqs.create_queue(
            QueueName=ASR_QUEUE_NAME,
            Attributes={
                # Longer than a worker may take, so a busy worker's message is not handed to another.
                "VisibilityTimeout": str(self._settings.asr_timeout_seconds + 60),
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": ASR_MAX_RECEIVES}),
            },
        )["QueueUrl"]

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=lambda_runtime.LOCAL_REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def _watch_ended_executions(self) -> None:
        """Local stand-in for the EventBridge rule on execution status changes.

        An execution that times out globally never reaches FailJob; this hands its
        end to the same handler the EventBridge rule targets in AWS.
        """
        sfn = self.client("stepfunctions")
        seen: set[str] = set()
        while not self._stop.wait(_WATCH_INTERVAL_SECONDS):
            for status in _ENDED_UNFINISHED:
                try:
                    executions = sfn.list_executions(stateMachineArn=self.state_machine_arn, statusFilter=status)
                except Exception:  # noqa: BLE001 - the engine is going away; try again next round
                    continue
                for execution in executions.get("executions", []):
                    if execution["executionArn"] in seen:
                        continue
                    seen.add(execution["executionArn"])
                    self._report_end(sfn, execution)

    def _report_end(self, sfn: Any, execution: dict) -> None:
        try:
            description = sfn.describe_execution(executionArn=execution["executionArn"])
        except Exception:  # noqa: BLE001 - the engine is stopping; nothing is left to report to
            return
        event = {
            "source": "aws.states",
            "detail-type": "Step Functions Execution Status Change",
            "detail": {
                "executionArn": execution["executionArn"],
                "name": execution["name"],
                "status": description["status"],
                "error": description.get("error"),
                "cause": description.get("cause"),
            },
        }
        try:
            lambda_runtime.invoke(EXECUTION_END_HANDLER, event)
        except Exception:  # noqa: BLE001 - a watcher must outlive one bad event
            logger.exception("could not record the end of an execution", extra={"jobId": execution["name"]})

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.stop()
            self._server = None
