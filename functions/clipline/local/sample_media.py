"""Generated media for the demo, tests and benchmarks: ffmpeg's lavfi test sources, no downloads."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_sample_video(
    ffmpeg: str,
    path: Path,
    seconds: float,
    size: str = "640x360",
    rate: int = 25,
    keyframe_seconds: float = 2.0,
    b_frames: int = 0,
) -> Path:
    """An H.264/AAC MP4 with a moving test picture and a tone, moov first (+faststart)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.mp4")
    subprocess.run(
        [
            ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", f"{seconds}",
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            "-g", str(int(rate * keyframe_seconds)), "-bf", str(b_frames),
            "-c:a", "aac", "-b:a", "96k",
            "-movflags", "+faststart", str(partial),
        ],  # fmt: skip
        check=True,
    )
    partial.replace(path)
    return path
