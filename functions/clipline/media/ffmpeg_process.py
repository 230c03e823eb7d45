"""Running ffmpeg: a time limit, progress from ``-progress``, and its error text kept for diagnosis."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..domain.errors import ClipTimeoutError, InternalError, StorageUnavailableError
from . import running_work

# How ffmpeg reports ENOSPC on a file it writes: on one of its output's lines, never from the
# input's metadata or a server's message, which a user controls.
_DISK_FULL = re.compile(r"(?m)^\[out#\d+/[^\]]*\].*No space left on device.*$")

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
# Protocols a user's http(s) source may use. http and https are the source's own
# schemes. ffmpeg's http runs on tcp (to the egress proxy, or to the source when no
# proxy is configured); https runs on tls, which reaches the proxy through httpproxy
# (CONNECT) over tcp. Everything else (file, concat, subfile, data, pipe, crypto,
# rtmp, ...) is refused, including in any nested open a demuxer attempts.
SOURCE_PROTOCOLS = "http,https,tls,tcp,httpproxy"
# Demuxers a user's source may be read with: single-file containers only. The
# playlist and reference formats (hls, dash, concat, mov drefs aside, which are off
# by default) open further URLs on their own and are refused; ffmpeg then prints
# WHITELIST_REFUSED_MARKER. The first entry is one demuxer with six names.
SOURCE_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,ogg,mp3,wav,aac,flac,mpegts,avi,flv"
# What ffmpeg prints when either whitelist refuses ("Format not on whitelist",
# "Protocol 'file' not on whitelist").
WHITELIST_REFUSED_MARKER = "not on whitelist"
# Our own files (clips being checked) are read as files and nothing else.
LOCAL_FILE_OPTIONS = ["-protocol_whitelist", "file"]
# ffmpeg connects straight to any host no_proxy names, skipping the proxy.
_PROXY_BYPASS_VARIABLES = ("no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY")


def source_input_options(proxy_url: str | None, max_redirects: int, read_timeout_seconds: float) -> list[str]:
    """Input options for a user's http(s) source: the proxy, the whitelists, the redirect bound, the Range tuning."""
    return [
        *NETWORK_OPTIONS,
        *(["-http_proxy", proxy_url] if proxy_url else []),
        "-rw_timeout", str(int(read_timeout_seconds * 1_000_000)),
        "-max_redirects", str(max_redirects),
        "-protocol_whitelist", SOURCE_PROTOCOLS,
        "-format_whitelist", SOURCE_FORMATS,
    ]  # fmt: skip


def is_network_source(location: str) -> bool:
    # Schemes are case-insensitive: "HTTP://" is a network source, never a file path.
    return location.strip().lower().startswith(("http://", "https://"))


# ffmpeg's stderr can be long for broken inputs; keep the tail, where the cause is.
_STDERR_TAIL = 8000


@dataclass(frozen=True)
class FfmpegRun:
    returncode: int
    stderr: str
    timed_out: bool


@dataclass(frozen=True)
class Deadline:
    """One time limit shared by every ffmpeg run of one piece of work.

    A clip may take several runs (a smart cut makes four, and a fallback adds a
    re-encode); each gets what is left, so the work as a whole stays within the
    limit its Lambda and its state's timeout are sized for.
    """

    limit_seconds: float
    ends_at: float  # on the monotonic clock

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        return cls(seconds, time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left.

        Raises:
            ClipTimeoutError: none are.
        """
        left = self.ends_at - time.monotonic()
        if left <= 0:
            raise self.exceeded()
        return left

    def exceeded(self) -> ClipTimeoutError:
        return ClipTimeoutError(f"ffmpeg ran past the {self.limit_seconds:g}s clip time limit and was stopped")


def run_ffmpeg(
    ffmpeg: str,
    arguments: list[str],
    timeout_seconds: float,
    on_out_time: Callable[[float], None] | None = None,
    cwd: Path | None = None,
    extra_environment: Mapping[str, str] | None = None,
) -> FfmpegRun:
    """Run ``ffmpeg arguments``; kill it after ``timeout_seconds``.

    With ``on_out_time`` the run reports progress through ``-progress pipe:1`` and
    the callback receives the output position in seconds as it advances. ``cwd`` is
    the directory ffmpeg runs in; ``extra_environment`` is set on top of ours.
    """
    command = [ffmpeg, "-hide_banner", "-nostdin", "-y"]
    if on_out_time is not None:
        command += ["-progress", "pipe:1", "-nostats"]
    command += arguments
    # stderr goes to a file so a chatty ffmpeg can never fill a pipe and block.
    with tempfile.TemporaryFile() as stderr_file:
        environment = {k: v for k, v in os.environ.items() if k not in _PROXY_BYPASS_VARIABLES}
        environment.update(extra_environment or {})
        try:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=stderr_file, stdin=subprocess.DEVNULL, env=environment, cwd=cwd
            )
        except FileNotFoundError as error:
            raise InternalError(
                f"no ffmpeg at {ffmpeg}: set CLIPLINE_FFMPEG (in AWS, give the function the ffmpeg layer)"
            ) from error
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            process.kill()

        watchdog = threading.Timer(timeout_seconds, kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            with running_work.tracked(process):
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
        # Killed because its job was stopped: no fallback or retry should try the work again.
        running_work.raise_if_stopped()
        stderr_file.seek(0)
        stderr = stderr_file.read()[-_STDERR_TAIL:].decode(errors="replace")
    disk_full = _DISK_FULL.search(stderr) if process.returncode != 0 and not timed_out.is_set() else None
    if disk_full:
        # Not the media's fault, nor the clip's: say where the problem is, and let the step be retried.
        raise StorageUnavailableError(f"the work folder is full: {disk_full.group(0)[:300]}")
    return FfmpegRun(returncode=process.returncode, stderr=stderr, timed_out=timed_out.is_set())


def last_stderr_line(stderr: str) -> str:
    """The last line ffmpeg wrote, shortened: at the default log level, the one that says what went wrong."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
