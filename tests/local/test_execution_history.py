"""`clipline executions show`: the state machine's history of a local job, archived when its execution ends."""

from __future__ import annotations

import gc
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from clipline import cli

DURATION = re.compile(r"^\d+\.\d\d s$")


def show(capsys, data_dir, job_id, *flags, timeout=10.0):
    """`clipline executions show` once the job's history is archived: the exit code, stdout and stderr."""
    deadline = time.monotonic() + timeout
    while True:
        code = cli.main(["executions", "show", job_id, "--data-dir", str(data_dir), *flags])
        out, err = capsys.readouterr()
        if code == 0 or time.monotonic() > deadline:
            return code, printed_by_the_cli(out), err
        time.sleep(0.2)


def printed_by_the_cli(out):
    # The service runs in this process, and its handlers log and emit metrics to stdout, one JSON object a line.
    return "".join(line for line in out.splitlines(keepends=True) if not re.match(r'^\{".*\}$', line.strip()))


def entered_states(local, job_id):
    """The states the engine entered for the job, from its own history."""
    return [e["stateEnteredEventDetails"]["name"] for e in local.execution_history(job_id) if "stateEnteredEventDetails" in e]


def table(out):
    """The table's rows, each as its cells: state, type, started, duration, retries, outcome."""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("state "))
    return [re.split(r"  +", line, maxsplit=5) for line in lines[header + 1 :]]


def test_a_succeeded_job_shows_each_state_in_order_with_its_duration(local, media_server, capsys):
    # Given a clip job that succeeded
    job = local.client.wait(local.client.create(media_server.url("long.mp4"), 10, 12).body["id"])
    assert job["status"] == "succeeded", job
    # When a user shows its execution
    code, out, err = show(capsys, local.data_dir, job["id"])
    # Then the summary names the execution, its status and how long it took
    assert code == 0, err
    assert re.match(rf"execution {job['id']}  SUCCEEDED  started \S+Z  stopped \S+Z  took \d+\.\d\d s$", out.splitlines()[0])
    # And the table lists every state the engine went through, in order, each timed, none retried
    rows = table(out)
    assert [row[0] for row in rows] == entered_states(local, job["id"])
    assert [row[0] for row in rows[:2]] == ["ProbeSource", "ClipSource"] and rows[-1][0] == "FinalizeJob"
    assert {row[1] for row in rows} == {"Task", "Choice"}
    assert all(DURATION.match(row[3]) and row[4:] == ["0", "succeeded"] for row in rows), rows


def test_a_failed_job_shows_the_error_code_where_it_failed(local, media_server, capsys):
    # Given a job whose source is not on the media server (HTTP 404)
    job = local.client.wait(local.client.create(media_server.url("missing.mp4"), 0, 5).body["id"])
    assert job["error"]["code"] == "SOURCE_NOT_FOUND", job
    # When a user shows its execution
    code, out, err = show(capsys, local.data_dir, job["id"])
    assert code == 0, err
    # Then it failed, with the error's public code and message
    summary, error = out.splitlines()[:2]
    assert f"execution {job['id']}  FAILED  " in summary
    assert error.startswith("error SourceNotFoundError [SOURCE_NOT_FOUND]: the source server answered HTTP 404")
    # And the probe's error was caught and sent to FailJob, which recorded it before the Fail state ended the run
    rows = table(out)
    assert [row[0] for row in rows] == ["ProbeSource", "FailJob", "JobFailed"]
    assert rows[0][5].startswith("caught -> FailJob (SourceNotFoundError [SOURCE_NOT_FOUND]: ")
    assert rows[1][5] == "succeeded"
    assert rows[2][5].startswith("failed (SourceNotFoundError [SOURCE_NOT_FOUND]")
    assert all(DURATION.match(row[3]) for row in rows), rows
    # And the stack trace the Lambda reported stays out of it
    assert "Traceback" not in out and ".py" not in out


