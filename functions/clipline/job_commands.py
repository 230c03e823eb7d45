"""``clipline jobs list | show | cancel | delete`` and ``clipline upload``: a running service's jobs and
uploads, through ``clipline.client``.

Unlike ``keys``, these talk HTTP, so they work the same against local mode and a
deployed stack: ``--url`` and ``--api-key``, or ``CLIPLINE_URL`` and ``CLIPLINE_API_KEY``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client, JobView

URL_VARIABLE = "CLIPLINE_URL"
API_KEY_VARIABLE = "CLIPLINE_API_KEY"
# JobStatus's values, written out so building the parser imports no models.
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "deleted")
DEFAULT_LIMIT = 20
# The API's largest page: fewer requests for a long listing.
_MAX_PAGE_SIZE = 100


def add_to(commands: Any) -> None:
    """Add ``jobs`` and its subcommands to the CLI's subparsers."""
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--url", help=f"the API's base URL (default: {URL_VARIABLE})")
    connection.add_argument("--api-key", help=f"the API key (default: {API_KEY_VARIABLE})")
    connection.add_argument("--json", action="store_true", help="print the API's JSON instead")
    jobs = commands.add_parser("jobs", help="list, show, cancel or delete your jobs on a running service")
    job_commands = jobs.add_subparsers(dest="job_command", required=True)
    listing = job_commands.add_parser("list", parents=[connection], help="your jobs, newest first")
    listing.add_argument("--status", choices=STATUSES, help="only jobs with this status")
    listing.add_argument("--limit", type=_at_least_one, default=DEFAULT_LIMIT, help=f"at most this many (default {DEFAULT_LIMIT})")
    show = job_commands.add_parser("show", parents=[connection], help="one job: status, stage, clip, error")
    cancel = job_commands.add_parser(
        "cancel", parents=[connection], help="stop a queued or running job; an ended job is left as it is"
    )
    delete = job_commands.add_parser(
        "delete", parents=[connection], help="delete an ended job's artifacts now (a running job is cancelled)"
    )
    for sub in (show, cancel, delete):
        sub.add_argument("job_id")
    jobs.set_defaults(run=run)
    upload = commands.add_parser(
        "upload", parents=[connection], help="upload a media file for jobs to clip; prints its sourceKey"
    )
    upload.add_argument("file", type=Path)
    upload.add_argument("--content-type", help="its media type (default: from its name, e.g. video/mp4)")
    upload.set_defaults(run=run, job_command="upload")


def run(args: argparse.Namespace) -> int:
    """Run one ``jobs`` command; exit 2 without a URL or key, 1 with one line on stderr when the API refuses."""
    url = args.url or os.environ.get(URL_VARIABLE)
    api_key = args.api_key or os.environ.get(API_KEY_VARIABLE)
    if not url or not api_key:
        missing = [f"--url or {URL_VARIABLE}"] * (not url) + [f"--api-key or {API_KEY_VARIABLE}"] * (not api_key)
        print(f"clipline jobs needs the service: set {' and '.join(missing)}", file=sys.stderr)
        return 2
    from .client import Client, ClipLineApiError, ClipLineClientError

    client = Client(url, api_key)
    command = {"list": _list, "show": _show, "cancel": _cancel, "delete": _delete, "upload": _upload}[args.job_command]
    try:
        return command(client, args)
    except ClipLineApiError as error:
        print(f"error {error.code}: {error.message} (correlation id {error.correlation_id or 'none'})", file=sys.stderr)
    except ClipLineClientError as error:
        print(f"error: {error}", file=sys.stderr)
    return 1


def _list(client: Client, args: argparse.Namespace) -> int:
    jobs = client.list_jobs(status=args.status, page_size=min(args.limit + 1, _MAX_PAGE_SIZE))
    # One past the limit says whether there are more, without reading every page.
    shown = list(itertools.islice(jobs, args.limit + 1))
    more, shown = len(shown) > args.limit, shown[: args.limit]
    if args.json:
        _print_json([_wire(job) for job in shown])
    else:
        for job in shown:
            print(_job_line(job))
    if not shown:
        print("no jobs" + (f" with status {args.status}" if args.status else ""), file=sys.stderr)
    elif more:
        print(f"(more jobs than {args.limit}: pass --limit to see more)", file=sys.stderr)
    return 0


