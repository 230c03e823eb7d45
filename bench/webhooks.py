"""Webhooks on local mode: how soon a job's end reaches a receiver, and a burst of events through the outbox.

Runs local mode in this process (LocalService, as the tests start it) with private
sources allowed, so a loopback receiver is too, and a key on a large plan. The
receiver is an HTTP server in this process that answers every POST 204 and notes
when each one arrived; the service, the receiver and the clients share one process.
- latency: --jobs clip jobs of 1-2 s, each created with a webhookUrl, at most
  --concurrency in flight. A job's latency is the event's arrival minus its
  ``timestamp`` (when the job ended). The baseline, on the same jobs, is the client
  docs/api.md describes without webhooks: wait Retry-After (2 s), then poll
  GET /api/jobs/{id} every 2 s (--poll-seconds); its lag is when the first answer
  showing the job ended came back, minus the same timestamp.
- burst: --burst jobs are created and failed through the service's job store with
  fail_job, the use case every failing job ends through, so each one's outbox row is
  written in the transaction that ends it. Then WebhookWorkers on the service's own
  Services graph (its HTTP sender, SQLite secrets and job store) drain them, timed
  from their start to the last arrival: --workers threads, against one worker as the
  baseline. For scale, the same number of plain POSTs from one thread, with no outbox.

Every event's signature is checked with the standardwebhooks library against the
key's secret. Exits 1 if an event was lost, duplicated or badly signed, or a job did
not succeed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# A log line per delivery and a metric line per data point would bury the figures;
# `clipline serve` writes them to its log, which this in-process service has not.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ApiClient, Row, percentile, wait_for_job, write_summary  # noqa: E402

from clipline.composition import SystemClock, services as installed_services  # noqa: E402
from clipline.domain.errors import SourceUnreachableError  # noqa: E402
from clipline.domain.jobs import ClipRequest, new_job  # noqa: E402
from clipline.domain.rate_limits import UsagePlan  # noqa: E402
from clipline.domain.use_cases import Services, fail_job  # noqa: E402
from clipline.local.media_server import MediaServer  # noqa: E402
from clipline.local.sample_media import make_sample_video  # noqa: E402
from clipline.local.service import LocalService  # noqa: E402
from clipline.local.webhook_worker import WebhookWorkers  # noqa: E402
from clipline.media.ffmpeg_binary import find_ffmpeg  # noqa: E402
from clipline.settings import Settings  # noqa: E402

SAMPLE_SECONDS = 30
# The bench polls and creates far faster than a default key allows.
LARGE_PLAN = UsagePlan(rate_per_second=1000, burst=1000, quota=10**9, quota_period="day")
ROUND_TRIPS = 20


@dataclass(frozen=True)
class Arrival:
    at: float  # wall-clock seconds, comparable with an event's timestamp
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on loopback that answers every POST 204 and keeps it with the time it arrived."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                arrival = Arrival(time.time(), {name.lower(): value for name, value in self.headers.items()}, body)
                # Kept before the answer, so a delivery the sender records is one the receiver has.
                with receiver._arrived:
                    receiver.arrivals.append(arrival)
                    receiver._arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.arrivals) >= count, timeout)

    def __enter__(self) -> "Receiver":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def badly_signed(arrivals: list[Arrival], secret: str) -> int:
    """How many of ``arrivals`` a Standard Webhooks verifier with ``secret`` refuses."""
    verifier = Webhook(secret)
    refused = 0
    for arrival in arrivals:
        try:
            verifier.verify(arrival.body, arrival.headers)
        except WebhookVerificationError:
            refused += 1
    return refused


def ended_at(arrival: Arrival) -> float:
    return datetime.fromisoformat(arrival.event["timestamp"]).timestamp()


def clip_body(index: int, media_url: str, webhook_url: str) -> dict:
    """Job ``index``'s request: a 1.0-1.9 s clip, spread over the sample and off the keyframe grid."""
    start = round(0.3 + (index * 1.7) % (SAMPLE_SECONDS - 3), 3)
    return {"sourceUrl": media_url, "start": start, "end": round(start + 1.0 + (index % 10) / 10, 3),
            "webhookUrl": webhook_url}  # fmt: skip


def seen_by_polling(client: ApiClient, body: dict, poll_seconds: float) -> tuple[str, str, float]:
    """Create a job and poll it as a client without webhooks would: its id, final status and when its end was seen."""
    created = client.call("POST", "/api/jobs", body)
    if created.status != 202:
        raise SystemExit(f"POST /api/jobs: {created.status} {created.body}")
    # The first poll comes one interval in, as the 202's Retry-After (2 s) asks.
    time.sleep(poll_seconds)
    job = wait_for_job(client, created.body["id"], timeout=300, interval=poll_seconds)
    return job["id"], job["status"], time.time()