def test_json_gives_the_same_timeline_with_camel_case_keys(local, media_server, capsys):
    # Given a job whose range lies past the end of its 3-minute source
    job = local.client.wait(local.client.create(media_server.url("long.mp4"), 170, 185).body["id"])
    # When a user asks for JSON
    code, out, err = show(capsys, local.data_dir, job["id"], "--json")
    assert code == 0, err
    timeline = json.loads(out)
    # Then it carries the same states, outcomes and codes
    assert timeline["execution"]["status"] == "FAILED"
    assert timeline["execution"]["error"]["code"] == "RANGE_OUTSIDE_SOURCE"
    assert [(s["name"], s["outcome"]) for s in timeline["states"]] == [
        ("ProbeSource", "caught"), ("FailJob", "succeeded"), ("JobFailed", "failed"),
    ]  # fmt: skip
    assert timeline["states"][0]["nextState"] == "FailJob"
    assert all(s["durationSeconds"] >= 0 for s in timeline["states"])


def test_a_running_job_is_said_to_be_running_not_missing(local, stalled_source_url, capsys):
    # Given a job whose source stalls, so its execution is still running
    created = local.client.create(stalled_source_url, 0, 5)
    # When a user asks for its history
    code = cli.main(["executions", "show", created.body["id"], "--data-dir", str(local.data_dir)])
    # Then one line says it is still running and that the server running it archives it when it ends
    [line] = capsys.readouterr().err.splitlines()
    assert code == 1
    assert f"job {created.body['id']} is still" in line and "`clipline serve`" in line


def test_an_unknown_job_is_named(local, capsys):
    # When a user asks for a job the data dir never had, then one line names it
    assert cli.main(["executions", "show", "0" * 32, "--data-dir", str(local.data_dir)]) == 1
    assert capsys.readouterr().err == f"no job {'0' * 32} in {local.service.data.root}\n"


# Runs in a process of its own: moto's backends are global to a process, and a second
# service there would reset the ones the module's `local` service runs on.
_RUN_ONE_JOB_AND_STOP = """
import sys
import time
from pathlib import Path

from clipline.adapters.local.sqlite_execution_archive import SqliteExecutionArchive
from clipline.composition import SystemClock, services
from clipline.local import engine
from tests.local.conftest import start_service

engine._WATCH_INTERVAL_SECONDS = 3600
running = start_service(Path(sys.argv[1]))
job = running.client.wait(running.client.create(sys.argv[2], 3, 5).body["id"])
# The job is marked succeeded by its last task, a moment before the execution itself ends.
sfn, execution_arn = running.service.engine.client("stepfunctions"), services().workflow.execution_arn(job["id"])
while sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING":
    time.sleep(0.05)
archive = SqliteExecutionArchive(running.service.data.database, SystemClock().now)
archived_before_stop = archive.find(job["id"]) is not None
running.service.stop()
print(job["id"], archived_before_stop)
"""


