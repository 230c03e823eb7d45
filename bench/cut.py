"""Wall time of a frame-accurate 60 s clip: the smart cut against a full re-encode of the same range.

Generates (once, cached in the temp dir) a 720p H.264/AAC source with 2 s GOPs and
B-frames, serves it over HTTP with Range support, then times alternately:
- smart: FfmpegClipper.clip with accuracy=frame, as the service runs it (fetch, head
  and foot encode, join, checks), on a range that starts and ends between keyframes
- full: the re-encode the clipper falls back to: the same input seek and
  REENCODE_OPTIONS, in one ffmpeg run

Prints each run, the medians, the ratio smart/full and the machine's core count.
testsrc2's picture is easier to encode than camera footage, which flatters the full
re-encode more than the smart cut. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, write_summary  # noqa: E402

from clipline.domain.jobs import ClipAccuracy, ClipRequest  # noqa: E402
from clipline.local.media_server import MediaServer  # noqa: E402
from clipline.media.clip import REENCODE_OPTIONS, VIDEO_CLIP, FfmpegClipper  # noqa: E402
from clipline.media.ffmpeg_binary import find_ffmpeg  # noqa: E402
from clipline.media.ffmpeg_process import run_ffmpeg  # noqa: E402
from clipline.media.probe import FfmpegProber, SourceAccess  # noqa: E402

RATE = 25


def make_source(ffmpeg: str, path: Path, seconds: int, size: str) -> None:
    partial = path.with_name(path.name + ".partial.mp4")
    subprocess.run(
        [
            ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={RATE}",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            "-g", str(2 * RATE), "-keyint_min", str(2 * RATE), "-sc_threshold", "0", "-bf", "3",
            "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(partial),
        ],  # fmt: skip
        check=True,
    )
    partial.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-seconds", type=int, default=180)
    parser.add_argument("--clip-seconds", type=float, default=60)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--summary-json", type=Path, help="also write the summary row here, for report.py")
    args = parser.parse_args()

    ffmpeg = find_ffmpeg(None)
    cache = Path(tempfile.gettempdir()) / "clipline-bench"
    source_name = f"cut-{args.size}-{args.source_seconds}s.mp4"
    if not (cache / source_name).is_file():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"generating {source_name} in {cache} (once)...", flush=True)
        make_source(ffmpeg, cache / source_name, args.source_seconds, args.size)
    # Off the GOP grid at both ends, so the smart cut has a head and a foot to encode.
    start = round(args.source_seconds / 2 - args.clip_seconds / 2 + 0.52, 2)
    end = start + args.clip_seconds

    prober = FfmpegProber(ffmpeg, timeout_seconds=60)
    clipper = FfmpegClipper(ffmpeg, prober, timeout_seconds=600)
    timings: dict[str, list[float]] = {"smart": [], "full": []}
    with MediaServer(cache) as server, tempfile.TemporaryDirectory(prefix="bench-cut-") as work:
        url = server.url(source_name)
        source = prober.probe(url)
        request = ClipRequest(source_url=url, start_seconds=start, end_seconds=end, accuracy=ClipAccuracy.FRAME)

        def smart(out: Path) -> str:
            outcome = clipper.clip(request, source, out, lambda fraction: None)
            return f"{outcome.info.method}, {outcome.info.duration_seconds:.2f} s"

        def full(out: Path) -> str:
            with SourceAccess().fetch(url) as fetch:
                arguments = [
                    *fetch.options, "-ss", f"{start:.6f}", "-i", fetch.location,
                    "-t", f"{request.duration_seconds:.6f}", *VIDEO_CLIP.stream_maps, *REENCODE_OPTIONS,
                    "-movflags", "+faststart", "-f", "mp4", str(out / "clip.mp4"),
                ]  # fmt: skip
                run = run_ffmpeg(ffmpeg, arguments, timeout_seconds=600)
            if run.returncode != 0:
                raise SystemExit(f"the full re-encode failed: {run.stderr[-300:]}")
            return f"reencode, {prober.probe_file(out / 'clip.mp4').duration_seconds:.2f} s"

        for repetition in range(args.repetitions):
            for label, cut in (("smart", smart), ("full", full)):
                out = Path(tempfile.mkdtemp(dir=work))
                started = time.perf_counter()
                result = cut(out)
                seconds = time.perf_counter() - started
                timings[label].append(seconds)
                print(f"  run {repetition + 1} {label:5} {seconds:7.2f} s  ({result})", flush=True)

    smart_median, full_median = statistics.median(timings["smart"]), statistics.median(timings["full"])
    print(f"source: {args.source_seconds} s {args.size} H.264 (2 s GOPs, B-frames)/AAC over HTTP; "
          f"clip: {start:g}-{end:g} s ({args.clip_seconds:g} s)")  # fmt: skip
    print(f"cores: {os.cpu_count()} (usable here: {len(os.sched_getaffinity(0))})")
    print(f"smart cut, median of {args.repetitions}:       {smart_median:7.2f} s")
    print(f"full re-encode, median of {args.repetitions}:  {full_median:7.2f} s")
    print(f"ratio smart/full: {smart_median / full_median:.3f}")
    write_summary(args.summary_json, [Row(
        "frame-accurate cut",
        f"smart cut, {args.clip_seconds:g} s of {args.size}: {smart_median:.2f} s",
        f"full re-encode of the same range: {full_median:.2f} s",
        f"{smart_median / full_median:.3f}",
        f"medians of {args.repetitions} alternating runs",
    )])  # fmt: skip


if __name__ == "__main__":
    main()
