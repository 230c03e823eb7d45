"""Cutting a clip: stream copy first, re-encode when copy fails or is not exact.

``-ss`` goes before ``-i`` so ffmpeg seeks in the input: over http it reads the
index and the requested range with Range requests instead of the whole file.
A stream copy can only start on a keyframe, and B-frame reordering can carry a
frame or two past the end, so its result is checked against the request; when
it is off by more than a frame the clip is re-encoded (H.264/AAC) and the
fallback is reported with its reason.
"""

from __future__ import annotations

from pathlib import Path

from ..domain.errors import ClipFailedError, ClipLineError, ClipTimeoutError
from ..domain.jobs import ClipInfo, ClipRequest, SourceInfo
from ..domain.ports import ClipOutcome, ProgressCallback
from .ffmpeg_process import FfmpegRun, run_ffmpeg
from .probe import FfmpegProber, SourceAccess, classify_fetch_error

# Slack for sources with no frame rate (audio only): one AAC frame at 22.05 kHz.
AUDIO_TOLERANCE_SECONDS = 0.05
# A copy starts at the keyframe before ``start``, so its timestamps begin below zero;
# make_zero shifts them so players that ignore the edit list start at the cut.
# Re-encodes start at zero already, and shifting them would push the audio by the
# AAC encoder's priming delay (64 ms at 16 kHz), past the duration check.
COPY_OPTIONS = ["-c", "copy", "-avoid_negative_ts", "make_zero"]
REENCODE_OPTIONS = [
    "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
    "-c:a", "aac", "-b:a", "160k",
]  # fmt: skip


class FfmpegClipper:
    """MediaClipper with ffmpeg."""

    def __init__(
        self,
        ffmpeg: str,
        prober: FfmpegProber,
        timeout_seconds: float,
        threads: int = 0,
        access: SourceAccess | None = None,
    ) -> None:
        self._ffmpeg = ffmpeg
        self._prober = prober
        self._timeout = timeout_seconds
        self._threads = threads
        self._access = access or SourceAccess()

    def clip(
        self, request: ClipRequest, source: SourceInfo, work_dir: Path, on_progress: ProgressCallback
    ) -> ClipOutcome:
        output = work_dir / "clip.mp4"
        duration = request.duration_seconds

        def report(share_start: float, share: float):
            return lambda seconds: on_progress(share_start + share * min(seconds / duration, 1.0))

        copy_run = self._cut(request, COPY_OPTIONS, output, report(0.0, 0.3))
        fallback_reason = None
        if copy_run.returncode == 0:
            problem = self._check(output, request, source)
            if problem is None:
                return ClipOutcome(output, self._info(output, "copy", None))
            fallback_reason = problem
        else:
            classify_fetch_error(copy_run.stderr, request.source_url)
            fallback_reason = "copy_failed"
        output.unlink(missing_ok=True)

        encode_run = self._cut(request, REENCODE_OPTIONS, output, report(0.3, 0.7))
        if encode_run.returncode != 0:
            classify_fetch_error(encode_run.stderr, request.source_url)
            raise ClipFailedError(f"ffmpeg could not cut the clip: {_last_line(encode_run.stderr)}")
        problem = self._check(output, request, source)
        if problem is not None:
            raise ClipFailedError(f"the re-encoded clip did not validate ({problem})")
        on_progress(1.0)
        return ClipOutcome(output, self._info(output, "reencode", fallback_reason))

    def _cut(self, request: ClipRequest, codec_options: list[str], output: Path, on_out_time) -> FfmpegRun:
        url = request.source_url
        with self._access.fetch(url) as fetch:
            run = self._run(fetch.options, fetch.location, request, codec_options, output, on_out_time)
            try:
                fetch.raise_failure()
            except ClipLineError:
                output.unlink(missing_ok=True)
                raise
        return run

    def _run(
        self, input_options: list[str], location: str, request: ClipRequest, codec_options: list[str], output: Path, on_out_time
    ) -> FfmpegRun:
        arguments = [
            *input_options,
            "-ss", f"{request.start_seconds:.6f}",
            "-i", location,
            "-t", f"{request.duration_seconds:.6f}",
            "-map", "0:v:0?", "-map", "0:a:0?",
            *codec_options,
            *(["-threads", str(self._threads)] if self._threads else []),
            "-movflags", "+faststart",
            "-f", "mp4", str(output),
        ]  # fmt: skip
        run = run_ffmpeg(self._ffmpeg, arguments, self._timeout, on_out_time)
        if run.timed_out:
            output.unlink(missing_ok=True)
            raise ClipTimeoutError(f"ffmpeg ran past the {self._timeout:g}s clip time limit and was stopped")
        return run

    def _check(self, output: Path, request: ClipRequest, source: SourceInfo) -> str | None:
        """Why the clip at ``output`` does not match the request, or None if it does."""
        if not output.is_file() or output.stat().st_size == 0:
            return "copy_empty"
        try:
            clip = self._prober.probe_file(output)
        except Exception:  # noqa: BLE001 - any unreadable result means: do not ship it
            return "copy_unreadable"
        if clip.has_video != source.has_video or clip.has_audio != source.has_audio:
            return "streams_mismatch"
        tolerance = source.frame_duration_seconds or AUDIO_TOLERANCE_SECONDS
        if abs(clip.duration_seconds - request.duration_seconds) > tolerance + 0.001:
            return "duration_mismatch"
        return None

    def _info(self, output: Path, method: str, fallback_reason: str | None) -> ClipInfo:
        clip = self._prober.probe_file(output)
        return ClipInfo(
            duration_seconds=clip.duration_seconds,
            size_bytes=output.stat().st_size,
            method=method,
            fallback_reason=fallback_reason,
        )


def _last_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
