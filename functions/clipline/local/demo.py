"""``make demo``: a real clip job end to end on this machine.

Makes a sample video, serves it over HTTP on 127.0.0.1 with Range support, and
runs ``clipline clip`` against it as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ..media.ffmpeg_binary import find_ffmpeg
from .media_server import MediaServer
from .sample_media import make_sample_video

SAMPLE_SECONDS = 180


def ensure_sample(media_dir: Path) -> Path:
    """The demo's 180 s 720p sample video in ``media_dir``, made on first use."""
    sample = media_dir / "sample.mp4"
    if not sample.exists():
        print(f"making a {SAMPLE_SECONDS} s sample video in {sample} ...", file=sys.stderr, flush=True)
        media_dir.mkdir(parents=True, exist_ok=True)
        make_sample_video(find_ffmpeg(None), sample, seconds=SAMPLE_SECONDS, size="1280x720")
    return sample


def main() -> int:
    media_dir = Path(".demo")
    ensure_sample(media_dir)
    with MediaServer(media_dir) as server:
        url = server.url("sample.mp4")
        command = ["clipline", "clip", url, "--start", "00:01:00", "--end", "00:01:10", "--out", "./demo-out"]
        print("$ " + " ".join(command), file=sys.stderr, flush=True)
        started = time.monotonic()
        # The sample is served from loopback, which production refuses as a source.
        env = {**os.environ, "CLIPLINE_ALLOW_PRIVATE_SOURCES": "true"}
        code = subprocess.call([sys.executable, "-m", "clipline.cli", *command[1:]], env=env)
        print(
            f"clip job took {time.monotonic() - started:.1f} s; the source server sent "
            f"{server.bytes_sent} bytes in {server.requests} requests",
            file=sys.stderr,
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