def test_stopping_the_server_archives_what_ended_since_the_watcher_last_looked(tmp_path, media_server, capsys):
    # Given a server whose watcher would not look again for an hour, which runs one job and is stopped
    repository = Path(__file__).parents[2]
    run = subprocess.run(
        [sys.executable, "-c", _RUN_ONE_JOB_AND_STOP, str(tmp_path), media_server.url("long.mp4")],
        capture_output=True, text=True, timeout=120, cwd=repository,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    job_id, archived_before_stop = run.stdout.splitlines()[-1].split()
    assert archived_before_stop == "False"
    # When a user shows the job's execution once that process is gone
    code, out, err = show(capsys, tmp_path / "data", job_id, timeout=0)
    # Then its history was archived on the way out
    assert code == 0, err
    assert f"execution {job_id}  SUCCEEDED" in out
    assert table(out)[0][0] == "ProbeSource" and table(out)[-1][0] == "FinalizeJob"


def test_cleanup_removes_a_history_with_its_expired_job(local, media_server, capsys):
    # Given a job kept for 1 s and a job kept for the default retention, both archived
    url = media_server.url("long.mp4")
    reply = local.client.request("POST", "/api/jobs", {"sourceUrl": url, "start": 20, "end": 22, "retentionSeconds": 1})
    short = local.client.wait(reply.body["id"])
    kept = local.client.wait(local.client.create(url, 24, 26).body["id"])
    for job in (short, kept):
        assert show(capsys, local.data_dir, job["id"])[0] == 0
    time.sleep(1.2)
    # When the cleanup runs
    assert cli.main(["cleanup", "--data-dir", str(local.data_dir)]) == 0
    # Then the expired job's history went with it, and the other's stays
    assert f"removed execution history of job {short['id']}" in printed_by_the_cli(capsys.readouterr().out)
    assert cli.main(["executions", "show", short["id"], "--data-dir", str(local.data_dir)]) == 1
    assert capsys.readouterr().err == f"no job {short['id']} in {local.service.data.root}\n"
    assert show(capsys, local.data_dir, kept["id"], timeout=0)[0] == 0


def test_archived_executions_leave_the_engines_memory_and_stay_readable(local, media_server, capsys, monkeypatch):
    import pytest
    from botocore.exceptions import ClientError

    from clipline.composition import services
    from clipline.local import engine

    # Given an engine that keeps an archived execution in memory for no time at all
    # (the module's own service: moto's backend is one per process, so a second engine would share it)
    monkeypatch.setattr(engine, "KEEP_ARCHIVED_EXECUTIONS_SECONDS", 0.0)
    job_id = local.client.create(media_server.url("long.mp4"), 1, 2).body["id"]
    assert local.client.wait(job_id)["status"] == "succeeded"
    sfn = local.service.engine.client("stepfunctions")
    arn = services().workflow.execution_arn(job_id)
    # When the watcher has archived it, Then moto no longer holds it (a long serve does not grow with jobs done)
    deadline = time.monotonic() + 15
    listed = {"executions": [{"executionArn": arn}]}
    while any(item["executionArn"] == arn for item in listed["executions"]):
        assert time.monotonic() < deadline, "the ended execution stayed in the engine"
        time.sleep(0.2)
        listed = sfn.list_executions(stateMachineArn=local.service.engine.state_machine_arn)
    with pytest.raises(ClientError, match="ExecutionDoesNotExist"):
        sfn.describe_execution(executionArn=arn)
    # And its history is still shown, from the archive
    code, out, err = show(capsys, local.data_dir, job_id, timeout=0)
    assert code == 0, err
    assert f"execution {job_id}  SUCCEEDED" in out and table(out)[-1][0] == "FinalizeJob"
    # And the service goes on running jobs
    again = local.client.create(media_server.url("long.mp4"), 2, 3)
    assert local.client.wait(again.body["id"])["status"] == "succeeded"


def held_after_jobs_ended():
    """What this process holds that ended jobs could have left behind: finished threads, and objects of moto's."""
    gc.collect()
    things = gc.get_objects()
    return {
        "finished threads": sum(1 for thing in things if isinstance(thing, threading.Thread) and not thing.is_alive()),
        "moto objects": sum(1 for thing in things if str(vars(type(thing)).get("__module__", "")).startswith("moto.")),
    }


def test_ended_jobs_leave_nothing_behind_in_the_engine(local, media_server, monkeypatch):
    from clipline.local import engine

    def run_jobs(count):
        job_ids = [local.client.create(media_server.url("long.mp4"), 1, 2).body["id"] for _ in range(count)]
        assert all(local.client.wait(job_id)["status"] == "succeeded" for job_id in job_ids)

    def wait_until_held_no_more_than(baseline):
        # The watcher lets go once a round. The HTTP servers may still hold a finished request thread or two,
        # until their next request.
        deadline = time.monotonic() + 10
        while True:
            held = held_after_jobs_ended()
            threads_let_go = held["finished threads"] <= baseline["finished threads"] + 3
            if threads_let_go and held["moto objects"] <= baseline["moto objects"]:
                return
            assert time.monotonic() < deadline, f"held after the jobs: {held}, before: {baseline}"
            time.sleep(0.5)

    def wait_until_the_engine_lists_no_execution():
        sfn = local.service.engine.client("stepfunctions")
        deadline = time.monotonic() + 10
        while sfn.list_executions(stateMachineArn=local.service.engine.state_machine_arn)["executions"]:
            assert time.monotonic() < deadline, "ended executions stayed in the engine"
            time.sleep(0.2)

    # Given an engine that keeps an archived execution in memory for no time at all, warmed up by a job
    # that went all the way through it, archive included (moto loads what each operation needs on first use)
    monkeypatch.setattr(engine, "KEEP_ARCHIVED_EXECUTIONS_SECONDS", 0.0)
    run_jobs(1)
    wait_until_the_engine_lists_no_execution()
    baseline = held_after_jobs_ended()
    # When five more jobs run (moto runs each execution, state and task on a thread of its own, five a job,
    # and snapshots the state machine for each execution)
    run_jobs(5)
    # Then once the watcher has had its round, the process holds no more than before: a long serve does
    # not grow with jobs done
    wait_until_held_no_more_than(baseline)
