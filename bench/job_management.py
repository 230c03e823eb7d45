"""Job management on local mode: listing many jobs, uploading a file, cancelling a running cut, whisper in a child.

Runs local mode in this process (LocalService, as the tests start it), with a key on a
large plan. Each figure has a baseline measured in the same run:
- listing: --jobs jobs of one owner, stored as the API stores them, read back 100 a page
  through GET /api/jobs until nextCursor is null; every job must come once, newest first.
  Baseline: one GET /api/jobs/{id} round trip.
- upload: a --upload-mib file through POST /api/uploads and its signed PUT to the gateway,
  which streams it to the data dir. Baseline: copying the same file on the same disk.
- cancel: --cancels jobs cut from a source that trickles, each cancelled in its clip stage;
  the time from the DELETE until the service has no ffmpeg child and no scratch folder.
  Baseline: a DELETE that finds nothing left to stop (its round trip).
- whisper: with an offline model, the same speech transcribed warm in this process and in
  the killable child process local mode now uses; ratio child/in-process.

Exits 1 if a listing misses or repeats a job, an upload is not stored whole, or a cancel
leaves work behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ApiClient, Row, offline_whisper_model, percentile, write_summary  # noqa: E402

from clipline.adapters.local.sqlite_job_repository import SqliteJobRepository  # noqa: E402
from clipline.composition import SystemClock  # noqa: E402
from clipline.domain.jobs import ClipRequest, new_job  # noqa: E402
from clipline.domain.rate_limits import UsagePlan  # noqa: E402
from clipline.local.media_server import MediaServer  # noqa: E402
from clipline.local.sample_media import make_sample_video  # noqa: E402
from clipline.local.service import LocalService  # noqa: E402
from clipline.media.ffmpeg_binary import find_ffmpeg  # noqa: E402
from clipline.settings import Settings  # noqa: E402

LARGE_PLAN = UsagePlan(rate_per_second=1000, burst=1000, quota=10**9, quota_period="day")
# Past a faststart file's header (what the probe reads), the source trickles, so a cut is still running when cancelled.
FAST_HEAD_BYTES = 256 * 1024
TRICKLE_BYTES_PER_SECOND = 200 * 1024


def ffmpeg_children() -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                name, _, rest = (entry / "stat").read_text().partition(") ")
            except OSError:
                continue
            if "ffmpeg" in name and int(rest.split()[1]) == os.getpid() and rest.split()[0] != "Z":
                count += 1
    return count


def timed(call) -> float:  # noqa: ANN001 - any zero-argument call
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def bench_listing(service: LocalService, client: ApiClient, owner: str, count: int) -> tuple[list[float], float, list[str]]:
    repository = SqliteJobRepository(service.data.database, SystemClock().now)
    request = ClipRequest(source_url="https://example.com/a.mp4", start_seconds=1, end_seconds=2)
    now = SystemClock().now()
    stored = [
        repository.create(new_job(request, owner, "bench", now - timedelta(milliseconds=count - n), timedelta(days=1))).id
        for n in range(count)
    ]
    pages, seen, cursor = [], [], None
    while True:
        started = time.perf_counter()
        reply = client.call("GET", "/api/jobs?limit=100" + (f"&cursor={cursor}" if cursor else ""))
        pages.append(time.perf_counter() - started)
        seen.extend(job["id"] for job in reply.body["jobs"])
        cursor = reply.body["nextCursor"]
        if cursor is None:
            break
    one = statistics.median(timed(lambda: client.call("GET", f"/api/jobs/{stored[0]}")) for _ in range(20))
    failures = [] if seen == list(reversed(stored)) else [f"listing saw {len(seen)} jobs, {len(set(seen))} distinct, of {count}"]
    return pages, one, failures


def bench_upload(service: LocalService, client: ApiClient, work: Path, mib: int) -> tuple[float, float, list[str]]:
    source = work / "upload.bin"
    with source.open("wb") as file:
        for _ in range(mib):
            file.write(os.urandom(1024 * 1024))
    size = source.stat().st_size
    link = client.call("POST", "/api/uploads", {"fileName": "big.mp4", "contentType": "video/mp4", "sizeBytes": size}).body

    def put() -> None:
        with source.open("rb") as body:
            request = urllib.request.Request(link["url"], data=body, method="PUT", headers=link["headers"])
            urllib.request.urlopen(request, timeout=300).read()

    upload_seconds = timed(put)
    copy_seconds = timed(lambda: shutil.copyfile(source, work / "copy.bin"))
    stored = service.data.artifacts / link["sourceKey"]
    failures = [] if stored.stat().st_size == size else [f"the upload stored {stored.stat().st_size} of {size} bytes"]
    return size / upload_seconds, size / copy_seconds, failures


def bench_cancel(service: LocalService, client: ApiClient, source_url: str, work_dir: Path, count: int):
    quiet, failures = [], []
    for _ in range(count):
        job_id = client.call("POST", "/api/jobs", {"sourceUrl": source_url, "start": 10, "end": 70}).body["id"]
        deadline = time.monotonic() + 60
        while client.call("GET", f"/api/jobs/{job_id}").body["stage"] != "clip" or not ffmpeg_children():
            if time.monotonic() > deadline:
                raise SystemExit(f"job {job_id} never started cutting")
            time.sleep(0.05)
        started = time.perf_counter()
        if client.call("DELETE", f"/api/jobs/{job_id}").status != 202:
            failures.append(f"job {job_id} was not cancelled")
        while ffmpeg_children() or any(job_id in path.name for path in work_dir.iterdir()):
            if time.perf_counter() - started > 10:
                failures.append(f"job {job_id} left work behind 10 s after its cancel")
                break
            time.sleep(0.01)
        quiet.append(time.perf_counter() - started)
        if any((service.data.artifacts / "jobs" / job_id).glob("*")):
            failures.append(f"job {job_id} kept files after its cancel")
    nothing_left = [timed(lambda: client.call("DELETE", f"/api/jobs/{job_id}")) for _ in range(20)]
    return quiet, statistics.median(nothing_left), failures


def bench_whisper(model: str) -> tuple[float, float]:
    from clipline.asr.whisper import WhisperTranscriber
    from clipline.local.child_transcriber import ChildProcessWhisperTranscriber

    speech = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "speech" / "speech.wav"
    medians = []
    for transcriber in (WhisperTranscriber(model, 2, 600), ChildProcessWhisperTranscriber(model, 2, 600)):
        transcriber.transcribe(speech, "en", lambda _: None)  # warm: the model loaded
        medians.append(statistics.median(timed(lambda: transcriber.transcribe(speech, "en", lambda _: None)) for _ in range(3)))
        if hasattr(transcriber, "close"):
            transcriber.close()
    return medians[0], medians[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs listed")
    parser.add_argument("--upload-mib", type=int, default=256, help="size of the uploaded file")
    parser.add_argument("--cancels", type=int, default=5, help="running cuts cancelled")
    parser.add_argument("--summary-json", type=Path, help="also write the summary rows here, for report.py")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    failures: list[str] = []
    try:
        make_sample_video(find_ffmpeg(None), work / "www" / "long.mp4", seconds=120, size="640x360", keyframe_seconds=2)
        (work / "scratch").mkdir()
        settings = Settings(data_dir=work / "data", allow_private_sources=True, work_dir=work / "scratch",
                            job_creations_per_ip_per_minute=1_000_000)  # fmt: skip
        trickling = MediaServer(work / "www", trickle_after_bytes=FAST_HEAD_BYTES, trickle_bytes_per_second=TRICKLE_BYTES_PER_SECOND)
        with trickling as media, LocalService(settings, port=0) as service:
            owner, key = service.data.key_store(SystemClock()).create("bench", LARGE_PLAN)
            client = ApiClient(service.base_url, key)
            print(f"listing {args.jobs} jobs...", flush=True)
            pages, one_read, problems = bench_listing(service, client, owner, args.jobs)
            failures += problems
            print(f"uploading {args.upload_mib} MiB...", flush=True)
            upload_rate, copy_rate, problems = bench_upload(service, client, work, args.upload_mib)
            failures += problems
            print(f"cancelling {args.cancels} running cuts...", flush=True)
            quiet, round_trip, problems = bench_cancel(service, client, media.url("long.mp4"), work / "scratch", args.cancels)
            failures += problems
        model = offline_whisper_model()
        whisper = bench_whisper(model) if model else None
    finally:
        shutil.rmtree(work, ignore_errors=True)

    page_p50, page_p99 = percentile(pages, 0.5) * 1000, percentile(pages, 0.99) * 1000
    print(f"\nlisting: {args.jobs} jobs in {len(pages)} pages of 100: page p50 {page_p50:.1f} ms, p99 {page_p99:.1f} ms; "
          f"one GET /api/jobs/{{id}} {one_read * 1000:.1f} ms; ratio page/one job {page_p50 / (one_read * 1000):.1f}")  # fmt: skip
    print(f"upload: {args.upload_mib} MiB through the signed PUT at {upload_rate / 2**20:.0f} MiB/s; "
          f"a file copy on the same disk {copy_rate / 2**20:.0f} MiB/s; ratio {upload_rate / copy_rate:.2f}")  # fmt: skip
    print(f"cancel: {len(quiet)} cuts, DELETE to no ffmpeg and no scratch folder: median {statistics.median(quiet) * 1000:.0f} ms, "
          f"max {max(quiet) * 1000:.0f} ms; a DELETE with nothing to stop {round_trip * 1000:.1f} ms")  # fmt: skip
    rows = [
        Row("jobs: listing", f"page of 100 p50 {page_p50:.1f} ms, p99 {page_p99:.1f} ms ({args.jobs} jobs, {len(pages)} pages)",
            f"one GET /api/jobs/{{id}}: {one_read * 1000:.1f} ms", f"{page_p50 / (one_read * 1000):.1f}",
            "every job once, newest first" if not failures else "; ".join(failures)),
        Row("uploads: signed PUT", f"{upload_rate / 2**20:.0f} MiB/s ({args.upload_mib} MiB to the local gateway)",
            f"file copy on the same disk: {copy_rate / 2**20:.0f} MiB/s", f"{upload_rate / copy_rate:.2f}", ""),
        Row("jobs: cancel", f"DELETE to no ffmpeg and no scratch folder: median {statistics.median(quiet) * 1000:.0f} ms, "
            f"max {max(quiet) * 1000:.0f} ms ({len(quiet)} running cuts)",
            f"a DELETE with nothing to stop: {round_trip * 1000:.1f} ms", f"{statistics.median(quiet) / round_trip:.0f}", ""),
    ]  # fmt: skip
    if whisper:
        in_process, child = whisper
        print(f"whisper: warm transcription in this process {in_process:.2f} s, in a killable child {child:.2f} s; "
              f"ratio {child / in_process:.2f}")  # fmt: skip
        rows.append(Row("ASR: whisper in a child process", f"{child:.2f} s warm (speech fixture)",
                        f"in-process: {in_process:.2f} s", f"{child / in_process:.2f}", "local mode's cancellable worker"))  # fmt: skip
    for failure in failures:
        print(f"FAILED: {failure}")
    write_summary(args.summary_json, rows)
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
