"""Load on local mode: many short clip jobs at bounded concurrency, status polled at a steady rate.

Runs `clipline serve` as a child process on 127.0.0.1 (so its memory can be read from
/proc) with a key on a large plan, serves a small generated H.264 sample from this
process, then:
- warm-up: one job, uncounted, then five jobs one at a time (the serial baseline) and
  50 status reads of an ended job on the idle service (the latency baseline)
- load: --jobs frame-accurate 1-2 s clips, at most --concurrency in flight; each job
  is created with an Idempotency-Key and the request is sent again at once, which must
  name the same job; meanwhile status reads go out at --poll-rate per second, round
  robin over the jobs in flight, and they are what sees a job end

Checks every job succeeded, no response was a 5xx, ids are unique, every replay named
its job, and the service holds exactly the jobs submitted; exits 1 otherwise. Prints
jobs per minute against the serial baseline, status-read p50/p99 against the idle p50,
and the server's peak RSS (VmHWM) against its RSS after the warm-up.

Soak (--jobs 1000): the server's RSS and CPU time are sampled each time another tenth
of the jobs has ended; the series shows whether memory grows with jobs done. The
first sample is taken after a tenth of the jobs, past the warm-up, and the growth
per job over the second half tells memory that levels off from memory that leaks.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    ApiClient,
    Row,
    ServeProcess,
    growth,
    memory_kib,
    percentile,
    second_half_kib_per_job,
    wait_for_job,
    write_summary,
)

from clipline.local.media_server import MediaServer  # noqa: E402
from clipline.local.sample_media import make_sample_video  # noqa: E402
from clipline.media.ffmpeg_binary import find_ffmpeg  # noqa: E402

SAMPLE_SECONDS = 30
SERIAL_JOBS = 5
# A series this flat or flatter (last tenth against the first) reads as "does not grow".
FLAT_GROWTH = 0.05
_ENDED = ("succeeded", "failed")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a live process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def clip_range(index: int) -> tuple[float, float]:
    """Job ``index``'s clip: 1.0-2.0 s long, spread over the sample and off the keyframe grid."""
    start = round(0.3 + (index * 1.7) % (SAMPLE_SECONDS - 3), 3)
    return start, round(start + 1.0 + (index % 11) / 10, 3)


@dataclass
class Tally:
    """What the clients saw; shared by the threads, guarded by ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    responses: int = 0
    server_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    replay_mismatches: list[str] = field(default_factory=list)
    final: dict[str, str] = field(default_factory=dict)
    status_seconds: list[float] = field(default_factory=list)

    def saw(self, what: str, status: int, expected: tuple[int, ...]) -> None:
        with self.lock:
            self.responses += 1
            if status >= 500:
                self.server_errors.append(f"{what}: {status}")
            elif status not in expected:
                self.unexpected.append(f"{what}: {status}")


class InFlight:
    """Jobs created and not yet seen ended, polled round robin; an Event per job tells its submitter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, threading.Event] = {}
        self._turn = 0

    def add(self, job_id: str) -> threading.Event:
        with self._lock:
            self._jobs[job_id] = threading.Event()
            return self._jobs[job_id]

    def next(self) -> str | None:
        with self._lock:
            if not self._jobs:
                return None
            self._turn += 1
            ids = list(self._jobs)
            return ids[self._turn % len(ids)]

    def ended(self, job_id: str) -> bool:
        """True for the first caller to see ``job_id`` end."""
        with self._lock:
            event = self._jobs.pop(job_id, None)
        if event is None:
            return False
        event.set()
        return True


class Soak:
    """The server's RSS and CPU time each time another tenth of the jobs has ended."""

    def __init__(self, pid: int, jobs: int) -> None:
        self._pid = pid
        self._lock = threading.Lock()
        self._done = 0
        self._marks = [max(1, round(jobs * tenth / 10)) for tenth in range(1, 11)]
        self.samples: list[dict] = []
        self._started = time.perf_counter()

    def job_ended(self) -> None:
        with self._lock:
            self._done += 1
            while self._marks and self._done >= self._marks[0]:
                self._marks.pop(0)
                self.samples.append({
                    "jobs": self._done,
                    "rss_mib": memory_kib(self._pid)["VmRSS"] / 1024,
                    "cpu_seconds": cpu_seconds(self._pid),
                    "seconds": time.perf_counter() - self._started,
                })  # fmt: skip