@dataclass
class Burst:
    workers: int
    seconds: float
    received: int
    distinct: int
    lost: int
    badly_signed: int
    outbox_emptied: bool

    @property
    def rate(self) -> float:
        return self.distinct / self.seconds

    @property
    def duplicated(self) -> int:
        return self.received - self.distinct

    @property
    def sound(self) -> bool:
        return not (self.lost or self.duplicated or self.badly_signed) and self.outbox_emptied

    def line(self) -> str:
        label = f"{self.workers} worker{'s' if self.workers > 1 else ''}"
        return (f"  {label:9} {self.seconds:6.2f} s, {self.rate:6.0f} events/s; received {self.received}, "
                f"distinct webhook-id {self.distinct}, lost {self.lost}, duplicated {self.duplicated}, "
                f"badly signed {self.badly_signed}, outbox emptied {'yes' if self.outbox_emptied else 'NO'}")  # fmt: skip


def ended_jobs_with_due_webhooks(services: Services, owner: str, webhook_url: str, count: int) -> set[str]:
    """``count`` jobs of ``owner``'s ended by fail_job, each leaving its message in the outbox; their message ids."""
    request = ClipRequest(source_url="https://example.com/a.mp4", start_seconds=1, end_seconds=2)
    message_ids = set()
    for _ in range(count):
        job = new_job(request, owner, "bench", services.clock.now(), services.limits.retention, webhook_url)
        services.jobs.create(job)
        ended = fail_job(services, job.id, SourceUnreachableError.__name__, "ended by the benchmark").job
        message_ids.add(ended.webhook.message_id)
    return message_ids


def run_burst(service: LocalService, services: Services, owner: str, secret: str, count: int, workers: int) -> Burst:
    with Receiver() as receiver:
        expected = ended_jobs_with_due_webhooks(services, owner, receiver.url, count)
        drain = WebhookWorkers(service.data.webhook_outbox(), workers)
        started = time.time()
        drain.start(services)
        receiver.wait_for(count, timeout=max(60.0, count / 10))
        # Joined before counting, so a duplicate still on its way is counted too.
        drain.stop()
        arrivals = list(receiver.arrivals)
    ids = [arrival.headers.get("webhook-id") for arrival in arrivals]
    last = max((arrival.at for arrival in arrivals), default=time.time())
    return Burst(
        workers, last - started, len(ids), len(set(ids)), len(expected - set(ids)),
        badly_signed(arrivals, secret), service.data.webhook_outbox().next_due() is None,
    )  # fmt: skip


