"""``clipline serve | clip | sample-media | keys | jobs | cleanup | migrate | executions``: local mode from the command line.

The ``keys`` commands are in ``key_commands``, the ``jobs`` commands in ``job_commands``;
``clip`` and ``jobs`` talk to the API through ``clipline.client``.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import job_commands, key_commands
from .settings import Settings

if TYPE_CHECKING:
    from .client import Client, ClipLineApiError, JobView

# Kept light at import: `clipline keys` should not pay for moto and the engine.

POLL_INTERVAL_SECONDS = 0.5
SERVER_START_TIMEOUT_SECONDS = 60


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clipline", description="Media clipping service, local mode.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run local mode: HTTP API, pipeline engine and storage")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    serve.add_argument("--data-dir", type=Path, default=None, help="default: CLIPLINE_DATA_DIR or ./data")
    serve.add_argument("--ready-file", type=Path, help="write the base URL here once serving")
    serve.add_argument(
        "--aws-sim",
        action="store_true",
        help="instead of local mode: synthesize the CDK stack, deploy it into a simulated AWS account "
        "(moto, on loopback) and serve its API",
    )
    from .aws_sim.options import add_arguments as add_aws_sim_arguments

    add_aws_sim_arguments(serve.add_argument_group("with --aws-sim"))
    serve.set_defaults(run=_serve)

    clip = commands.add_parser("clip", help="cut one clip end to end through a private local server")
    clip.add_argument("source_url")
    clip.add_argument("--start", required=True, help="seconds or HH:MM:SS.mmm")
    clip.add_argument("--end", required=True, help="seconds or HH:MM:SS.mmm")
    clip.add_argument(
        "--transcribe", action="store_true", help="also transcribe: transcript.srt, .vtt, .txt and .json"
    )
    clip.add_argument("--language", help="ISO 639-1 code of the speech (default: detected)")
    clip.add_argument(
        "--accuracy",
        choices=("frame", "keyframe"),
        default="frame",
        help="frame: exact to the frame (smart cut, the default); keyframe: stream copy from the keyframe before start",
    )
    clip.add_argument(
        "--burn-subtitles", action="store_true", help="also write clip.burned.mp4 with the subtitles drawn in"
    )
    clip.add_argument(
        "--subtitles", type=Path, help="an SRT file to burn in instead of a transcript (with --burn-subtitles)"
    )
    clip.add_argument("--out", type=Path, default=Path("./clipline-out"), help="folder for the artifacts")
    clip.add_argument("--data-dir", type=Path, help="keep the job here (default: a temporary folder)")
    clip.add_argument("--timeout", type=float, default=3600, help="give up waiting after this many seconds")
    clip.set_defaults(run=_clip)

    sample = commands.add_parser(
        "sample-media", help="serve a sample video on 127.0.0.1 with Range support, to clip from (Ctrl-C stops)"
    )
    sample.add_argument("--dir", type=Path, default=Path(".demo"), help="folder served; sample.mp4 is made in it")
    sample.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    sample.set_defaults(run=_sample_media)

    key_commands.add_to(commands)
    job_commands.add_to(commands)

    cleanup = commands.add_parser(
        "cleanup", help="remove expired jobs, transcripts and orphaned files now (serve does it every few minutes)"
    )
    cleanup.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    cleanup.add_argument("--data-dir", type=Path, default=None)
    cleanup.set_defaults(run=_cleanup)

    migrate = commands.add_parser(
        "migrate", help="bring stored records up to this release's schema (serve also does it on start)"
    )
    target = migrate.add_mutually_exclusive_group()
    target.add_argument(
        "--data-dir", type=Path, default=None, help="the local database's folder (default: CLIPLINE_DATA_DIR or ./data)"
    )
    target.add_argument(
        "--aws", action="store_true", help="backfill the DynamoDB jobs table (CLIPLINE_JOBS_TABLE, CLIPLINE_AWS_REGION)"
    )
    migrate.set_defaults(run=_migrate)

    executions = commands.add_parser("executions", help="the pipeline's executions, one per job")
    execution_commands = executions.add_subparsers(dest="execution_command", required=True)
    show = execution_commands.add_parser(
        "show", help="a job's execution history as a timeline: each state, its time, retries and outcome"
    )
    show.add_argument("job_id")
    show.add_argument("--json", action="store_true", help="print the timeline as JSON")
    where = show.add_mutually_exclusive_group()
    where.add_argument(
        "--data-dir", type=Path, default=None, help="read local mode's archive here (default: CLIPLINE_DATA_DIR or ./data)"
    )
    where.add_argument("--aws", action="store_true", help="read the history from Step Functions (default AWS credentials)")
    show.add_argument(
        "--state-machine-arn", help="with --aws: the pipeline state machine (default: CLIPLINE_STATE_MACHINE_ARN)"
    )
    show.set_defaults(run=_show_execution)

    args = parser.parse_args(argv)
    if getattr(args, "state_machine_arn", None) and not args.aws:
        parser.error("--state-machine-arn goes with --aws")
    return args.run(args)


def _sample_media(args: argparse.Namespace) -> int:
    """Serve the demo's sample video until interrupted; a job may clip from it when private sources are allowed."""
    from .local.demo import ensure_sample
    from .local.media_server import MediaServer

    sample = ensure_sample(args.dir)
    with MediaServer(args.dir, port=args.port) as server:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        # Printed once stopping is handled: whoever reads the URL may signal at once.
        print(server.url(sample.name), flush=True)
        stop.wait()
    return 0


