"""Hosts the pipeline on moto's Step Functions engine, on loopback, with Lambda tasks run in-process.

The engine executes ``pipeline.asl.json`` as Step Functions would (Retry, Catch,
timeouts, history). Its ``lambda:invoke`` calls land in moto's Lambda backend,
whose ``invoke`` we route to our handler modules: the one place a function name
becomes a Python call. Histories live in this process's memory only, so each
ended execution's history is copied to the SQLite archive.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from typing import Any

import boto3
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.model_instances import reset_model_data
from moto.core.responses import EmptyResult
from moto.moto_api._internal.models import moto_api_backend
from moto.server import ThreadedMotoServer
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.backend.execution import Execution as ParserExecution
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
from moto.stepfunctions.parser.utils import TMP_THREADS as MOTO_ENGINE_THREADS
from moto.stepfunctions.responses import StepFunctionResponse, get_backend

from ..adapters.local.sqlite_execution_archive import SqliteExecutionArchive
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
_ENDED = ("SUCCEEDED", *_ENDED_UNFINISHED)
_WATCH_INTERVAL_SECONDS = 1.0
# moto never lets go of an execution. Once one has ended and its history is in the archive it
# stays this long (for anyone still reading it from the engine), then goes, or a long-running
# serve would keep every execution it ever ran in memory and list them all every second.
KEEP_ARCHIVED_EXECUTIONS_SECONDS = 60.0

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


def _release_what_moto_keeps_for_ever() -> None:
    """Let go of what moto keeps for the life of the process and local mode never reads.

    - Its Step Functions engine runs each execution, state and task on a thread of its own,
      and appends each thread to a module-level list that nothing empties. A finished
      thread kept there holds its events, locks and closures.
    - Every model object it makes is also listed for its dashboard: the snapshot of the
      state machine each execution takes, each SQS message. So they outlive their
      execution or message. moto's own reset clears those lists in the same way.

    Without this, a long serve grew by about 19 KiB a job.
    """
    # Removed one by one, after the finished ones are picked out: execution threads append to the list meanwhile.
    finished = [thread for thread in MOTO_ENGINE_THREADS if not thread.is_alive()]
    for thread in finished:
        MOTO_ENGINE_THREADS.remove(thread)
    reset_model_data()


def send_task_failure_with_cause(self: StepFunctionResponse) -> EmptyResult:
    """SendTaskFailure as AWS does it: moto 5.2's response layer drops ``cause``, which carries our message."""
    self.stepfunction_backend.send_task_failure(
        self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
    )
    return EmptyResult()


_moto_set_error = Environment.set_error
_moto_set_stop = Environment.set_stop


def keep_a_stopped_execution_stopped(self: Environment, error: Any) -> None:
    """An execution stopped while a task ran stays ABORTED, as in AWS.

    moto 5.2 records the late failure of a task that was in flight when StopExecution
    came (its state machine cannot cut the invocation short), and so ends the
    execution FAILED; Step Functions drops that result.
    """
    with self._state_mutex:
        if isinstance(self._program_state, ProgramStopped):
            return
        _moto_set_error(self, error)


def stop_waiting_for_task_tokens(self: Environment, stop_date: Any, cause: str | None, error: str | None) -> None:
    """StopExecution ends a task that waits for its token at once, as in AWS.

    moto 5.2 leaves the wait running until the next heartbeat or the heartbeat timeout,
    so the execution would show as aborted only minutes later. Its callback endpoints
    are the execution's own, so waking them wakes no other execution.
    """
    _moto_set_stop(self, stop_date=stop_date, cause=cause, error=error)
    for endpoint in list(self.callback_pool_manager._pool.values()):
        endpoint.interrupt_all()


_moto_stop_execution = ParserExecution.stop


def abort_at_once(self: ParserExecution, stop_date: Any, error: str | None, cause: str | None) -> None:
    """StopExecution answers with the execution ABORTED, as in AWS.

    moto 5.2 marks it so only once its program has wound down, which waits for the
    task invocation in flight; until then DescribeExecution says RUNNING.
    """
    _moto_stop_execution(self, stop_date, error, cause)
    if self.exec_status is ExecutionStatus.RUNNING:
        self.exec_status = ExecutionStatus.ABORTED
        self.stop_date = stop_date


def close_engine_gaps() -> None:
    """Patch moto's Step Functions, in this process, where it does less than AWS; shared with the simulated account."""
    StepFunctionResponse.send_task_failure = send_task_failure_with_cause  # type: ignore[method-assign]
    Environment.set_error = keep_a_stopped_execution_stopped  # type: ignore[method-assign]
    Environment.set_stop = stop_waiting_for_task_tokens  # type: ignore[method-assign]
    ParserExecution.stop = abort_at_once  # type: ignore[method-assign]


