"""Bytes read from the source to cut a 10 s clip from the middle of a long faststart MP4 over HTTP.

Compares, in one run and against the same Range-capable server:
- clipline: probe + clip with input seeking and bounded Range requests
- unbounded: the same ffmpeg commands without request-size bounds (ffmpeg's defaults)
- download-first: fetch the whole source, then cut locally (the baseline)

Prints bytes read, requests, wall time, and ratios. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, write_summary  # noqa: E402

from clipline.domain.jobs import ClipRequest  # noqa: E402
from clipline.local.media_server import MediaServer  # noqa: E402
from clipline.local.sample_media import make_sample_video  # noqa: E402
from clipline.composition import media_services  # noqa: E402
from clipline.media import ffmpeg_process  # noqa: E402
from clipline.media.ffmpeg_binary import find_ffmpeg  # noqa: E402
from clipline.settings import Settings  # noqa: E402

UNBOUNDED = ["-rw_timeout", "15000000"]


def measure(server: MediaServer, label: str, run) -> dict:
    server.reset_counters()
    started = time.perf_counter()
    clip_bytes = run()
    return {
        "label": label,
        "bytes": server.bytes_sent,
        "requests": server.requests,
        "seconds": time.perf_counter() - started,
        "clip_bytes": clip_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-seconds", type=int, default=300)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--summary-json", type=Path, help="also write the summary row here, for report.py")
    args = parser.parse_args()

    ffmpeg = find_ffmpeg(None)
    work = Path(tempfile.mkdtemp(prefix="bench-range-"))
    try:
        make_sample_video(ffmpeg, work / "www" / "source.mp4", seconds=args.source_seconds, size=args.size)
        source_size = (work / "www" / "source.mp4").stat().st_size
        middle = args.source_seconds / 2
        with MediaServer(work / "www") as server:
            url = server.url("source.mp4")

            def clip_from(location: str, out: Path) -> int:
                # The production graph: ffmpeg fetches through the egress proxy (loopback allowed here).
                media = media_services(Settings(allow_private_sources=True))
                prober, clipper = media["prober"], media["clipper"]
                info = prober.probe(location)
                outcome = clipper.clip(ClipRequest(source_url=location, start_seconds=middle, end_seconds=middle + 10), info, out, lambda _: None)
                return outcome.info.size_bytes

            def clipline_way() -> int:
                return clip_from(url, Path(tempfile.mkdtemp(dir=work)))

            def unbounded_way() -> int:
                with mock.patch.object(ffmpeg_process, "NETWORK_OPTIONS", UNBOUNDED):
                    return clip_from(url, Path(tempfile.mkdtemp(dir=work)))

            def download_first() -> int:
                local = work / "downloaded.mp4"
                with urllib.request.urlopen(url) as response, local.open("wb") as file:
                    shutil.copyfileobj(response, file)
                # The service never reads a user's file path, so the baseline cuts the download with ffmpeg directly.
                out = Path(tempfile.mkdtemp(dir=work)) / "clip.mp4"
                subprocess.run(
                    [find_ffmpeg(None), "-v", "error", "-y", "-ss", f"{middle}", "-i", str(local), "-t", "10",
                     "-c", "copy", str(out)],
                    check=True,
                )  # fmt: skip
                return out.stat().st_size

            rows = [measure(server, "clipline (bounded ranges)", clipline_way),
                    measure(server, "ffmpeg default ranges", unbounded_way),
                    measure(server, "download first (baseline)", download_first)]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    baseline = rows[-1]
    print(f"source: {args.source_seconds} s {args.size} faststart MP4, {source_size / 1e6:.1f} MB; clip: 10 s from {middle:g} s")
    print(f"{'method':28} {'read MB':>8} {'requests':>8} {'seconds':>8} {'read/clip':>10} {'vs baseline':>12}")
    for row in rows:
        print(
            f"{row['label']:28} {row['bytes'] / 1e6:8.2f} {row['requests']:8d} {row['seconds']:8.2f} "
            f"{row['bytes'] / row['clip_bytes']:10.2f} {row['bytes'] / baseline['bytes']:12.3f}"
        )
    clipline, unbounded = rows[0], rows[1]
    write_summary(args.summary_json, [Row(
        "range reads",
        f"clipline read {clipline['bytes'] / 1e6:.1f} MB in {clipline['requests']} requests for a 10 s clip "
        f"of {clipline['clip_bytes'] / 1e6:.1f} MB: {clipline['bytes'] / clipline['clip_bytes']:.2f}x the clip",
        f"download first: {baseline['bytes'] / 1e6:.1f} MB, {baseline['bytes'] / baseline['clip_bytes']:.1f}x the clip",
        f"{clipline['bytes'] / baseline['bytes']:.3f}",
        f"{args.source_seconds} s {args.size} source; one run. clipline's bounded ranges read the same bytes every "
        f"run. ffmpeg's default ranges read {unbounded['bytes'] / 1e6:.1f} MB: they are open-ended, so what they "
        "read depends on when ffmpeg closes the connection, and varies from run to run",
    )])  # fmt: skip


if __name__ == "__main__":
    main()