def _cleanup(args: argparse.Namespace) -> int:
    from .composition import SystemClock
    from .local.service import DataDir, cleanup_services, sweep

    settings = Settings.for_data_dir(args.data_dir)
    archive = DataDir.of(settings).execution_archive(SystemClock())
    report, histories = sweep(cleanup_services(settings), archive, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for job_id in report.expired_jobs:
        print(f"{verb} expired job {job_id}")
    for key in report.expired_transcripts:
        print(f"{verb} expired cached transcript {key}")
    for key in report.orphaned_keys:
        print(f"{verb} orphaned file {key}")
    for job_id in histories:
        print(f"{verb} execution history of job {job_id}")
    print(
        f"{len(report.expired_jobs)} job(s), {len(report.expired_asr_records)} ASR record(s), "
        f"{len(histories)} execution history record(s), {len(report.orphaned_keys)} orphaned file(s); "
        f"{report.removed_files} file(s) removed"
    )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    """Migrate the local database, or with --aws backfill the jobs table.

    Records from before retention existed expire at their creation time plus the configured retention.
    """
    from .composition import limits_from

    settings = Settings.for_data_dir(args.data_dir)
    retention = limits_from(settings).retention
    if args.aws:
        from .adapters.aws.dynamo_migrations import backfill
        from .composition import aws_client
        from .domain.record_versions import CURRENT_SCHEMA_VERSION

        report = backfill(aws_client("dynamodb", settings), settings.jobs_table, retention)
        print(
            f"table {settings.jobs_table}: upgraded {report.upgraded} item(s) to schema version "
            f"{CURRENT_SCHEMA_VERSION} ({report.scanned} scanned)"
        )
        return 0
    from .adapters.local.sqlite_database import SqliteDatabase
    from .local.service import DataDir

    database = SqliteDatabase(DataDir.of(settings).database, retention)
    report = database.migration_report
    applied = f"applied {', '.join(map(str, report.applied))}" if report.applied else "already up to date"
    print(f"database at version {report.version} ({applied})")
    return 0


class _NoHistory(Exception):
    """Why a job's execution history cannot be shown, in one line for the user."""


def _show_execution(args: argparse.Namespace) -> int:
    """Print a job's execution as a timeline; exit 1 with one line on stderr when it cannot be read."""
    from .workflow.history import build_timeline, render_json, render_text

    settings = Settings.for_data_dir(args.data_dir)
    try:
        if args.aws:
            execution, events = _aws_execution(args.job_id, args.state_machine_arn or settings.state_machine_arn)
        else:
            execution, events = _archived_execution(args.job_id, settings)
    except _NoHistory as reason:
        print(reason, file=sys.stderr)
        return 1
    timeline = build_timeline(events, execution)
    print(render_json(timeline) if args.json else render_text(timeline))
    return 0


def _archived_execution(job_id: str, settings: Any) -> tuple[dict, list[dict]]:
    """The execution local mode archived for the job, and its history events.

    Raises:
        _NoHistory: there is no local data, no such job, or its execution is not archived (yet).
    """
    from .adapters.local.sqlite_job_repository import SqliteJobRepository
    from .composition import SystemClock
    from .domain.errors import JobNotFoundError
    from .local.service import DataDir

    data = DataDir.of(settings)
    if not data.database.exists():
        raise _NoHistory(f"no local data in {data.root} (pass --data-dir, or --aws for a deployed stack)")
    clock = SystemClock()
    archived = data.execution_archive(clock).find(job_id)
    if archived is not None:
        return archived.execution, archived.events
    try:
        job = SqliteJobRepository(data.database, clock.now, retention=data.retention).get(job_id)
    except JobNotFoundError:
        raise _NoHistory(f"no job {job_id} in {data.root}") from None
    if not job.status.is_terminal:
        raise _NoHistory(
            f"job {job_id} is still {job.status.value}: its execution history is archived when the execution ends, "
            "by the `clipline serve` process running it, which must still be running"
        )
    raise _NoHistory(
        f"job {job_id} has {job.status.value} but its execution history is not archived (yet): the `clipline serve` "
        "that ran it archives it about a second after the execution ends, and loses it if killed before then"
    )


def _aws_execution(job_id: str, state_machine_arn: str) -> tuple[dict, list[dict]]:
    """The job's execution and its history events, from Step Functions with the default credential chain.

    Raises:
        _NoHistory: no usable state machine ARN, no credentials, no such execution, or AWS refused.
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from .adapters.aws.step_functions_workflow import StepFunctionsWorkflow

    if not state_machine_arn:
        raise _NoHistory("no state machine: pass --state-machine-arn or set CLIPLINE_STATE_MACHINE_ARN")
    parts = state_machine_arn.split(":")
    if len(parts) != 7 or parts[0] != "arn" or parts[2] != "states" or parts[5] != "stateMachine":
        raise _NoHistory(f"not a state machine ARN: {state_machine_arn} (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)")
    # The execution lives in the state machine's region, whatever the default region is.
    client = boto3.client("stepfunctions", region_name=parts[3])
    execution_arn = StepFunctionsWorkflow(client, state_machine_arn).execution_arn(job_id)
    try:
        execution = client.describe_execution(executionArn=execution_arn)
        pages = client.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
        events = [event for page in pages for event in page["events"]]
    except NoCredentialsError:
        raise _NoHistory(
            "no AWS credentials: configure the default chain (environment, AWS_PROFILE, SSO or an instance role)"
        ) from None
    except ClientError as error:
        code, message = error.response["Error"]["Code"], error.response["Error"].get("Message", "")
        if code == "ExecutionDoesNotExist":
            raise _NoHistory(f"no execution {job_id} on {state_machine_arn}") from None
        raise _NoHistory(f"Step Functions refused: {code}: {message}") from None
    except BotoCoreError as error:
        raise _NoHistory(f"could not read from Step Functions: {error}") from None
    return execution, events


def _serve(args: argparse.Namespace) -> int:
    if args.aws_sim:
        from .aws_sim.server import serve_from_arguments

        return serve_from_arguments(args)
    from .local.service import LocalService

    service = LocalService(Settings.for_data_dir(args.data_dir), host=args.host, port=args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    service.start()
    try:
        if args.ready_file:
            args.ready_file.write_text(service.base_url)
        print(
            f"clipline listening on {service.base_url} (data in {service.data.root}); "
            f"the console is at {service.base_url}/console/",
            file=sys.stderr,
            flush=True,
        )
        stop.wait()
    finally:
        service.stop()
    return 0


def _start_private_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    ready = data_dir / "ready"
    ready.unlink(missing_ok=True)
    log = (data_dir / "serve.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "clipline.cli", "serve", "--port", "0", "--data-dir", str(data_dir), "--ready-file", str(ready)],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if ready.exists() and ready.read_text():
            return process, ready.read_text()
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the local server did not start; see {data_dir / 'serve.log'}")


def _stop_private_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _print_error(error: ClipLineApiError) -> None:
    print(f"error {error.code}: {error.message}", file=sys.stderr)


def _follow(client: Client, job: JobView, timeout: float) -> JobView | None:
    """Poll the job to its end with a progress bar named after the stage; None on giving up."""
    from tqdm import tqdm

    from .client import WaitTimeoutError

    with tqdm(total=100, unit="%", desc=job.stage.value, file=sys.stderr, dynamic_ncols=True) as bar:

        def show(update: JobView) -> None:
            bar.set_description(update.stage.value)
            bar.update(update.progress - bar.n)

        try:
            return client.wait(job.id, timeout=timeout, poll_interval=POLL_INTERVAL_SECONDS, on_update=show)
        except WaitTimeoutError:
            print(f"gave up waiting for job {job.id} after {timeout:g}s", file=sys.stderr)
            return None


def _stage_timings(job: JobView) -> list[str]:
    """One line per state run the job went through, with how long it took, from the job's events."""
    return [
        f"  {event.state:<12} {event.duration_seconds:6.2f} s" + (f"  (attempt {event.attempt})" if (event.attempt or 1) > 1 else "")
        for event in job.events
        if event.duration_seconds is not None
    ]


def _clip(args: argparse.Namespace) -> int:
    from .client import Client, ClipLineApiError, ClipLineClientError
    from .composition import SystemClock
    from .local.service import DataDir

    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="clipline-")) if temporary else args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    keys = DataDir.of(Settings.for_data_dir(data_dir)).key_store(SystemClock())
    key_id, api_key = keys.create("clipline-clip")
    process, base_url = _start_private_server(data_dir)
    try:
        return _clip_through(Client(base_url, api_key), args)
    except ClipLineApiError as error:
        _print_error(error)
        return 1
    except ClipLineClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        _stop_private_server(process)
        keys.revoke(key_id)
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


