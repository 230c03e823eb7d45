"""Runnable curl examples in Markdown: find them, run them against a live service, compare with what they document.

The conventions the documents follow (docs/api.md, and the README's tour):

- the service is at ``http://127.0.0.1:8080`` and the sample source at
  ``http://127.0.0.1:8081/sample.mp4``; both are replaced with live addresses;
- every ```sh block that contains ``curl`` is one example; it is followed by an
  ```http block: ``HTTP/1.1 <code> <reason>``, the headers that matter, a blank
  line, then the body (abridged where it helps);
- the API key and job ids are shell variables (``$KEY``, ``$JOB_ID``, ...),
  which the runner passes in the environment;
- ```sh blocks without ``curl`` are setup (starting servers, creating keys): the
  caller provides their equivalents.

These are plain functions, so any test can run the examples of any document;
``live_service`` starts what they run against and prepares the jobs they name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Iterator

from clipline.asr.fake import FakeTranscriber
from clipline.composition import SystemClock, services
from clipline.domain.rate_limits import UsagePlan
from clipline.local.media_server import MediaServer
from tests.local.conftest import RunningService, start_service
from tests.webhook_receiver import Receiver

DOC_BASE_URL = "http://127.0.0.1:8080"
DOC_SAMPLE_URL = "http://127.0.0.1:8081/sample.mp4"

_FENCE = re.compile(r"^```(\S*)\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_STATUS_LINE = re.compile(r"^HTTP/\d(?:\.\d)?\s+(\d{3})(?:\s+(.*))?$")
_HEADER_LINE = re.compile(r"^([A-Za-z0-9-]+):\s*(.*)$")
_DOCUMENTED_ERROR_CODE = re.compile(r'"error"\s*:\s*\{\s*"code"\s*:\s*"([A-Z0-9_]+)"')
_VARIABLE = re.compile(r"\$\{?([A-Z][A-Z0-9_]*)")
# The retention of the job the expired examples use ($EXPIRED_JOB_ID).
SHORT_RETENTION_SECONDS = 2
_SHELL_SEPARATORS = {"", ";", "|", "||", "&", "&&", "(", ")", "do", "done", "then", "else", "fi"}


@dataclass(frozen=True)
class Documented:
    """What an example's ```http block says the answer is."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]  # (name, value) as written
    error_code: str | None
    body: str


@dataclass(frozen=True)
class Example:
    heading: str
    index: int  # 1-based among the examples under ``heading``
    line: int  # where the ```sh block starts, 1-based
    script: str
    documented: Documented

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-") or "top"
        return f"{slug}-{self.index}"

    @property
    def variables(self) -> set[str]:
        """The upper-case shell variables the script reads (``$KEY``, ``${CLIP_URL/...}``)."""
        return set(_VARIABLE.findall(self.script))


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # names in lower case
    body: str

    @property
    def error_code(self) -> str | None:
        try:
            document = json.loads(self.body)
        except ValueError:
            return None
        error = document.get("error") if isinstance(document, dict) else None
        return error.get("code") if isinstance(error, dict) else None


@dataclass(frozen=True)
class Outcome:
    """What running an example printed; ``response`` is the last HTTP response in it."""

    script: str
    returncode: int | None
    output: str
    errors: str
    response: Response | None


@dataclass(frozen=True)
class _Block:
    language: str
    start: int  # the opening fence's line, 1-based
    end: int  # the closing fence's line
    text: str
    heading: str  # the nearest heading above it


def _blocks(markdown: str) -> list[_Block]:
    """Every fenced block, in order."""
    blocks = []
    heading = ""
    lines = markdown.splitlines()
    number = 0
    while number < len(lines):
        line = lines[number]
        fence = _FENCE.match(line)
        if fence:
            end = number + 1
            while end < len(lines) and lines[end].rstrip() != "```":
                end += 1
            if end == len(lines):
                raise ValueError(f"line {number + 1}: a code block is never closed")
            blocks.append(_Block(fence.group(1), number + 1, end + 1, "\n".join(lines[number + 1 : end]), heading))
            number = end + 1
            continue
        found = _HEADING.match(line)
        if found:
            heading = found.group(2).strip("` ")
        number += 1
    return blocks


