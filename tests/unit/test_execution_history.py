"""An execution's history as a timeline of states, from histories moto's engine recorded for local jobs.

The fixtures under tests/fixtures/executions were recorded from local runs (moto
5.2.5), with the states' inputs and outputs and the tasks' parameters left out and
each stack trace cut to its last two entries. In ``clip_retried`` the clip handler
was made to raise SourceUnreachableError once; the engine's retry is its own.
"""

import json
import re
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from clipline import cli
from clipline.workflow.history import StateOutcome, build_timeline, render_json, render_text

FIXTURES = Path(__file__).parents[1] / "fixtures" / "executions"


def recorded(name):
    """The execution's description and its history events, as the archive keeps them."""
    fixture = json.loads((FIXTURES / f"{name}.json").read_text())
    return fixture["execution"], fixture["events"]


def timeline_of(name):
    execution, events = recorded(name)
    return build_timeline(events, execution)


def states(timeline):
    return [(visit.name, visit.type, visit.outcome, visit.retries) for visit in timeline.states]


def table_rows(text):
    """The table's rows under its header line, as lists of cells split on runs of two or more spaces."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("state "))
    return [re.split(r"  +", line, maxsplit=5) for line in lines[header + 1 :]]


def test_a_succeeded_job_lists_each_state_once_in_order():
    # Given the history of a clip job that went straight through
    # When it is read as a timeline
    timeline = timeline_of("succeeded")
    # Then each state it entered is there once, in order, succeeded at the first attempt
    assert states(timeline) == [
        ("ProbeSource", "Task", StateOutcome.SUCCEEDED, 0),
        ("ClipSource", "Task", StateOutcome.SUCCEEDED, 0),
        ("WantsTranscript", "Choice", StateOutcome.SUCCEEDED, 0),
        ("FinalizeJob", "Task", StateOutcome.SUCCEEDED, 0),
    ]
    # And each state's duration runs from its entry to its exit
    probe = timeline.states[0]
    assert probe.duration_seconds == pytest.approx(0.175 - 0.009)
    assert all(visit.duration_seconds is not None and not visit.failed_attempts for visit in timeline.states)
    assert [visit.next_state for visit in timeline.states] == ["ClipSource", "WantsTranscript", "FinalizeJob", None]
    # And the execution's summary comes from its description
    summary = timeline.execution
    assert (summary.name, summary.status, summary.error) == ("718a23160ac94c94bf7cb19fcf164a80", "SUCCEEDED", None)
    assert summary.duration_seconds == pytest.approx(0.321)


def test_a_retried_clip_counts_the_retry_and_keeps_the_error_of_the_failed_attempt():
    # Given a job whose ClipSource failed once with a transient error, then succeeded on the retry
    timeline = timeline_of("clip_retried")
    # Then ClipSource shows one retry, the failed attempt's error with its public code, and success
    clip = timeline.states[1]
    assert (clip.name, clip.outcome, clip.retries, clip.error) == ("ClipSource", StateOutcome.SUCCEEDED, 1, None)
    [attempt] = clip.failed_attempts
    assert (attempt.error, attempt.code, attempt.message) == (
        "SourceUnreachableError",
        "SOURCE_UNREACHABLE",
        "the source host did not answer (simulated)",
    )
    # And its duration covers both attempts and the wait between them
    assert clip.duration_seconds == pytest.approx(59.308 - 58.578)
    # And the table says it was retried, and why
    [row] = [row for row in table_rows(render_text(timeline)) if row[0] == "ClipSource"]
    assert row[4:] == [
        "1",
        "succeeded (retried after SourceUnreachableError [SOURCE_UNREACHABLE]: the source host did not answer (simulated))",
    ]


def test_a_failed_job_shows_the_caught_error_and_where_the_catch_went():
    # Given a job whose source answered 404: ProbeSource failed, the Catch went to FailJob, then the Fail state
    timeline = timeline_of("failed")
    assert states(timeline) == [
        ("ProbeSource", "Task", StateOutcome.CAUGHT, 0),
        ("FailJob", "Task", StateOutcome.SUCCEEDED, 0),
        ("JobFailed", "Fail", StateOutcome.FAILED, 0),
    ]
    # Then the caught state names the error, its code and the state the Catch sent the execution to
    probe = timeline.states[0]
    assert (probe.error.error, probe.error.code, probe.next_state) == ("SourceNotFoundError", "SOURCE_NOT_FOUND", "FailJob")
    assert probe.error.message.startswith("the source server answered HTTP 404 for http://127.0.0.1:")
    # And the Fail state lasts until the execution stopped, and carries the execution's error
    fail = timeline.states[2]
    assert fail.duration_seconds == pytest.approx(0.749 - 0.748)
    assert fail.error == timeline.execution.error
    assert (timeline.execution.status, timeline.execution.error.code) == ("FAILED", "SOURCE_NOT_FOUND")


def test_the_stack_trace_of_a_lambda_error_is_never_shown():
    # Given a failed job whose recorded causes carry the Lambda's stack trace
    execution, events = recorded("failed")
    assert "stackTrace" in execution["cause"] and "probe.py" in execution["cause"]
    # When it is rendered both ways
    timeline = build_timeline(events, execution)
    # Then neither shows the trace, only the error type and message
    for rendered in (render_text(timeline), render_json(timeline)):
        assert "probe.py" not in rendered and "stackTrace" not in rendered and "File " not in rendered
        assert "the source server answered HTTP 404" in rendered


def test_a_transcription_is_one_attempt_although_the_queue_task_records_more_events():
    # Given a transcribed job: its Transcribe task records TaskScheduled, TaskStarted, TaskSubmitted and TaskSucceeded
    execution, events = recorded("transcribed")
    entered = next(i for i, e in enumerate(events) if e.get("stateEnteredEventDetails", {}).get("name") == "Transcribe")
    assert [e["type"] for e in events[entered + 1 : entered + 5]] == [
        "TaskScheduled", "TaskStarted", "TaskSubmitted", "TaskSucceeded",
    ]  # fmt: skip
    # Then Transcribe is one succeeded state, not retried, lasting until the worker's SendTaskSuccess
    timeline = build_timeline(events, execution)
    transcribe = next(visit for visit in timeline.states if visit.name == "Transcribe")
    assert (transcribe.outcome, transcribe.retries) == (StateOutcome.SUCCEEDED, 0)
    assert transcribe.duration_seconds == pytest.approx(1.035 - 0.237)


def test_a_global_timeout_is_read_from_the_description_as_moto_records_no_timeout_event():
    # Given an execution that hit the global timeout while probing a stalled source. moto described it TIMED_OUT
    # without a stop date, recorded no ExecutionTimedOut, and the probe that was running appended ExecutionFailed.
    execution, events = recorded("timed_out")
    assert execution["status"] == "TIMED_OUT" and "stopDate" not in execution
    assert events[-1]["type"] == "ExecutionFailed"
    # When it is read
    timeline = build_timeline(events, execution)
    # Then the execution timed out, with the code a timed-out job gets, and no stop time is made up
    summary = timeline.execution
    assert (summary.status, summary.error.error, summary.error.code) == ("TIMED_OUT", "States.Timeout", "JOB_TIMEOUT")
    assert summary.stopped_at is None and summary.duration_seconds is None
    # And the state it was in timed out, with both attempts' errors kept
    [probe] = timeline.states
    assert (probe.outcome, probe.retries, probe.duration_seconds) == (StateOutcome.TIMED_OUT, 1, None)
    assert [attempt.code for attempt in probe.failed_attempts] == ["SOURCE_UNREACHABLE", "SOURCE_UNREACHABLE"]
    assert "stop time not recorded" in render_text(timeline).splitlines()[0]


def test_a_running_execution_has_its_current_state_running_without_a_duration():
    # Given the first half of a history, with no description, as if read while the clip runs
    _, events = recorded("succeeded")
    running = events[: next(i for i, e in enumerate(events) if e["type"] == "TaskStarted" and i > 5) + 1]
    # When it is read
    timeline = build_timeline(running)
    # Then the execution is running, and so is the state it is in
    assert timeline.execution.status == "RUNNING" and timeline.execution.stopped_at is None
    assert states(timeline) == [
        ("ProbeSource", "Task", StateOutcome.SUCCEEDED, 0),
        ("ClipSource", "Task", StateOutcome.RUNNING, 0),
    ]
    assert timeline.states[1].duration_seconds is None
    assert render_text(timeline).splitlines()[0].endswith("still running")


def test_without_a_description_the_status_comes_from_the_last_event():
    # Given a failed job's history alone
    _, events = recorded("failed")
    # Then its status and error come from ExecutionFailed
    summary = build_timeline(events).execution
    assert (summary.status, summary.error.code) == ("FAILED", "SOURCE_NOT_FOUND")
    assert summary.started_at is not None and summary.duration_seconds == pytest.approx(0.749 - 0.653)


def test_an_uncaught_task_timeout_ends_the_state_as_timed_out():
    # Given a task that timed out with no Catch for it, as Step Functions records it
    events = [
        {"id": 1, "type": "ExecutionStarted", "timestamp": "2026-01-01T00:00:00+00:00", "executionStartedEventDetails": {}},
        {"id": 2, "type": "TaskStateEntered", "timestamp": "2026-01-01T00:00:00+00:00",
         "stateEnteredEventDetails": {"name": "Slow"}},
        {"id": 3, "type": "TaskScheduled", "timestamp": "2026-01-01T00:00:00+00:00", "taskScheduledEventDetails": {}},
        {"id": 4, "type": "TaskTimedOut", "timestamp": "2026-01-01T00:01:00+00:00",
         "taskTimedOutEventDetails": {"error": "States.Timeout"}},
        {"id": 5, "type": "ExecutionFailed", "timestamp": "2026-01-01T00:01:00+00:00",
         "executionFailedEventDetails": {"error": "States.Timeout"}},
    ]  # fmt: skip
    # Then the state timed out after a minute, with the code of a task timeout
    [slow] = build_timeline(events).states
    assert (slow.outcome, slow.duration_seconds, slow.error.code) == (StateOutcome.TIMED_OUT, 60, "CLIP_TIMEOUT")
    assert table_rows(render_text(build_timeline(events)))[0][5] == "timed out (States.Timeout [CLIP_TIMEOUT])"


def test_the_text_is_a_fixed_width_table_under_a_summary():
    # When a failed job's timeline is rendered as text
    text = render_text(timeline_of("failed"))
    lines = text.splitlines()
    # Then a summary line and the error come first
    assert lines[0] == (
        "execution e5b5b520acff45e2878cd58cf00e4f76  FAILED  started 2026-11-25T13:17:59.625Z  "
        "stopped 2026-11-25T13:17:59.749Z  took 0.12 s"
    )
    assert lines[1].startswith("error SourceNotFoundError [SOURCE_NOT_FOUND]: the source server answered HTTP 404")
    # And every column starts at the same place on every row
    table = lines[2:]
    for column in ("type", "started", "duration", "retries", "outcome"):
        offset = table[0].index(column)
        assert all(line[offset - 2 : offset] == "  " and line[offset] != " " for line in table), column
    assert table[0] == "state        type  started       duration  retries  outcome"
    assert table[1].startswith(
        "ProbeSource  Task  13:17:59.653  0.08 s    0        caught -> FailJob (SourceNotFoundError [SOURCE_NOT_FOUND]: "
        "the source server answered HTTP 404 for http://127.0.0.1:"
    )
    assert table[3] == (
        "JobFailed    Fail  13:17:59.748  0.00 s    0        failed (SourceNotFoundError [SOURCE_NOT_FOUND]: "
        "the source server answered HTTP 404 for http://127.0.0.1:44305/missing.mp4)"
    )


def test_the_json_has_camel_case_keys():
    # When a retried job's timeline is rendered as JSON
    rendered = json.loads(render_json(timeline_of("clip_retried")))
    # Then its keys are camelCase and its times ISO-8601 UTC
    assert set(rendered) == {"execution", "states"}
    assert set(rendered["execution"]) == {
        "name", "executionArn", "status", "startedAt", "stoppedAt", "durationSeconds", "error",
    }  # fmt: skip
    clip = rendered["states"][1]
    assert set(clip) == {
        "name", "type", "startedAt", "durationSeconds", "retries", "failedAttempts", "outcome", "error", "nextState",
    }  # fmt: skip
    assert clip["startedAt"] == "2026-11-25T13:17:58.578000Z"
    assert (clip["retries"], clip["outcome"], clip["failedAttempts"][0]["code"]) == (1, "succeeded", "SOURCE_UNREACHABLE")
    assert set(clip["failedAttempts"][0]) == {"error", "code", "errorType", "message"}


# `clipline executions show --aws`, against moto's Step Functions in-process


@pytest.fixture
def state_machine():
    with mock_aws():
        client = boto3.client("stepfunctions", region_name="eu-west-1")
        definition = {"StartAt": "Only", "States": {"Only": {"Type": "Pass", "End": True}}}
        yield client.create_state_machine(
            name="clipline-pipeline", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/r"
        )["stateMachineArn"], client


def test_aws_reads_the_execution_named_after_the_job_in_the_state_machines_region(state_machine, capsys):
    # Given an execution named after a job, in another region than the default one
    arn, client = state_machine
    client.start_execution(stateMachineArn=arn, name="job-1")
    # When a user shows it from AWS
    code = cli.main(["executions", "show", "job-1", "--aws", "--state-machine-arn", arn])
    # Then it is found from the state machine's ARN alone
    assert code == 0
    assert capsys.readouterr().out.startswith("execution job-1  ")


def test_aws_says_in_one_line_when_the_execution_does_not_exist(state_machine, capsys):
    # Given a state machine with no execution for the job
    arn, _ = state_machine
    # When a user shows it, then one line says so and the exit code is 1
    assert cli.main(["executions", "show", "no-such-job", "--aws", "--state-machine-arn", arn]) == 1
    assert capsys.readouterr().err == f"no execution no-such-job on {arn}\n"


def test_aws_says_in_one_line_when_there_are_no_credentials(monkeypatch, tmp_path, capsys):
    # Given no credentials anywhere the default chain looks, and no instance metadata to ask
    for name in (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # And no default session an earlier test in this process made: it keeps the credentials it resolved
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    arn = "arn:aws:states:eu-west-1:123456789012:stateMachine:clipline-pipeline"
    # When a user asks AWS for an execution
    assert cli.main(["executions", "show", "job-1", "--aws", "--state-machine-arn", arn]) == 1
    # Then one line says what is missing
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("no AWS credentials")


@pytest.mark.parametrize(
    ("arn", "message"),
    [("", "no state machine"), ("arn:aws:lambda:eu-west-1:123456789012:function:f", "not a state machine ARN")],
)
def test_aws_needs_a_state_machine_arn(monkeypatch, capsys, arn, message):
    # Given no state machine ARN, or another resource's, in the settings
    monkeypatch.setenv("CLIPLINE_STATE_MACHINE_ARN", arn)
    # When a user asks AWS, then one line says what is wrong
    assert cli.main(["executions", "show", "job-1", "--aws"]) == 1
    assert capsys.readouterr().err.startswith(message)


def test_a_state_machine_arn_needs_aws():
    # When a state machine is named without --aws, then it is a usage error
    with pytest.raises(SystemExit) as refused:
        cli.main(["executions", "show", "job-1", "--state-machine-arn", "arn:aws:states:x:1:stateMachine:y"])
    assert refused.value.code == 2