def plain_posts_per_second(count: int, body: bytes) -> float:
    """POSTs of ``body`` from one thread, a new connection each as the sender makes, to a fresh receiver."""
    with Receiver() as receiver:
        started = time.time()
        for _ in range(count):
            request = urllib.request.Request(
                receiver.url, data=body, headers={"content-type": "application/json"}, method="POST"
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
        return count / (receiver.arrivals[-1].at - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30, help="clip jobs whose delivery latency is measured")
    parser.add_argument("--concurrency", type=int, default=3, help="of those jobs, in flight at most")
    parser.add_argument("--poll-seconds", type=float, default=2.0,
                        help="the baseline client's poll interval (docs/api.md: 2 s)")  # fmt: skip
    parser.add_argument("--burst", type=int, default=1000, help="events sent through the outbox at once")
    parser.add_argument("--workers", type=int, default=Settings.model_fields["webhook_workers"].default,
                        help="delivery threads (the service's default); the baseline has one")  # fmt: skip
    parser.add_argument("--size", default="320x180", help="the sample's picture size")
    parser.add_argument("--summary-json", type=Path, help="also write the summary rows here, for report.py")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    try:
        make_sample_video(find_ffmpeg(None), work / "www" / "sample.mp4", seconds=SAMPLE_SECONDS, size=args.size)
        settings = Settings(
            data_dir=work / "data", allow_private_sources=True, webhook_workers=args.workers,
            job_creations_per_ip_per_minute=1_000_000,
        )  # fmt: skip
        with MediaServer(work / "www") as media, LocalService(settings, port=0) as service, Receiver() as receiver:
            owner, key = service.data.key_store(SystemClock()).create("bench", LARGE_PLAN)
            secret = service.data.webhook_secrets(SystemClock()).secret_for(owner)
            client = ApiClient(service.base_url, key)
            bodies = [clip_body(index, media.url("sample.mp4"), receiver.url) for index in range(args.jobs)]
            print(f"latency: {args.jobs} clip jobs, each with a webhook and a polling client...", flush=True)
            with ThreadPoolExecutor(args.concurrency) as pool:
                polled = list(pool.map(lambda body: seen_by_polling(client, body, args.poll_seconds), bodies))
            receiver.wait_for(args.jobs, timeout=30)
            events = list(receiver.arrivals)
            if not events:
                raise SystemExit(f"no webhook of the {args.jobs} jobs arrived")
            round_trips = [client.call("GET", f"/api/jobs/{polled[0][0]}").seconds for _ in range(ROUND_TRIPS)]

            # The service's own workers would send the burst's messages while they are being written.
            service.webhooks.stop()
            services = installed_services()
            print(f"burst: {args.burst} events with 1 worker, then {args.workers}...", flush=True)
            bursts = [run_burst(service, services, owner, secret, args.burst, workers) for workers in (1, args.workers)]
            plain_rate = plain_posts_per_second(args.burst, events[0].body)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    failures = []
    not_succeeded = [job_id for job_id, status, _ in polled if status != "succeeded"]
    if not_succeeded:
        failures.append(f"{len(not_succeeded)} jobs did not succeed: {not_succeeded[:3]}")
    by_job = {arrival.event["data"]["id"]: arrival for arrival in events}
    missing = [job_id for job_id, _, _ in polled if job_id not in by_job]
    if missing or len(events) != args.jobs:
        failures.append(f"{args.jobs} jobs, {len(events)} events, {len(missing)} jobs without one")
    webhook_ms = [(arrival.at - ended_at(arrival)) * 1000 for arrival in by_job.values()]
    polling_ms = [(seen - ended_at(by_job[job_id])) * 1000 for job_id, _, seen in polled if job_id in by_job]
    latency_refused = badly_signed(events, secret)
    one, many = bursts
    for burst in bursts:
        if not burst.sound:
            failures.append(f"burst with {burst.workers} workers: {burst.line().strip()}")
    if latency_refused:
        failures.append(f"{latency_refused} of the latency jobs' events badly signed")

    hook_p50, hook_p99 = percentile(webhook_ms, 0.5), percentile(webhook_ms, 0.99)
    poll_p50, poll_p99 = percentile(polling_ms, 0.5), percentile(polling_ms, 0.99)
    round_trip_ms = statistics.median(round_trips) * 1000
    signed = len(events) + sum(burst.received for burst in bursts)
    refused = latency_refused + sum(burst.badly_signed for burst in bursts)
    print(f"\nlatency: {args.jobs} clip jobs of 1-2 s ({args.size}), {args.concurrency} in flight, "
          f"each with a webhookUrl on loopback")  # fmt: skip
    print(f"  webhook, job end to arrival:                          p50 {hook_p50:7.1f} ms, p99 {hook_p99:7.1f} ms")
    print(f"  polling every {args.poll_seconds:g} s, job end to the poll that sees it: "
          f"p50 {poll_p50:7.1f} ms, p99 {poll_p99:7.1f} ms")  # fmt: skip
    print(f"  ratio polling/webhook: {poll_p50 / hook_p50:.0f} (p50), {poll_p99 / hook_p99:.0f} (p99); "
          f"one GET /api/jobs/{{id}} round trip: median {round_trip_ms:.1f} ms of {ROUND_TRIPS}")  # fmt: skip
    print(f"\nburst: {args.burst} ended jobs' events through the outbox to a receiver on loopback")
    for burst in bursts:
        print(burst.line())
    print(f"  ratio {many.workers} workers/1 worker: {many.rate / one.rate:.2f}")
    print(f"  plain POSTs from one thread, no outbox: {plain_rate:.0f} events/s "
          f"(the outbox with {many.workers} workers reaches {many.rate / plain_rate:.2f} of it)")  # fmt: skip
    print(f"\nsignatures: {signed - refused} of {signed} events verified with standardwebhooks")
    for failure in failures:
        print(f"FAILED: {failure}")

    checks = f"{signed - refused} of {signed} signatures verified"
    write_summary(args.summary_json, [
        Row("webhooks: delivery latency",
            f"job end to arrival p50 {hook_p50:.1f} ms, p99 {hook_p99:.1f} ms ({args.jobs} clip jobs, "
            f"{args.concurrency} in flight)",
            f"polling GET /api/jobs/{{id}} every {args.poll_seconds:g} s (docs/api.md: 2 s), job end to the poll "
            f"that sees it: p50 {poll_p50:.0f} ms, p99 {poll_p99:.0f} ms", f"{poll_p50 / hook_p50:.0f} (p50, polling/webhook)",
            f"one GET round trip {round_trip_ms:.1f} ms; {checks}"),
        Row("webhooks: burst",
            f"{many.rate:.0f} events/s ({args.burst} events through the outbox, {many.workers} workers)",
            f"1 worker: {one.rate:.0f} events/s", f"{many.rate / one.rate:.2f}",
            f"lost {many.lost + one.lost}, duplicated {many.duplicated + one.duplicated}; plain POSTs from one "
            f"thread, no outbox: {plain_rate:.0f}/s" + ("" if not failures else "; FAILED: " + "; ".join(failures))),
    ])  # fmt: skip
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
