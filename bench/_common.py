"""Helpers the benchmarks share: figures, the summary they hand to report.py, and a `clipline serve` to measure.

Importing this module starts nothing and reads no environment; the benchmarks call it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
WHISPER_MODEL_BESIDE_REPO = REPO_ROOT.parent / "shared" / "models" / "whisper-base-ct2"
SERVER_START_TIMEOUT_SECONDS = 60


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` (0-1) percentile of ``values``, interpolated linearly between the nearest ranks.

    Raises:
        ValueError: ``values`` is empty or ``fraction`` is outside 0-1.
    """
    if not values:
        raise ValueError("no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction} is not between 0 and 1")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def growth(series: Sequence[float]) -> float:
    """Relative change from the first to the last value (0.05 is 5 %).

    Raises:
        ValueError: fewer than two values, or a first value of 0.
    """
    if len(series) < 2 or series[0] == 0:
        raise ValueError("need two values and a non-zero first one")
    return (series[-1] - series[0]) / series[0]


def second_half_kib_per_job(jobs: Sequence[int], rss_mib: Sequence[float]) -> float:
    """RSS change per job over the second half of a soak's samples, in KiB.

    A server's memory may rise while its allocator and caches warm up and then level
    off; a leak goes on rising. Only the second half tells the two apart.

    Raises:
        ValueError: fewer than four samples, or no jobs between the middle one and the last.
    """
    if len(jobs) != len(rss_mib) or len(jobs) < 4:
        raise ValueError("need at least four samples, each with its job count")
    middle = len(jobs) // 2 - 1
    if jobs[-1] == jobs[middle]:
        raise ValueError("no jobs ended over the second half")
    return (rss_mib[-1] - rss_mib[middle]) * 1024 / (jobs[-1] - jobs[middle])


@dataclass
class Row:
    """One line of the report: a figure, what it was measured against in the same run, and their ratio."""

    benchmark: str
    figure: str
    baseline: str = ""
    ratio: str = ""
    notes: str = ""
    extra: dict = field(default_factory=dict)


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table, with any ``|`` in a cell escaped so it stays one cell."""

    def cell(text: str) -> str:
        return " ".join(text.replace("|", "\\|").split())

    lines = ["| benchmark | figure | baseline | ratio | notes |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        cells = (row.benchmark, row.figure, row.baseline, row.ratio, row.notes)
        lines.append("| " + " | ".join(cell(text) for text in cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(path: Path | None, rows: Sequence[Row]) -> None:
    """Hand the rows to report.py; without ``path`` (the benchmark run on its own) do nothing."""
    if path is not None:
        path.write_text(json.dumps([asdict(row) for row in rows], indent=2))


def read_summary(path: Path) -> list[Row]:
    return [Row(**item) for item in json.loads(path.read_text())]


def offline_whisper_model() -> str | None:
    """``CLIPLINE_WHISPER_MODEL`` when set, else the converted base model kept beside the repository, else None."""
    configured = os.environ.get("CLIPLINE_WHISPER_MODEL")
    if configured:
        return configured
    return str(WHISPER_MODEL_BESIDE_REPO) if (WHISPER_MODEL_BESIDE_REPO / "model.bin").is_file() else None


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a live process, in KiB, from /proc/<pid>/status."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


@dataclass
class Reply:
    status: int
    body: dict
    seconds: float


class ApiClient:
    """JSON over HTTP with an API key; every call is timed and no status raises."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url
        self.api_key = api_key

    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> Reply:
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"x-api-key": self.api_key, "Content-Type": "application/json", **(headers or {})}
        request = urllib.request.Request(self.base_url + path, data=data, headers=all_headers, method=method)
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        seconds = time.perf_counter() - started
        try:
            parsed = json.loads(raw or b"{}")
        except ValueError:
            parsed = {"raw": raw[:200].decode("utf-8", "replace")}
        return Reply(status, parsed, seconds)


class ServeProcess:
    """`clipline serve` as a child process on 127.0.0.1 with its own data dir, and a key with a large plan.

    A child process, so that its memory is its own and can be read from /proc.
    """

    def __init__(self, data_dir: Path, settings: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "CLIPLINE_DATA_DIR": str(data_dir),
            "CLIPLINE_ALLOW_PRIVATE_SOURCES": "true",
            # The benchmarks submit from one address far faster than the per-IP rule allows.
            "CLIPLINE_JOB_CREATIONS_PER_IP_PER_MINUTE": "1000000",
            **settings,
        }
        self.process: subprocess.Popen | None = None
        self.base_url = ""
        self.api_key = ""

    def _clipline(self, *arguments: str, **options) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "clipline.cli", *arguments], env=self.env, **options)

    def start(self) -> "ServeProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        created = self._clipline(
            "keys", "create", "--name", "bench", "--rate", "1000", "--burst", "1000", "--quota", "10000000",
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        self.api_key = created.stdout.strip()
        ready = self.data_dir / "ready"
        log = (self.data_dir / "serve.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clipline.cli", "serve", "--port", "0", "--ready-file", str(ready)],
            env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if ready.exists() and ready.read_text():
                self.base_url = ready.read_text()
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"clipline serve did not start; its log: {self.data_dir / 'serve.log'}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def client(self) -> ApiClient:
        return ApiClient(self.base_url, self.api_key)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "ServeProcess":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def wait_for_job(client: ApiClient, job_id: str, timeout: float, interval: float = 0.1) -> dict:
    """Poll a job until it ends; the job's last body. ``interval`` bounds how late its end is seen.

    Raises:
        SystemExit: the job did not end in ``timeout`` seconds, or a poll failed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = client.call("GET", f"/api/jobs/{job_id}")
        if reply.status != 200:
            raise SystemExit(f"GET job {job_id}: {reply.status} {reply.body}")
        if reply.body["status"] in ("succeeded", "failed"):
            return reply.body
        time.sleep(interval)
    raise SystemExit(f"job {job_id} did not end in {timeout:g} s")
