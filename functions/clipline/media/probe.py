"""Probing with ffmpeg itself.

We probe with the same ffmpeg binary that cuts the clip rather than PyAV or
ffprobe: the Lambda layer then ships one FFmpeg build, the probe fetches the
source through the same network stack (and so the same SSRF controls) as the
clip, and no second set of native libraries has to agree with the first.
``ffmpeg -i`` prints the container and stream summary and exits; we read it.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..domain.errors import (
    SourceNotAllowedError,
    SourceNotFoundError,
    SourceNotMediaError,
    SourceTooLargeError,
    SourceUnreachableError,
    UnsupportedSourceUrlError,
)
from ..domain.jobs import SourceInfo
from .egress_proxy import EgressProxy, EgressSession
from .ffmpeg_process import (
    LOCAL_FILE_OPTIONS,
    WHITELIST_REFUSED_MARKER,
    is_network_source,
    run_ffmpeg,
    source_input_options,
)

_DURATION = re.compile(r"Duration: (?:(\d+):(\d{2}):(\d{2}(?:\.\d+)?)|N/A)")
_INPUT = re.compile(r"^Input #0, ([\w,]+), from", re.MULTILINE)
_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: (Video|Audio): (\w+)(.*)$", re.MULTILINE)
_FPS = re.compile(r", (\d+(?:\.\d+)?)(k?) fps")
# A phone's portrait video is stored landscape with this side data telling players to turn it.
_ROTATION = re.compile(r"Display Matrix: rotation of (-?\d+(?:\.\d+)?) degrees")
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


# ffmpeg's read timeout when the proxy is in the way: a little longer than the
# proxy's own, so a stall is reported by the proxy, which knows it was the source.
_PROXY_TIMEOUT_MARGIN_SECONDS = 5


@dataclass(frozen=True)
class SourceAccess:
    """How ffmpeg reaches a user's source.

    With an egress proxy (always, when built by composition) every connection
    goes through it and is checked and pinned there; without one (some tests
    and benchmarks) ffmpeg connects directly. The whitelists, the redirect
    bound and the read timeout apply either way.
    """

    egress: EgressProxy | None = None
    max_redirects: int = 3
    read_timeout_seconds: float = 15.0

    @contextlib.contextmanager
    def fetch(self, location: str, from_storage: bool = False) -> Iterator["SourceFetch"]:
        """Input options for one ffmpeg run on a user's ``location``; call ``raise_failure`` after the run.

        ``from_storage`` marks a location clipline made itself for an upload (a file of
        the artifact store, or a presigned storage link): ffmpeg reads it directly, not
        through the egress proxy. It comes from the job's ``source_key``, never from a URL.

        Raises:
            UnsupportedSourceUrlError: not an http(s) URL. A user's location never becomes a file path.
        """
        if from_storage:
            if location.startswith("file:"):
                yield SourceFetch(LOCAL_FILE_OPTIONS, location, None)
            else:
                yield SourceFetch(source_input_options(None, self.max_redirects, self.read_timeout_seconds), location, None)
            return
        if not is_network_source(location):
            raise UnsupportedSourceUrlError("sourceUrl must use http or https")
        # ffmpeg matches protocol names case-sensitively; the guard does not.
        scheme, _, rest = location.strip().partition("://")
        location = f"{scheme.lower()}://{rest}"
        if self.egress is None:
            yield SourceFetch(source_input_options(None, self.max_redirects, self.read_timeout_seconds), location, None)
            return
        timeout = self.read_timeout_seconds + _PROXY_TIMEOUT_MARGIN_SECONDS
        with self.egress.session() as session:
            yield SourceFetch(source_input_options(session.proxy_url, self.max_redirects, timeout), location, session)


def local_file_fetch(path: Path) -> "SourceFetch":
    """Input options for a file of ours (a clip being checked): read as a plain file whatever its name says."""
    return SourceFetch(LOCAL_FILE_OPTIONS, f"file:{os.path.abspath(path)}", None)


@dataclass(frozen=True)
class SourceFetch:
    """The options and the ``-i`` argument for one ffmpeg run, and the proxy session it runs in."""

    options: list[str]
    location: str
    session: EgressSession | None

    def raise_failure(self) -> None:
        """Raise what the proxy refused or saw fail during the run (SourceNotAllowedError, SourceTooLargeError, ...)."""
        if self.session is not None:
            self.session.raise_failure()


def classify_fetch_error(stderr: str, url: str) -> None:
    """Raise the error a failed fetch of ``url`` deserves, if its stderr shows one."""
    if WHITELIST_REFUSED_MARKER in stderr:
        raise SourceNotAllowedError(
            "the source is a playlist or a format clipline does not read (HLS, DASH, concat and the like), "
            "or it pointed at a protocol other than http(s); send the URL of a single media file"
        )
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
    rotation = _ROTATION.search(stderr) if video_codec else None
    return SourceInfo(
        duration_seconds=round(duration, 3),
        has_video=video_codec is not None,
        has_audio=audio_codec is not None,
        video_codec=video_codec,
        audio_codec=audio_codec,
        frame_rate=frame_rate,
        container=container.group(1) if container else None,
        rotation_degrees=float(rotation.group(1)) if rotation else 0.0,
    )


class FfmpegProber:
    """MediaProber that reads ``ffmpeg -i``'s summary of a source (URL or local path)."""

    def __init__(
        self,
        ffmpeg: str,
        timeout_seconds: float,
        access: SourceAccess | None = None,
        max_source_seconds: float | None = None,
    ) -> None:
        self._ffmpeg = ffmpeg
        self._timeout = timeout_seconds
        self.access = access or SourceAccess()
        self._max_source_seconds = max_source_seconds

    def probe_file(self, path: Path) -> SourceInfo:
        """SourceInfo of a file of ours, such as a clip being checked.

        Raises:
            SourceNotMediaError.
        """
        fetch = local_file_fetch(path)
        run = run_ffmpeg(self._ffmpeg, [*fetch.options, "-i", fetch.location], self._timeout)
        info = parse_probe_output(run.stderr)
        if info is None:
            raise SourceNotMediaError(f"{path.name} is not audio or video that ffmpeg can read")
        return info

    def probe(self, url: str, from_storage: bool = False) -> SourceInfo:
        """SourceInfo of a user's http(s) source, or (``from_storage``) of an upload at the location given.

        Raises:
            UnsupportedSourceUrlError, SourceNotAllowedError, SourceTooLargeError,
            SourceNotFoundError, SourceUnreachableError, SourceNotMediaError.
        """
        with self.access.fetch(url, from_storage) as fetch:
            run = run_ffmpeg(self._ffmpeg, [*fetch.options, "-i", fetch.location], self._timeout)
            fetch.raise_failure()
        if run.timed_out:
            raise SourceUnreachableError(f"probing the source took longer than {self._timeout:g}s")
        info = parse_probe_output(run.stderr)
        if info is None:
            classify_fetch_error(run.stderr, url)
            raise SourceNotMediaError("the source is not audio or video that ffmpeg can read")
        if self._max_source_seconds is not None and info.duration_seconds > self._max_source_seconds:
            raise SourceTooLargeError(
                f"the source is {info.duration_seconds:g}s long; the limit is {self._max_source_seconds:g}s"
            )
        return info