def parse_documented(text: str, line: int) -> Documented:
    """Read the text of an ```http block whose fence is on ``line``.

    Raises ValueError when it does not start with a status line, or a header line is not one.
    """
    lines = text.splitlines()
    status = _STATUS_LINE.match(lines[0].strip()) if lines else None
    if status is None:
        raise ValueError(f"line {line}: an http block must start with 'HTTP/1.1 <code> <reason>'")
    headers = []
    rest = lines[1:]
    for position, header in enumerate(rest):
        if not header.strip():
            rest = rest[position + 1 :]
            break
        found = _HEADER_LINE.match(header.strip())
        if found is None:
            raise ValueError(f"line {line + 2 + position}: {header!r} is not a header; end them with a blank line")
        headers.append((found.group(1), header.partition(":")[2].strip()))
    else:
        rest = []
    body = "\n".join(rest)
    code = _DOCUMENTED_ERROR_CODE.search(body)
    error_code = code.group(1) if code else None
    return Documented(int(status.group(1)), status.group(2) or "", tuple(headers), error_code, body)


def examples_in(markdown: str) -> list[Example]:
    """Every runnable example of a Markdown document, in order.

    Raises ValueError when a curl block is not immediately followed by an http block.
    """
    lines = markdown.splitlines()
    blocks = _blocks(markdown)
    examples: list[Example] = []
    per_heading: dict[str, int] = {}
    for position, block in enumerate(blocks):
        if block.language != "sh" or not re.search(r"\bcurl\b", block.text):
            continue
        answer = blocks[position + 1] if position + 1 < len(blocks) else None
        between = lines[block.end : answer.start - 1] if answer else []
        if answer is None or answer.language != "http" or any(line.strip() for line in between):
            raise ValueError(f"line {block.start}: a curl example must be followed at once by an ```http block")
        per_heading[block.heading] = per_heading.get(block.heading, 0) + 1
        documented = parse_documented(answer.text, answer.start)
        examples.append(Example(block.heading, per_heading[block.heading], block.start, block.text, documented))
    return examples


def live_script(script: str, base_url: str, sample_url: str) -> str:
    """The script with the documents' addresses replaced by live ones."""
    return script.replace(DOC_SAMPLE_URL, sample_url).replace(DOC_BASE_URL, base_url.rstrip("/"))


def last_response(output: str) -> Response | None:
    """The last HTTP response printed by ``curl -i`` (or ``-D -``): interim ones such as 100 Continue come first."""
    lines = output.replace("\r\n", "\n").split("\n")
    starts = [number for number, line in enumerate(lines) if _STATUS_LINE.match(line)]
    if not starts:
        return None
    first = starts[-1]
    status = _STATUS_LINE.match(lines[first])
    headers: dict[str, str] = {}
    number = first + 1
    while number < len(lines) and lines[number].strip():
        found = _HEADER_LINE.match(lines[number])
        if found:
            headers[found.group(1).lower()] = found.group(2)
        number += 1
    return Response(int(status.group(1)), (status.group(2) or "").strip(), headers, "\n".join(lines[number + 1 :]))


