"""An execution's history as a timeline of the states it went through, like the console's table view.

Pure: it reads the events ``get_execution_history`` returns (every page, oldest
first) and the ``describe_execution`` answer, as boto3 gives them or as JSON
(timestamps as datetimes, ISO-8601 text or epoch seconds), and does no I/O.

What it relies on, as AWS and moto 5.2 both record it: a state's events sit
between its ``<Type>StateEntered`` and ``<Type>StateExited``; a Task state
records ``TaskScheduled`` once per attempt (``lambda:invoke`` and
``sqs:sendMessage.waitForTaskToken`` alike; the legacy Lambda ARN resource
records ``LambdaFunctionScheduled``); a retry is another ``TaskScheduled``
after a ``TaskFailed`` or ``TaskTimedOut``, with no exit in between; a caught
error exits the state and enters the Catch's target; a Fail state never exits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from ..domain.errors import JobAbortedError, JobTimeoutError, code_for_error_name

_SCHEDULED = frozenset({"TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"})
_ATTEMPT_SUCCEEDED = frozenset({"TaskSucceeded", "LambdaFunctionSucceeded", "ActivitySucceeded"})
_ATTEMPT_FAILED = frozenset(
    {
        "TaskFailed", "TaskTimedOut", "TaskStartFailed", "TaskSubmitFailed",
        "LambdaFunctionFailed", "LambdaFunctionTimedOut", "LambdaFunctionStartFailed", "LambdaFunctionScheduleFailed",
        "ActivityFailed", "ActivityTimedOut", "ActivityScheduleFailed",
    }
)  # fmt: skip
_EXECUTION_ENDS = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionAborted": "ABORTED",
}
_TIMEOUT_ERRORS = frozenset({"States.Timeout", "States.HeartbeatTimeout"})
# The codes a job gets when its execution ends this way (see record_execution_end), not its task errors' codes.
_EXECUTION_END_CODES = {"TIMED_OUT": JobTimeoutError.code, "ABORTED": JobAbortedError.code}
# Long enough for our messages (a URL and a reason), short enough for one table row.
_MESSAGE_LIMIT = 200


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)


class RecordedError(_Model):
    """An error the state machine recorded, without the stack trace.

    ``error`` is the name Retry and Catch match (our exception's class name, or
    ``States.*``; None when the failure was reported without one), ``code`` the
    public code a job gets for it. ``error_type`` and
    ``message`` come from the cause our Lambdas report (``errorType``,
    ``errorMessage``), or ``message`` is the cause itself when it is plain text.
    """

    error: str | None
    code: str
    error_type: str | None = None
    message: str | None = None


class StateOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    # Failed, and a Catch sent the execution on to ``next_state``.
    CAUGHT = "caught"
    FAILED = "failed"
    TIMED_OUT = "timedOut"
    ABORTED = "aborted"
    RUNNING = "running"


class StateVisit(_Model):
    """One stay of the execution in one state.

    ``duration_seconds`` runs to the state's exit, or to the execution's end for
    a state it ended in; None while it runs (or when the end was not recorded).
    ``retries`` counts the attempts after the first; ``failed_attempts`` has the
    error of every attempt that failed, the last one included. ``error`` is what
    ended the state when it did not succeed; ``next_state`` is where it went.
    """

    name: str
    type: str
    started_at: datetime
    duration_seconds: float | None
    retries: int
    failed_attempts: tuple[RecordedError, ...]
    outcome: StateOutcome
    error: RecordedError | None = None
    next_state: str | None = None


class ExecutionSummary(_Model):
    """The execution as a whole; ``error`` only when it failed, timed out or was aborted with a reason."""

    name: str | None
    execution_arn: str | None
    status: str
    started_at: datetime | None
    stopped_at: datetime | None
    duration_seconds: float | None
    error: RecordedError | None = None


class ExecutionTimeline(_Model):
    execution: ExecutionSummary
    states: tuple[StateVisit, ...]


@dataclass
class _Stay:
    name: str
    type: str
    entered_at: datetime
    exited_at: datetime | None = None
    attempts: int = 0
    failures: list[RecordedError] = field(default_factory=list)
    last_attempt_failed: bool = False


def build_timeline(
    events: Iterable[Mapping[str, Any]], execution: Mapping[str, Any] | None = None
) -> ExecutionTimeline:
    """The timeline of the execution these history ``events`` belong to; ``execution`` is its description.

    The description's status wins over the history's last event: moto marks a
    timed-out execution TIMED_OUT without recording ExecutionTimedOut, and the
    task it was running may still append its own end afterwards.

    Raises:
        KeyError, ValueError: an event lacks its type or timestamp, or a timestamp does not parse.
    """
    execution = execution or {}
    stays: list[_Stay] = []
    started_at: datetime | None = None
    ends: list[Mapping[str, Any]] = []
    for event in events:
        kind, details, at = event["type"], _details(event), _moment(event["timestamp"])
        if kind == "ExecutionStarted":
            started_at = at
        elif kind in _EXECUTION_ENDS:
            ends.append(event)
        elif kind.endswith("StateEntered"):
            stays.append(_Stay(name=details["name"], type=kind.removesuffix("StateEntered"), entered_at=at))
        elif kind.endswith("StateExited"):
            stay = _open_stay(stays, details.get("name"))
            if stay is not None:
                stay.exited_at = at
        elif (stay := _open_stay(stays)) is not None:
            if kind in _SCHEDULED:
                stay.attempts += 1
            elif kind in _ATTEMPT_SUCCEEDED:
                stay.last_attempt_failed = False
            elif kind in _ATTEMPT_FAILED:
                stay.failures.append(_recorded_error(details.get("error"), details.get("cause")))
                stay.last_attempt_failed = True
    summary = _summary(execution, started_at, ends)
    visits = [_visit(stay, following, summary) for stay, following in zip(stays, [*stays[1:], None])]
    return ExecutionTimeline(execution=summary, states=tuple(visits))


def _summary(
    execution: Mapping[str, Any], started_at: datetime | None, ends: Sequence[Mapping[str, Any]]
) -> ExecutionSummary:
    status = execution.get("status") or (_EXECUTION_ENDS[ends[-1]["type"]] if ends else "RUNNING")
    end = next((event for event in reversed(ends) if _EXECUTION_ENDS[event["type"]] == status), None)
    end_details = _details(end) if end else {}
    if execution.get("startDate") is not None:
        started_at = _moment(execution["startDate"])
    if execution.get("stopDate") is not None:
        stopped_at: datetime | None = _moment(execution["stopDate"])
    else:
        stopped_at = _moment(end["timestamp"]) if end else None
    error = execution.get("error") or end_details.get("error")
    cause = execution.get("cause") or end_details.get("cause")
    return ExecutionSummary(
        name=execution.get("name"),
        execution_arn=execution.get("executionArn"),
        status=status,
        started_at=started_at,
        stopped_at=stopped_at,
        duration_seconds=_seconds(started_at, stopped_at),
        error=_execution_error(status, error, cause),
    )


def _visit(stay: _Stay, following: _Stay | None, execution: ExecutionSummary) -> StateVisit:
    last_error = stay.failures[-1] if stay.last_attempt_failed else None
    ended_at, error, next_state = stay.exited_at, None, None
    if stay.exited_at is not None:
        outcome = StateOutcome.CAUGHT if last_error else StateOutcome.SUCCEEDED
        error, next_state = last_error, following.name if following else None
    elif execution.status == "RUNNING":
        outcome = StateOutcome.RUNNING
    else:
        # The execution ended in this state: by a Succeed or Fail state, an uncaught task error, a timeout or an abort.
        ended_at = execution.stopped_at
        uncaught = stay.type != "Fail" and execution.status == "FAILED" and last_error is not None
        error = last_error if uncaught else execution.error
        if execution.status == "SUCCEEDED":
            outcome = StateOutcome.SUCCEEDED
        elif execution.status == "TIMED_OUT" or (error is not None and error.error in _TIMEOUT_ERRORS):
            outcome = StateOutcome.TIMED_OUT
        elif execution.status == "ABORTED":
            outcome = StateOutcome.ABORTED
        else:
            outcome = StateOutcome.FAILED
    return StateVisit(
        name=stay.name,
        type=stay.type,
        started_at=stay.entered_at,
        duration_seconds=_seconds(stay.entered_at, ended_at),
        retries=max(stay.attempts - 1, 0),
        failed_attempts=tuple(stay.failures),
        outcome=outcome,
        error=error,
        next_state=next_state,
    )


def _open_stay(stays: Sequence[_Stay], name: str | None = None) -> _Stay | None:
    """The latest state entered and not yet exited (of that name, when given): where task events belong."""
    for stay in reversed(stays):
        if stay.exited_at is None and (name is None or stay.name == name):
            return stay
    return None


def _details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    # Each event carries at most one "<eventType>EventDetails" member.
    return next((value for key, value in event.items() if key.endswith("EventDetails")), {})


def _moment(value: datetime | str | float) -> datetime:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None


def _execution_error(status: str, error: str | None, cause: str | None) -> RecordedError | None:
    if status == "TIMED_OUT":
        # AWS names it States.Timeout; moto records no error for it at all.
        return _recorded_error(error or "States.Timeout", cause, _EXECUTION_END_CODES[status])
    if status in ("FAILED", "ABORTED") and (error or cause):
        return _recorded_error(error, cause, _EXECUTION_END_CODES.get(status))
    return None


def _recorded_error(error: str | None, cause: str | None, code: str | None = None) -> RecordedError:
    error_type, message = _read_cause(cause)
    name = error or error_type
    code = code or code_for_error_name(name or "")
    return RecordedError(error=name, code=code, error_type=error_type, message=message)


def _read_cause(cause: str | None) -> tuple[str | None, str | None]:
    """``errorType`` and a short ``errorMessage`` from a Lambda error's cause; a plain-text cause is the message.

    The cause's ``stackTrace`` is left out on purpose: it is for the function's logs, not for users.
    """
    if not cause:
        return None, None
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return None, _shorten(cause)
    message = parsed.get("errorMessage")
    return parsed.get("errorType"), _shorten(str(message)) if message is not None else None


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


# Rendering


_OUTCOME_WORDS = {StateOutcome.TIMED_OUT: "timed out"}


def render_text(timeline: ExecutionTimeline) -> str:
    """A summary line, the execution's error if it has one, then a fixed-width table of the states."""
    execution = timeline.execution
    header = f"execution {execution.name or execution.execution_arn or '?'}  {execution.status}"
    if execution.started_at is not None:
        header += f"  started {_timestamp(execution.started_at)}"
    if execution.stopped_at is not None:
        header += f"  stopped {_timestamp(execution.stopped_at)}  took {_duration(execution.duration_seconds)}"
    elif execution.status == "RUNNING":
        header += "  still running"
    else:
        header += "  stop time not recorded"
    lines = [header]
    if execution.error is not None:
        lines.append(f"error {_describe(execution.error)}")
    rows = [("state", "type", "started", "duration", "retries", "outcome")]
    rows += [
        (
            visit.name,
            visit.type,
            visit.started_at.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3],
            _duration(visit.duration_seconds),
            str(visit.retries),
            _outcome(visit),
        )
        for visit in timeline.states
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def render_json(timeline: ExecutionTimeline) -> str:
    """The timeline as JSON with camelCase keys, timestamps in ISO-8601 UTC."""
    return timeline.model_dump_json(by_alias=True, indent=2)


def _outcome(visit: StateVisit) -> str:
    words = _OUTCOME_WORDS.get(visit.outcome, visit.outcome.value)
    if visit.outcome is StateOutcome.SUCCEEDED and visit.failed_attempts:
        distinct = list(dict.fromkeys(_describe(error) for error in visit.failed_attempts))
        return f"{words} (retried after {'; '.join(distinct)})"
    if visit.outcome is StateOutcome.CAUGHT:
        words += f" -> {visit.next_state or '?'}"
    return f"{words} ({_describe(visit.error)})" if visit.error is not None else words


def _describe(error: RecordedError) -> str:
    named = error.error or "unnamed error"
    if error.error_type not in (None, named):
        named += f" ({error.error_type})"
    text = f"{named} [{error.code}]"
    return f"{text}: {error.message}" if error.message else text


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"
