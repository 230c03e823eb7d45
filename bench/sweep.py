"""Time of one cleanup sweep over a data dir, as the number of jobs it keeps grows.

`clipline serve` sweeps every few minutes (and `clipline cleanup` on demand) over a
data dir that holds every job of the retention period, so a sweep must cost what
it removes, not what is kept. Seeds a data dir, through the stores, with --jobs
live jobs (each with its idempotency claim, a clip file and an execution history of
--history-kib) and one expired job, then times alternately:
- sweep: the pass local mode runs (local.service.sweep), which finds and removes the
  expired job and finds no orphan
- listing: listing the kept artifact files, the least any search for orphaned
  files must do, as the baseline

Prints the median of each at --jobs and at a tenth of them, so the growth with the
jobs kept shows, and the sweep's ratio to the listing. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, write_summary  # noqa: E402

from clipline.domain.cleanup import JOBS_PREFIX  # noqa: E402
from clipline.domain.jobs import ClipRequest, new_job  # noqa: E402
from clipline.domain.ports import IdempotencyClaim  # noqa: E402
from clipline.domain.use_cases import artifact_key  # noqa: E402
from clipline.local.service import DataDir, cleanup_services, sweep  # noqa: E402
from clipline.settings import Settings  # noqa: E402

# Within the service's retention, so these jobs are kept.
KEPT = timedelta(days=1)


class SeededDataDir:
    """A data dir with live jobs, their claims, files and execution histories, as `clipline cleanup` opens it."""

    def __init__(self, root: Path, history_kib: int) -> None:
        settings = Settings(data_dir=root)
        # The stores `clipline cleanup` opens.
        self.services = cleanup_services(settings)
        self.clock = self.services.clock
        self.archive = DataDir.of(settings).execution_archive(self.clock)
        # One event's worth of a real history: a state's entry or exit, with its input or output.
        event = {"type": "TaskStateExited", "timestamp": "", "stateExitedEventDetails": {"output": "x" * 200}}
        self.events = [{**event, "id": number} for number in range(max(1, history_kib * 1024 // 280))]
        self.kept = 0

    def add_jobs(self, count: int, retention: timedelta = KEPT) -> None:
        request = ClipRequest(source_url="https://example.com/a.mp4", start_seconds=1, end_seconds=3)
        for _ in range(count):
            now = self.clock.now()
            job = new_job(request, owner="bench", correlation_id="bench", now=now, retention=retention)
            claim = IdempotencyClaim("bench", job.id, "hash", now + timedelta(days=1))
            self.services.jobs.create(job, claim)
            self.services.artifacts.put_bytes(artifact_key(job.id, "clip.mp4"), b"\0" * 1024, "video/mp4")
            described = {"executionArn": f"arn:aws:states:us-east-1:1:execution:bench:{job.id}", "status": "SUCCEEDED"}
            self.archive.save(job.id, described, self.events)
        if retention == KEPT:
            self.kept += count

    def time_sweep(self) -> float:
        """Seconds of one sweep that removes one job, which expired a moment before it."""
        self.add_jobs(1, retention=timedelta(milliseconds=1))
        time.sleep(0.01)
        started = time.perf_counter()
        report, histories = sweep(self.services, self.archive)
        seconds = time.perf_counter() - started
        assert len(report.expired_jobs) == len(histories) == 1 and not report.orphaned_keys, (report, histories)
        return seconds

    def time_listing(self) -> float:
        started = time.perf_counter()
        listed = self.services.artifacts.list_keys(JOBS_PREFIX)
        seconds = time.perf_counter() - started
        assert len(listed) == self.kept
        return seconds


def measure(seeded: SeededDataDir, repetitions: int) -> tuple[float, float]:
    """Median seconds of a sweep and of the listing, taken alternately."""
    sweeps, listings = [], []
    for _ in range(repetitions):
        sweeps.append(seeded.time_sweep())
        listings.append(seeded.time_listing())
    return statistics.median(sweeps), statistics.median(listings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs kept at the second measurement")
    parser.add_argument("--history-kib", type=int, default=11, help="an execution history's size (a clip job's is ~11)")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--summary-json", type=Path, help="also write the summary row here, for report.py")
    args = parser.parse_args()
    # Each sweep counts what it deleted; the metrics would be printed between the figures.
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as scratch:
        seeded = SeededDataDir(Path(scratch), args.history_kib)
        figures = {}
        for kept in (args.jobs // 10, args.jobs):
            started = time.perf_counter()
            seeded.add_jobs(kept - seeded.kept)
            print(f"seeded {kept} jobs in {time.perf_counter() - started:.0f} s", flush=True)
            figures[kept] = measure(seeded, args.repetitions)
            sweep_s, listing_s = figures[kept]
            print(f"{kept:6d} jobs kept: sweep {sweep_s * 1000:8.1f} ms  listing {listing_s * 1000:7.1f} ms", flush=True)

    (small_sweep, _), (large_sweep, large_listing) = figures[args.jobs // 10], figures[args.jobs]
    growth = large_sweep / small_sweep
    ratio = large_sweep / large_listing
    print(f"10x the jobs kept: sweep x{growth:.1f}; sweep / listing at {args.jobs} jobs: {ratio:.1f}")
    write_summary(args.summary_json, [
        Row(
            "cleanup sweep", f"{large_sweep * 1000:.0f} ms with {args.jobs} jobs kept",
            f"listing their files: {large_listing * 1000:.0f} ms", f"{ratio:.1f}",
            f"{small_sweep * 1000:.0f} ms with {args.jobs // 10} kept (x{growth:.1f} for 10x the jobs); "
            f"median of {args.repetitions}",
            extra={"sweep_seconds": figures, "growth": growth},
        )
    ])  # fmt: skip


if __name__ == "__main__":
    main()