def jobs_in_service(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]


def metric_total(base_url: str, pattern: str) -> float:
    """The sum of the /metrics samples whose line matches ``pattern``."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if re.match(pattern, line))


def run_load(client: ApiClient, url: str, jobs: int, concurrency: int, poll_rate: float, soak: Soak, tally: Tally) -> float:
    """Submit ``jobs`` jobs and wait for all; the seconds from the first request to the last end seen."""
    in_flight = InFlight()
    next_index = itertools.count()
    all_ended = threading.Event()
    run_id = uuid.uuid4().hex[:8]

    def submitter() -> None:
        for index in iter(lambda: next(next_index), None):
            if index >= jobs:
                return
            start, end = clip_range(index)
            body = {"sourceUrl": url, "start": start, "end": end}
            headers = {"Idempotency-Key": f"load-{run_id}-{index}"}
            created = client.call("POST", "/api/jobs", body, headers)
            tally.saw("POST /api/jobs", created.status, (202,))
            if created.status != 202:
                continue
            job_id = created.body["id"]
            done = in_flight.add(job_id)
            replay = client.call("POST", "/api/jobs", body, headers)
            tally.saw("POST /api/jobs (replay)", replay.status, (200, 202))
            with tally.lock:
                tally.ids.append(job_id)
                if replay.body.get("id") != job_id:
                    tally.replay_mismatches.append(f"{job_id} -> {replay.body.get('id')}")
            if not done.wait(timeout=900):
                with tally.lock:
                    tally.unexpected.append(f"job {job_id} not seen ending in 900 s")

    def poller(ticks: itertools.count, started: float) -> None:
        last_seen: str | None = None
        while not all_ended.is_set():
            with tick_lock:
                tick = next(ticks)
            time.sleep(max(0.0, started + tick / poll_rate - time.perf_counter()))
            job_id = in_flight.next() or last_seen
            if job_id is None:
                continue
            last_seen = job_id
            reply = client.call("GET", f"/api/jobs/{job_id}")
            tally.saw("GET /api/jobs/{id}", reply.status, (200,))
            with tally.lock:
                tally.status_seconds.append(reply.seconds)
            if reply.status == 200 and reply.body["status"] in _ENDED and in_flight.ended(job_id):
                with tally.lock:
                    tally.final[job_id] = reply.body["status"]
                soak.job_ended()

    tick_lock = threading.Lock()
    started = time.perf_counter()
    # Several pollers keep the rate steady while single reads are slow under load.
    ticks = itertools.count()
    pollers = [threading.Thread(target=poller, args=(ticks, started), daemon=True) for _ in range(4)]
    submitters = [threading.Thread(target=submitter, daemon=True) for _ in range(concurrency)]
    for thread in (*pollers, *submitters):
        thread.start()
    for thread in submitters:
        thread.join()
    elapsed = time.perf_counter() - started
    all_ended.set()
    for thread in pollers:
        thread.join()
    return elapsed


def _error_summary(line: str) -> str:
    """One logged error as its message, function and the end of its traceback: where it went wrong."""
    try:
        record = json.loads(line)
    except ValueError:
        return line[:400]
    trace = str(record.get("exception", "")).strip().splitlines()[-3:]
    return f"{record.get('message')} in {record.get('functionName')}: " + " | ".join(part.strip() for part in trace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100, help="jobs in the load phase (1000 for a soak)")
    parser.add_argument("--concurrency", type=int, default=8, help="jobs in flight at most")
    parser.add_argument("--poll-rate", type=float, default=20.0, help="status reads per second")
    parser.add_argument("--size", default="320x180", help="the sample's picture size")
    parser.add_argument("--summary-json", type=Path, help="also write the summary rows here, for report.py")
    args = parser.parse_args()

    ffmpeg = find_ffmpeg(None)
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    tally = Tally()
    try:
        make_sample_video(ffmpeg, work / "www" / "sample.mp4", seconds=SAMPLE_SECONDS, size=args.size)
        with MediaServer(work / "www") as media, ServeProcess(work / "data", {}) as server:
            url = media.url("sample.mp4")
            client = server.client()
            started_rss = memory_kib(server.pid)["VmRSS"] / 1024

            def one_job(index: int) -> float:
                start, end = clip_range(index)
                began = time.perf_counter()
                created = client.call("POST", "/api/jobs", {"sourceUrl": url, "start": start, "end": end})
                tally.saw("POST /api/jobs", created.status, (202,))
                if created.status != 202:
                    raise SystemExit(f"POST /api/jobs: {created.status} {created.body}")
                tally.ids.append(created.body["id"])
                job = wait_for_job(client, created.body["id"], timeout=300, interval=0.05)
                tally.final[job["id"]] = job["status"]
                return time.perf_counter() - began

            one_job(0)
            warm_rss = memory_kib(server.pid)["VmRSS"] / 1024
            serial = statistics.median(one_job(index) for index in range(1, SERIAL_JOBS + 1))
            idle = [client.call("GET", f"/api/jobs/{tally.ids[-1]}").seconds for _ in range(50)]
            print(f"serial: median {serial:.2f} s per job; idle status read p50 {percentile(idle, 0.5) * 1000:.1f} ms",
                  flush=True)  # fmt: skip

            soak = Soak(server.pid, args.jobs)
            seconds = run_load(client, url, args.jobs, args.concurrency, args.poll_rate, soak, tally)
            memory = memory_kib(server.pid)
            held = jobs_in_service(server.data_dir / "clipline.sqlite3")
            created_metric = metric_total(server.base_url, r"clipline_jobs_created_total ")
            server_error_metric = metric_total(server.base_url, r'clipline_api_requests_total\{.*status_class="5xx"')
    finally:
        log = work / "data" / "serve.log"
        # The data dir goes below; keep what the server said went wrong.
        logged_errors = [_error_summary(line) for line in log.read_text(errors="replace").splitlines()
                         if '"level":"ERROR"' in line or "Traceback" in line] if log.exists() else []  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)

    load_ids = tally.ids[SERIAL_JOBS + 1 :]
    failures = []
    not_succeeded = {job: status for job, status in tally.final.items() if status != "succeeded"}
    if len(tally.final) != len(tally.ids) or not_succeeded:
        failures.append(f"{len(tally.ids) - len(tally.final)} jobs not seen ending, {len(not_succeeded)} not succeeded")
    if tally.server_errors or server_error_metric:
        failures.append(f"5xx: {tally.server_errors[:5]} (the service counted {server_error_metric:g})")
    if tally.unexpected:
        failures.append(f"unexpected: {tally.unexpected[:5]}")
    if len(set(tally.ids)) != len(tally.ids):
        failures.append("duplicate job ids")
    if tally.replay_mismatches:
        failures.append(f"replays naming another job: {tally.replay_mismatches[:5]}")
    if held != len(tally.ids) or created_metric != len(tally.ids):
        failures.append(f"submitted {len(tally.ids)}, the service holds {held} and counted {created_metric:g} created")

    rate = len(load_ids) / seconds * 60
    serial_rate = 60 / serial
    p50, p99 = percentile(tally.status_seconds, 0.5) * 1000, percentile(tally.status_seconds, 0.99) * 1000
    idle_p50 = percentile(idle, 0.5) * 1000
    peak = memory["VmHWM"] / 1024
    series = [sample["rss_mib"] for sample in soak.samples]
    change = growth(series)
    jobs_between = soak.samples[-1]["jobs"] - soak.samples[0]["jobs"]
    per_100 = (series[-1] - series[0]) / jobs_between * 100 if jobs_between else 0.0
    flat = change <= FLAT_GROWTH
    verdict = "flat" if flat else f"grows about {per_100:.1f} MiB per 100 jobs"
    try:
        late_kib_per_job = second_half_kib_per_job([sample["jobs"] for sample in soak.samples], series)
        verdict += f"; over the second half {late_kib_per_job:+.2f} KiB a job"
    except ValueError:  # too few jobs to have a second half
        late_kib_per_job = None

    print(f"\nload: {len(load_ids)} jobs of 1-2 s ({args.size}), {args.concurrency} in flight at most, "
          f"status read {args.poll_rate:g}/s")  # fmt: skip
    print(f"  wall time {seconds:.1f} s: {rate:.1f} jobs/min; one at a time {serial_rate:.1f} jobs/min "
          f"(ratio {rate / serial_rate:.2f})")  # fmt: skip
    print(f"  status reads: {len(tally.status_seconds)}, p50 {p50:.1f} ms, p99 {p99:.1f} ms "
          f"(idle p50 {idle_p50:.1f} ms)")  # fmt: skip
    print(f"  server RSS: at start {started_rss:.0f} MiB, after warm-up {warm_rss:.0f} MiB, "
          f"now {memory['VmRSS'] / 1024:.0f} MiB, peak (VmHWM) {peak:.0f} MiB")  # fmt: skip
    print(f"  responses {tally.responses}, 5xx {len(tally.server_errors)}, jobs held by the service {held}, "
          f"submitted {len(tally.ids)}, unique ids {len(set(tally.ids))}, replay mismatches {len(tally.replay_mismatches)}")
    print("\n  tenth  jobs ended  RSS MiB  server CPU s  jobs/min in the tenth")
    previous = {"jobs": 0, "cpu_seconds": soak.samples[0]["cpu_seconds"], "seconds": 0.0}
    for tenth, sample in enumerate(soak.samples, 1):
        window = sample["seconds"] - previous["seconds"]
        sample["cpu_in_tenth"] = sample["cpu_seconds"] - previous["cpu_seconds"] if tenth > 1 else None
        sample["jobs_per_minute"] = (sample["jobs"] - previous["jobs"]) / window * 60 if window else 0.0
        cpu = f"{sample['cpu_in_tenth']:12.1f}" if tenth > 1 else f"{'-':>12}"
        print(f"  {tenth:5d}  {sample['jobs']:10d}  {sample['rss_mib']:7.1f}  {cpu}  {sample['jobs_per_minute']:10.1f}")
        previous = sample
    print(f"  RSS from the first tenth to the last: {series[-1] - series[0]:+.1f} MiB ({change * 100:+.1f} %): {verdict}")
    for failure in failures:
        print(f"FAILED: {failure}")
    if failures and logged_errors:
        print("the server's log, errors (last 10):", *logged_errors[-10:], sep="\n  ")
    checks = "all succeeded, 0 5xx, ids unique, replays same id, service holds every job" if not failures else "FAILED: " + "; ".join(failures)

    write_summary(args.summary_json, [
        Row("load: throughput", f"{rate:.0f} jobs/min ({len(load_ids)} jobs of 1-2 s, {args.concurrency} in flight)",
            f"one job at a time: {serial_rate:.0f} jobs/min ({serial:.2f} s each, median of {SERIAL_JOBS})",
            f"{rate / serial_rate:.2f}", checks),
        Row("load: status latency", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(tally.status_seconds)} reads at "
            f"{args.poll_rate:g}/s)", f"idle p50 {idle_p50:.1f} ms (50 reads)", f"{p50 / idle_p50:.2f} (p50)",
            "status reads during the load above"),
        Row("load: server memory", f"peak RSS {peak:.0f} MiB", f"after the warm-up job {warm_rss:.0f} MiB",
            f"{peak / warm_rss:.2f}", f"RSS {series[0]:.0f} to {series[-1]:.0f} MiB from the first to the last tenth "
            f"of {len(load_ids)} jobs ({change * 100:+.1f} %): {verdict}",
            extra={"jobs": len(load_ids), "series": soak.samples, "growth": change, "per_100_jobs_mib": per_100,
                   "flat": flat, "second_half_kib_per_job": late_kib_per_job, "started_rss_mib": started_rss,
                   "warm_rss_mib": warm_rss, "peak_mib": peak, "seconds": seconds, "jobs_per_minute": rate}),
    ])  # fmt: skip
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
