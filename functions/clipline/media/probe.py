"""Probing with ffmpeg itself.

We probe with the same ffmpeg binary that cuts the clip rather than PyAV or
ffprobe: the Lambda layer then ships one FFmpeg build, the probe fetches the
source through the same network stack (and so the same SSRF controls) as the
clip, and no second set of native libraries has to agree with the first.
``ffmpeg -i`` prints the container and stream summary and exits; we read it.
"""

from __future__ import annotations

import re

from ..domain.errors import SourceNotFoundError, SourceNotMediaError, SourceUnreachableError
from ..domain.jobs import SourceInfo
from .ffmpeg_process import NETWORK_OPTIONS, run_ffmpeg

_DURATION = re.compile(r"Duration: (?:(\d+):(\d{2}):(\d{2}(?:\.\d+)?)|N/A)")
_INPUT = re.compile(r"^Input #0, ([\w,]+), from", re.MULTILINE)
_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: (Video|Audio): (\w+)(.*)$", re.MULTILINE)
_FPS = re.compile(r", (\d+(?:\.\d+)?)(k?) fps")
_HTTP_STATUS = re.compile(r"(?:Server returned|HTTP error) (\d{3})")

_UNREACHABLE_MARKERS = (
    "Connection refused",
    "Connection timed out",
    "Connection reset",
    "No route to host",
    "Network is unreachable",
    "Failed to resolve hostname",
    "Name or service not known",
    "Temporary failure in name resolution",
    "End of file",
    "I/O error",
)


def classify_fetch_error(stderr: str, url: str) -> None:
    """Raise the error a failed fetch of ``url`` deserves, if its stderr shows one."""
    status = _HTTP_STATUS.search(stderr)
    if status:
        code = int(status.group(1))
        if code >= 500:
            raise SourceUnreachableError(f"the source server answered HTTP {code}")
        raise SourceNotFoundError(f"the source server answered HTTP {code} for {url}")
    if "Server returned 4" in stderr:
        raise SourceNotFoundError(f"the source server refused {url}")
    if any(marker in stderr for marker in _UNREACHABLE_MARKERS):
        raise SourceUnreachableError(f"could not read the source at {url}")


def parse_probe_output(stderr: str) -> SourceInfo | None:
    """The SourceInfo in ``ffmpeg -i`` output, or None when it shows no usable media."""
    duration_match = _DURATION.search(stderr)
    if duration_match is None or duration_match.group(1) is None:
        return None
    hours, minutes, seconds = duration_match.groups()
    duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    video_codec = audio_codec = None
    frame_rate = None
    for kind, codec, rest in _STREAM.findall(stderr):
        if kind == "Video" and video_codec is None and "(attached pic)" not in rest:
            video_codec = codec
            fps = _FPS.search(rest)
            if fps:
                frame_rate = float(fps.group(1)) * (1000 if fps.group(2) else 1)
        elif kind == "Audio" and audio_codec is None:
            audio_codec = codec
    if video_codec is None and audio_codec is None:
        return None
    container = _INPUT.search(stderr)
    return SourceInfo(
        duration_seconds=round(duration, 3),
        has_video=video_codec is not None,
        has_audio=audio_codec is not None,
        video_codec=video_codec,
        audio_codec=audio_codec,
        frame_rate=frame_rate,
        container=container.group(1) if container else None,
    )


class FfmpegProber:
    """MediaProber that reads ``ffmpeg -i``'s summary of a source (URL or local path)."""

    def __init__(self, ffmpeg: str, timeout_seconds: float) -> None:
        self._ffmpeg = ffmpeg
        self._timeout = timeout_seconds

    def probe(self, url: str) -> SourceInfo:
        network = NETWORK_OPTIONS if url.startswith(("http://", "https://")) else []
        run = run_ffmpeg(self._ffmpeg, [*network, "-i", url], self._timeout)
        if run.timed_out:
            raise SourceUnreachableError(f"probing the source took longer than {self._timeout:g}s")
        info = parse_probe_output(run.stderr)
        if info is None:
            classify_fetch_error(run.stderr, url)
            raise SourceNotMediaError("the source is not audio or video that ffmpeg can read")
        return info
