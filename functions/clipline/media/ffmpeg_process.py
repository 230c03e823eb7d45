"""Running ffmpeg: a time limit, progress from ``-progress``, and its error text kept for diagnosis."""

from __future__ import annotations

import subprocess
import tempfile
import threading
from dataclasses import dataclass
from typing import Callable

# Options for http(s) sources.
# - A read or connect that stalls 15 s fails (ffmpeg counts in microseconds).
# - Bounded Range requests: by default ffmpeg asks for "bytes=N-" and drops the
#   connection when it has enough, and whatever the server pushed into the socket
#   meanwhile is wasted (we measured 8x the clip's size for 10 s of a 3-minute MP4).
#   A 128 KiB first request covers a typical moov; 1 MiB requests after it keep
#   the overshoot small while needing few round trips (1.3x, 4 requests).
NETWORK_OPTIONS = [
    "-rw_timeout", "15000000",
    "-user_agent", "clipline",
    "-multiple_requests", "1",
    "-initial_request_size", "131072",
    "-request_size", "1048576",
]  # fmt: skip
# ffmpeg's stderr can be long for broken inputs; keep the tail, where the cause is.
_STDERR_TAIL = 8000


@dataclass(frozen=True)
class FfmpegRun:
    returncode: int
    stderr: str
    timed_out: bool


def run_ffmpeg(
    ffmpeg: str,
    arguments: list[str],
    timeout_seconds: float,
    on_out_time: Callable[[float], None] | None = None,
) -> FfmpegRun:
    """Run ``ffmpeg arguments``; kill it after ``timeout_seconds``.

    With ``on_out_time`` the run reports progress through ``-progress pipe:1`` and
    the callback receives the output position in seconds as it advances.
    """
    command = [ffmpeg, "-hide_banner", "-nostdin", "-y"]
    if on_out_time is not None:
        command += ["-progress", "pipe:1", "-nostats"]
    command += arguments
    # stderr goes to a file so a chatty ffmpeg can never fill a pipe and block.
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr_file, stdin=subprocess.DEVNULL)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            process.kill()

        watchdog = threading.Timer(timeout_seconds, kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                if on_out_time is None:
                    continue
                line = raw.decode(errors="replace").strip()
                if line.startswith("out_time_us="):
                    value = line.partition("=")[2]
                    if value.isdigit():
                        on_out_time(int(value) / 1_000_000)
            process.wait()
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr_file.seek(0)
        stderr = stderr_file.read()[-_STDERR_TAIL:].decode(errors="replace")
    return FfmpegRun(returncode=process.returncode, stderr=stderr, timed_out=timed_out.is_set())