def run_example(
    example: Example,
    base_url: str,
    sample_url: str,
    env: dict[str, str],
    cwd: Path,
    timeout: float = 60,
) -> Outcome:
    """Run the example with bash and the real curl; ``env`` holds its variables (and should hold PATH)."""
    script = live_script(example.script, base_url, sample_url)
    try:
        done = subprocess.run(
            ["bash", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout.decode(errors="replace") if isinstance(expired.stdout, bytes) else expired.stdout or ""
        return Outcome(script, None, output, f"timed out after {timeout} s", last_response(output))
    return Outcome(script, done.returncode, done.stdout, done.stderr, last_response(done.stdout))


def problems(example: Example, outcome: Outcome) -> list[str]:
    """How the live answer differs from the documented one: status, listed headers, error code."""
    response = outcome.response
    if response is None:
        printed = f"{outcome.output[:500]!r} {outcome.errors[:500]!r}"
        return [f"no HTTP response in the output (exit {outcome.returncode}): {printed}"]
    found = []
    documented = example.documented
    if response.status != documented.status:
        found.append(f"status {response.status}, documented {documented.status}: {response.body[:500]}")
    missing = [name for name, _ in documented.headers if name.lower() not in response.headers]
    if missing:
        found.append(f"headers {missing} missing from {sorted(response.headers)}")
    for name, value in documented.headers:
        actual = response.headers.get(name.lower())
        if actual is not None and not _same_header_value(name.lower(), value, actual, example):
            found.append(f"header {name}: {actual!r}, documented {value!r}")
    if documented.error_code and response.error_code != documented.error_code:
        found.append(f"error code {response.error_code}, documented {documented.error_code}: {response.body[:500]}")
    return found


# Values that differ from run to run: ids, sizes, and waits that depend on the clock.
_VOLATILE_HEADERS = {"location", "content-length", "date"}


def _same_header_value(name: str, documented: str, actual: str, example: Example) -> bool:
    if name in _VOLATILE_HEADERS:
        return True
    if name == "content-type":
        # Parameters such as the Prometheus format version follow the installed library.
        return documented.split(";")[0].strip().lower() == actual.split(";")[0].strip().lower()
    if name == "x-correlation-id" and documented not in example.script:
        return True  # one the service made up, new every time
    if name == "retry-after" and example.documented.status == 429:
        return actual.isdigit() and int(actual) >= 1  # the wait depends on the clock
    return documented == actual


def requests_in(script: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """(method, URL) of each curl command in ``script``, with ``$VARIABLES`` taken from ``env``."""
    requests = []
    # A line break ends a command unless it is escaped or quoted; a quoted body may span lines.
    lexer = shlex.shlex(script.replace("\\\n", " "), posix=True, punctuation_chars="();<>|&\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    tokens = list(lexer)
    position = 0
    while position < len(tokens):
        if tokens[position] != "curl":
            position += 1
            continue
        arguments = []
        position += 1
        while position < len(tokens) and tokens[position].strip() not in _SHELL_SEPARATORS:
            arguments.append(Template(tokens[position]).safe_substitute(env))
            position += 1
        requests.append(_request_of(arguments))
    return requests


def _request_of(arguments: list[str]) -> tuple[str, str]:
    method = None
    url = ""
    sends_data = False
    for position, argument in enumerate(arguments):
        if argument in ("-X", "--request") and position + 1 < len(arguments):
            method = arguments[position + 1]
        elif argument in ("-I", "--head"):
            method = method or "HEAD"
        elif argument in ("-d", "--data", "--data-binary", "--data-raw", "--json"):
            sends_data = True
        elif not url and re.match(r"https?://", argument):
            url = argument
    return method or ("POST" if sends_data else "GET"), url


@dataclass
class Live:
    running: RunningService
    sample_url: str
    env: dict[str, str]
    outcomes: dict[str, Outcome]


def _wait_for(client, job_id: str, wanted: set[str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.request("GET", f"/api/jobs/{job_id}").body
        if job["status"] in wanted or time.monotonic() > deadline:
            assert job["status"] in wanted, job
            return job
        time.sleep(0.1)


def _clip_link(client, job_id: str) -> str:
    result = client.request("GET", f"/api/jobs/{job_id}/result")
    assert result.status == 200, result.body
    return next(artifact["url"] for artifact in result.body["artifacts"] if artifact["name"] == "clip")


def prepare_jobs(running: RunningService, sample_url: str, stalled_url: str, receiver_url: str) -> dict[str, str]:
    """The variables the examples read: keys, job ids in each state, and signed links."""
    client = running.client

    def create(body: dict) -> str:
        reply = client.request("POST", "/api/jobs", body)
        assert reply.status == 202, reply.body
        return reply.body["id"]

    expiring = create({"sourceUrl": sample_url, "start": 1, "end": 2, "retentionSeconds": SHORT_RETENTION_SECONDS})
    job = create({"sourceUrl": sample_url, "start": "00:01:00", "end": 70.5})
    still_running = create({"sourceUrl": stalled_url, "start": 0, "end": 5})
    failed = create({"sourceUrl": sample_url, "start": 170, "end": 190})
    announced = create({"sourceUrl": sample_url, "start": 1, "end": 2, "webhookUrl": receiver_url})
    to_cancel = create({"sourceUrl": stalled_url, "start": 0, "end": 5})
    to_delete = create({"sourceUrl": sample_url, "start": 3, "end": 4})
    expired = _wait_for(client, expiring, {"succeeded", "failed"})
    assert expired["status"] == "succeeded", expired
    assert _wait_for(client, job, {"succeeded", "failed"})["status"] == "succeeded"
    assert _wait_for(client, failed, {"succeeded", "failed"})["status"] == "failed"
    _wait_for(client, still_running, {"running"})
    assert _wait_for(client, announced, {"succeeded", "failed"})["status"] == "succeeded"
    _wait_for(client, to_cancel, {"running"})
    assert _wait_for(client, to_delete, {"succeeded", "failed"})["status"] == "succeeded"
    expires_at = datetime.fromisoformat(expired["expiresAt"])
    # The link its result handed out before it expired: links never outlive their job.
    expired_clip_url = services().artifacts.signed_url(expired["resultClipKey"], expires_at)
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 1.1)
    # Two requests at once, then one every 10 s: the third of three in a row is refused.
    _, slow_key = running.service.data.key_store(SystemClock()).create(
        "slow", UsagePlan(rate_per_second=0.1, burst=2, quota=10_000, quota_period="day")
    )
    return {
        "KEY": client.api_key,
        "SLOW_KEY": slow_key,
        "JOB_ID": job,
        "RUNNING_JOB_ID": still_running,
        "FAILED_JOB_ID": failed,
        "WEBHOOK_JOB_ID": announced,
        "EXPIRED_JOB_ID": expiring,
        "CANCEL_JOB_ID": to_cancel,
        "DELETE_JOB_ID": to_delete,
        "CLIP_URL": _clip_link(client, job),
        "EXPIRED_CLIP_URL": expired_clip_url,
    }


def prepare_upload(running: RunningService, sample: Path) -> dict[str, str]:
    """An upload link for the sample file, and its key, for the examples that PUT it and clip it."""
    size = sample.stat().st_size
    reply = running.client.request("POST", "/api/uploads", {"fileName": "talk.mp4", "contentType": "video/mp4", "sizeBytes": size})
    assert reply.status == 201, reply.body
    return {"SAMPLE_FILE": str(sample), "UPLOAD_URL": reply.body["url"], "UPLOAD_KEY": reply.body["sourceKey"]}


@contextlib.contextmanager
def live_service(root: Path, sample: Path, examples: list[Example]) -> Iterator[Live]:
    """A local service, a sample server and a source that never answers; the examples run once, in order."""
    media = root / "media"
    media.mkdir()
    shutil.copyfile(sample, media / "sample.mp4")
    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen()
    server = MediaServer(media).start()
    receiver = Receiver()
    running = start_service(
        root,
        transcriber=FakeTranscriber(),
        # The examples create jobs freely; the per-address limit has tests of its own.
        job_creations_per_ip_per_minute=10_000,
        # The running job waits on a source that never answers: it must still be running at the end.
        first_byte_timeout_seconds=600,
        probe_timeout_seconds=600,
        # The expired job must outlive its expiry until the examples have read it.
        cleanup_interval_seconds=3600,
    )
    try:
        sample_url = server.url("sample.mp4")
        stalled_url = f"http://127.0.0.1:{stalled.getsockname()[1]}/stalled.mp4"
        variables = prepare_jobs(running, sample_url, stalled_url, receiver.url)
        variables.update(prepare_upload(running, media / "sample.mp4"))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", **variables}
        workdir = root / "cwd"
        workdir.mkdir()
        outcomes = {
            example.id: run_example(example, running.service.base_url, sample_url, env, workdir, timeout=30)
            for example in examples
        }
        yield Live(running, sample_url, env, outcomes)
    finally:
        # Closing the listener first ends the stalled fetch at once.
        stalled.close()
        running.service.stop()
        server.stop()
        receiver.close()