def _clip_through(client: Client, args: argparse.Namespace) -> int:
    """Create the job, follow it, download what it made and say where; the exit code."""
    from .client import ClipLineApiError

    captioned = args.transcribe or args.burn_subtitles
    try:
        job = client.create_job(
            args.source_url, args.start, args.end, accuracy=args.accuracy,
            transcribe=args.transcribe or None, burn_subtitles=args.burn_subtitles or None,
            language=args.language if captioned else None,
            subtitles=args.subtitles.read_text(encoding="utf-8-sig") if args.subtitles else None,
        )  # fmt: skip
    except ClipLineApiError as error:
        _print_error(error)
        return 2
    job = _follow(client, job, args.timeout)
    if job is None:
        return 1
    print("\n".join(_stage_timings(job)), file=sys.stderr)
    if job.status.value != "succeeded":
        cause = f": {job.error.code}: {job.error.message}" if job.error else ""
        print(f"job {job.id} {job.status.value}{cause}", file=sys.stderr)
        return 1
    saved = _download_with_progress(client, job.id, args.out)
    _print_clip_report(job, saved)
    return 0


def _download_with_progress(client: Client, job_id: str, out: Path) -> dict[str, Path]:
    """Every artifact into ``out``, with one byte-counting progress bar per artifact on stderr."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def show(name: str, done: int, total: int | None) -> None:
        bar = bars.get(name)
        if bar is None:
            bar = bars[name] = tqdm(total=total, unit="B", unit_scale=True, desc=name, file=sys.stderr, dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        return client.download(job_id, out, on_progress=show)
    finally:
        for bar in bars.values():
            bar.close()


def _print_clip_report(job: JobView, saved: dict[str, Path]) -> None:
    clip = job.clip
    assert clip is not None, "a succeeded job has its clip"
    fallback = f", fallback: {clip.fallback_reason}" if clip.fallback_reason else ""
    print(f"clip:     {saved['clip'].resolve()}")
    print(f"duration: {clip.duration_seconds:.3f} s ({clip.method}{fallback})")
    if job.transcript:
        transcript = job.transcript
        cached = ", from the cache" if transcript.cache_hit else ""
        print(f"subtitles: {saved['srt'].resolve()}")
        print(f"transcript: {transcript.words} words, {transcript.language}, {transcript.provider} {transcript.model}{cached}")
    if "burned" in saved:
        print(f"burned:   {saved['burned'].resolve()}")
    print(f"job:      {job.id}")


if __name__ == "__main__":
    sys.exit(main())