def _show(client: Client, args: argparse.Namespace) -> int:
    job = client.get_job(args.job_id)
    if args.json:
        _print_json(_wire(job))
    else:
        print("\n".join(_job_lines(job)))
    return 0


def _cancel(client: Client, args: argparse.Namespace) -> int:
    """Cancel only a job that has not ended: DELETE on an ended job would delete its artifacts."""
    job = client.get_job(args.job_id)
    if job.status.is_terminal:
        _report(args, job, f"job {job.id} had already ended ({job.status.value}); nothing cancelled")
        return 0
    cancelled = client.cancel(job.id)
    if cancelled is not None:
        _report(args, cancelled, f"job {job.id} cancelled in stage {cancelled.stage.value}")
        return 0
    # It ended between the two requests, and the DELETE then removed its artifacts.
    now = client.get_job(job.id)
    _report(args, now, f"job {job.id} ended before it could be cancelled; it is now {now.status.value}")
    return 0


def _delete(client: Client, args: argparse.Namespace) -> int:
    before = client.get_job(args.job_id)
    cancelled = client.cancel(before.id)
    if cancelled is not None:
        _report(args, cancelled, f"job {before.id} was still {before.status.value}: cancelled, with nothing kept")
        return 0
    now = client.get_job(before.id)
    if before.status.value in ("cancelled", "deleted"):
        message = f"job {before.id} was already {before.status.value}; nothing left to delete"
    else:
        message = f"job {before.id} deleted: its artifacts are removed, its record stays until {_time(now.expires_at)}"
    _report(args, now, message)
    return 0


def _upload(client: Client, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    size = args.file.stat().st_size
    with tqdm(total=size, unit="B", unit_scale=True, desc=args.file.name, file=sys.stderr, dynamic_ncols=True) as bar:
        upload = client.upload_file(args.file, content_type=args.content_type, on_progress=lambda done, _: bar.update(done - bar.n))
    if args.json:
        from .api.schemas import to_wire

        _print_json(to_wire(upload))
    else:
        print(upload.source_key)
        print(f"uploaded {size} bytes; clip it with sourceKey until {_time(upload.upload_expires_at)}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace, job: JobView, message: str) -> None:
    """The job as it now is with ``--json``, else what happened to it in one line."""
    if args.json:
        _print_json(_wire(job))
    else:
        print(message)


def _job_line(job: JobView) -> str:
    request = job.request
    return (
        f"{job.id}  {job.status.value:<9}  {job.stage.value:<10} {job.progress:>3}%  {_time(job.created_at)}  "
        f"{_source(job)} {request.start_seconds:g}-{request.end_seconds:g} s"
    )


def _job_lines(job: JobView) -> list[str]:
    request = job.request
    lines = [
        f"job:       {job.id}",
        f"status:    {job.status.value} (stage {job.stage.value}, {job.progress}%)",
        f"source:    {_source(job)}",
        f"range:     {request.start_seconds:g}-{request.end_seconds:g} s ({request.accuracy.value})",
        f"created:   {_time(job.created_at)}",
        f"expires:   {_time(job.expires_at)}",
    ]
    if job.clip:
        lines.append(f"clip:      {job.clip.duration_seconds:.3f} s, {job.clip.size_bytes} bytes ({job.clip.method})")
    if job.transcript:
        transcript = job.transcript
        lines.append(f"transcript: {transcript.words} words, {transcript.language}, {transcript.provider} {transcript.model}")
    if job.result_keys:
        lines.append(f"artifacts: {', '.join(job.result_keys)}")
    if job.error:
        lines.append(f"error:     {job.error.code}: {job.error.message}")
    return lines


def _source(job: JobView) -> str:
    """Where the job clips from: its URL, or the key of the upload it clips."""
    return job.request.source_url or f"upload {job.request.source_key}"


def _time(moment: Any) -> str:
    return moment.isoformat(timespec="seconds")


def _wire(job: JobView) -> dict:
    from .api.schemas import to_wire

    return to_wire(job)


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2))


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is less than 1")
    return value
