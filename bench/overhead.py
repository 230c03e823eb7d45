"""Service overhead: a clipline job that re-encodes 30 s, end to end, against the plain ffmpeg command doing the same.

The source is MPEG-4 Part 2 video with AAC audio in a faststart MP4, served over HTTP
with Range support. clipline's smart cut only handles H.264, so a frame-accurate job
on it falls back to the full re-encode (fallback reason smart_cut_unsupported_codec),
which is one ffmpeg run with the shared encoder options. The baseline is that same
command line typed by hand: the same ffmpeg binary, the same input seek (10 s of
pre-roll, then an exact seek), the same REENCODE_OPTIONS, straight from the URL.

clipline's side runs as `clipline serve` in a child process: POST the job, poll its
status every 0.1 s until it succeeds. Its time includes the HTTP calls, the pipeline
engine, the probe, the egress proxy the fetch goes through, the clip's check and the
artifact store; the poll interval adds up to 0.1 s. The two sides alternate after one
uncounted warm-up run each, so any drift falls on both alike. Prints each run, the
medians and their ratio. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, ServeProcess, wait_for_job, write_summary  # noqa: E402

from clipline.local.media_server import MediaServer  # noqa: E402
from clipline.media.clip import REENCODE_OPTIONS, REENCODE_PREROLL_SECONDS, VIDEO_CLIP  # noqa: E402
from clipline.media.ffmpeg_binary import find_ffmpeg  # noqa: E402

RATE = 25


def make_mpeg4_source(ffmpeg: str, path: Path, seconds: int, size: str) -> None:
    subprocess.run(
        [
            ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={RATE}",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", str(seconds), "-c:v", "mpeg4", "-q:v", "4", "-g", str(2 * RATE),
            "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(path),
        ],  # fmt: skip
        check=True,
    )


def plain_ffmpeg_command(ffmpeg: str, url: str, start: float, seconds: float, out: Path) -> list[str]:
    """What clipline's re-encode runs, without its network options and proxy: the command a person would type."""
    coarse = max(start - REENCODE_PREROLL_SECONDS, 0.0)
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y",
        "-ss", f"{coarse:.6f}", "-i", url, "-ss", f"{start - coarse:.6f}", "-t", f"{seconds:.6f}",
        *VIDEO_CLIP.stream_maps, *REENCODE_OPTIONS, "-movflags", "+faststart", "-f", "mp4", str(out),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-seconds", type=int, default=60)
    parser.add_argument("--clip-seconds", type=float, default=30)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--rounds", type=int, default=5, help="runs per side, alternating; the medians are reported")
    parser.add_argument("--summary-json", type=Path, help="also write the summary row here, for report.py")
    args = parser.parse_args()

    ffmpeg = find_ffmpeg(None)
    start = round((args.source_seconds - args.clip_seconds) / 2, 3)
    end = start + args.clip_seconds
    timings: dict[str, list[float]] = {"clipline": [], "ffmpeg": []}
    clip_steps: list[float] = []
    work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    try:
        print(f"generating a {args.source_seconds} s {args.size} MPEG-4/AAC source...", flush=True)
        (work / "www").mkdir()
        make_mpeg4_source(ffmpeg, work / "www" / "source.mp4", args.source_seconds, args.size)
        with MediaServer(work / "www") as media, ServeProcess(work / "data", {}) as server:
            url = media.url("source.mp4")
            client = server.client()

            def clipline_way(round_number: int) -> str:
                created = client.call(
                    "POST", "/api/jobs", {"sourceUrl": url, "start": start, "end": end, "accuracy": "frame"}
                )
                if created.status != 202:
                    raise SystemExit(f"POST /api/jobs: {created.status} {created.body}")
                job = wait_for_job(client, created.body["id"], timeout=600)
                if job["status"] != "succeeded":
                    raise SystemExit(f"the job failed: {job.get('error')}")
                clip = job["clip"]
                if clip["method"] != "reencode":
                    raise SystemExit(f"expected a full re-encode, got {clip['method']}")
                step = next(
                    event["durationSeconds"] for event in job["events"]
                    if event.get("state") == "ClipSource" and event.get("durationSeconds") is not None
                )  # fmt: skip
                clip_steps.append(step)
                return f"{clip['method']} ({clip['fallbackReason']}), {clip['durationSeconds']:.2f} s, ClipSource step {step:.2f} s"

            def ffmpeg_way(round_number: int) -> str:
                out = work / f"plain-{round_number}.mp4"
                subprocess.run(plain_ffmpeg_command(ffmpeg, url, start, args.clip_seconds, out), check=True)
                return f"{out.stat().st_size / 1e6:.1f} MB"

            # Round 0 is a warm-up, not counted: the service's first job imports its handlers.
            for round_number in range(args.rounds + 1):
                for label, way in (("clipline", clipline_way), ("ffmpeg", ffmpeg_way)):
                    started = time.perf_counter()
                    result = way(round_number)
                    seconds = time.perf_counter() - started
                    if round_number:
                        timings[label].append(seconds)
                    name = f"round {round_number}" if round_number else "warm-up"
                    print(f"  {name:8} {label:8} {seconds:7.2f} s  ({result})", flush=True)
            del clip_steps[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    service, plain = statistics.median(timings["clipline"]), statistics.median(timings["ffmpeg"])
    step = statistics.median(clip_steps)
    print(f"source: {args.source_seconds} s {args.size} MPEG-4 Part 2/AAC over HTTP; clip {start:g}-{end:g} s, re-encoded")
    print(f"clipline job end to end, median of {args.rounds}: {service:7.2f} s (its ClipSource step: {step:.2f} s)")
    print(f"plain ffmpeg, median of {args.rounds}:           {plain:7.2f} s")
    print(f"ratio clipline/ffmpeg: {service / plain:.3f}  (overhead {service - plain:+.2f} s)")
    write_summary(args.summary_json, [Row(
        "service overhead",
        f"clipline job, {args.clip_seconds:g} s {args.size} re-encode: {service:.2f} s",
        f"ffmpeg CLI, same command: {plain:.2f} s",
        f"{service / plain:.2f}",
        f"medians of {args.rounds} alternating runs; overhead {service - plain:+.2f} s per job; "
        f"the ClipSource step alone {step:.2f} s",
    )])  # fmt: skip


if __name__ == "__main__":
    main()