class EngineHost:
    """moto's server on 127.0.0.1 with the pipeline state machine created in it.

    With an ``archive``, every execution's history is saved to it once the execution
    ends, and ``stop`` saves those that ended since the last look before the server goes.
    """

    def __init__(self, settings: Settings, archive: SqliteExecutionArchive | None = None) -> None:
        self._settings = settings
        self._archive = archive
        self._server: ThreadedMotoServer | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        # Ended executions already handed on; only the watcher thread, then stop() after joining it, touch it.
        self._handled: set[str] = set()
        # Archived executions still in moto's memory, and when they were archived (monotonic clock).
        self._archived_at: dict[str, float] = {}
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
        close_engine_gaps()

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        # The engine makes its own service calls (lambda:invoke) to the port moto reads from here.
        os.environ["MOTO_PORT"] = str(port)
        self.endpoint_url = f"http://{host}:{port}"
        self.asr_queue_url = self._create_asr_queue()
        # Made once: scrapes read the queue from gateway threads, and boto3 builds clients unsafely across threads.
        self._queue_client = self.client("sqs")

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

    def asr_queue_depth(self) -> float:
        """Messages waiting in the ASR queue: SQS's ApproximateNumberOfMessages, as CloudWatch reports it.

        NaN when the engine does not answer, so a scrape still shows every other metric.
        """
        try:
            attributes = self._queue_client.get_queue_attributes(
                QueueUrl=self.asr_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
        except Exception:  # noqa: BLE001 - the engine is stopping or hiccuped; the next scrape asks again
            return math.nan
        return float(attributes["ApproximateNumberOfMessages"])

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=lambda_runtime.LOCAL_REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def _watch_ended_executions(self) -> None:
        """Local stand-in for the EventBridge rule on execution status changes, and the archivist.

        An execution that times out globally never reaches FailJob; this hands its
        end to the same handler the EventBridge rule targets in AWS.
        """
        sfn = self.client("stepfunctions")
        while not self._stop.wait(_WATCH_INTERVAL_SECONDS):
            self._handle_ended_executions(sfn, report=True)

    def _handle_ended_executions(self, sfn: Any, report: bool) -> None:
        """Each execution that ended since the last look: its end reported (when ``report``), its history archived."""
        try:
            pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=self.state_machine_arn)
            ended = [item for page in pages for item in page["executions"] if item["status"] in _ENDED]
        except Exception:  # noqa: BLE001 - the engine is going away; try again next round
            return
        for execution in ended:
            if execution["executionArn"] in self._handled:
                continue
            try:
                description = sfn.describe_execution(executionArn=execution["executionArn"])
            except Exception:  # noqa: BLE001 - the engine hiccuped or is stopping; the next round tries again
                continue
            self._handled.add(execution["executionArn"])
            if report and description["status"] in _ENDED_UNFINISHED:
                self._report_end(execution, description)
            if self._archive is not None and self._archive_history(self._archive, sfn, execution, description):
                self._archived_at[execution["executionArn"]] = time.monotonic()
        self._forget_archived_executions(time.monotonic() - KEEP_ARCHIVED_EXECUTIONS_SECONDS)
        _release_what_moto_keeps_for_ever()

    def _forget_archived_executions(self, archived_before: float) -> None:
        """Drop executions archived before ``archived_before`` from moto's memory; their history stays in the archive."""
        old = {arn for arn, at in self._archived_at.items() if at <= archived_before}
        if not old:
            return
        _, _, _, region, account, *_ = self.state_machine_arn.split(":")
        try:
            executions = get_backend(account, region).describe_state_machine(self.state_machine_arn).executions
        except Exception:  # noqa: BLE001 - the engine is going away; the watcher must outlive it to stop cleanly
            return
        # One by one: moto's request threads append new executions to the same list meanwhile.
        for execution in [execution for execution in list(executions) if execution.execution_arn in old]:
            executions.remove(execution)
        for arn in old:
            del self._archived_at[arn]
            self._handled.discard(arn)

    def _report_end(self, execution: dict, description: dict) -> None:
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

    def _archive_history(self, archive: SqliteExecutionArchive, sfn: Any, execution: dict, description: dict) -> bool:
        """Copy the execution's history into the archive; whether it is there now."""
        try:
            pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution["executionArn"])
            events = [event for page in pages for event in page["events"]]
        except Exception:  # noqa: BLE001 - the engine is stopping; the history went with it
            return False
        described = {key: value for key, value in description.items() if key != "ResponseMetadata"}
        try:
            # The execution is named after its job.
            archive.save(execution["name"], described, events)
        except Exception:  # noqa: BLE001 - a watcher must outlive one bad write
            logger.exception("could not archive an execution's history", extra={"jobId": execution["name"]})
            return False
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            # Its round may be half-way through an archive; the last pass below must not race it.
            self._watcher.join()
            self._watcher = None
        if self._server is not None:
            if self._archive is not None:
                # Only the histories: reporting ends stays the watcher's, as it always was.
                self._handle_ended_executions(self.client("stepfunctions"), report=False)
            self._server.stop()
            self._server = None
