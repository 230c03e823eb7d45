"""Cutting a clip: a smart cut or a stream copy first, a full re-encode when they cannot do.

``-ss`` goes before ``-i`` so ffmpeg seeks in the input: over http it reads the
index and the requested range with Range requests instead of the whole file.

- ``accuracy=frame`` (the default) cuts H.264 at the requested frames with a smart
  cut (smart_cut.py): only the frames around the cut points are re-encoded.
- ``accuracy=keyframe`` stream-copies, which is what the user chose it for: the
  copy starts at the keyframe at or before ``start`` and ends at ``end``, so it is
  kept when it is up to ``KEYFRAME_LEAD_LIMIT_SECONDS`` longer than asked (and
  re-encoded when it is shorter, longer still, or unreadable).
- Audio-only sources become an M4A: AAC is stream-copied (and checked), anything
  else is encoded to AAC.

Whatever falls back to a full re-encode (H.264/AAC) reports why, as a short
fallback reason the caller counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..domain.errors import ClipFailedError, ClipLineError
from ..domain.jobs import ClipAccuracy, ClipInfo, ClipRequest, SourceInfo
from ..domain.ports import ClipOutcome, ProgressCallback
from .encoding import AAC_OPTIONS, H264_VIDEO_OPTIONS
from .ffmpeg_process import Deadline, FfmpegRun, last_stderr_line, run_ffmpeg
from .probe import FfmpegProber, SourceAccess, classify_fetch_error
from .smart_cut import SmartCutFallback, SmartCutter

# Slack for sources with no frame rate (audio only): one AAC frame at 22.05 kHz.
AUDIO_TOLERANCE_SECONDS = 0.05
# How much earlier than ``start`` a keyframe cut may begin: one GOP, and encoders'
# default GOPs are at most 10 s (x264: 250 frames at 25 fps). A source with longer
# GOPs is re-encoded rather than handed back with a surprise of that length.
KEYFRAME_LEAD_LIMIT_SECONDS = 10.0
# A re-encode seeks the input to this long before ``start`` and decodes the rest of the
# way: a container without a keyframe index (MPEG-TS) can land an input seek past the
# keyframe before ``start``, and the frames up to the next one would be lost.
REENCODE_PREROLL_SECONDS = KEYFRAME_LEAD_LIMIT_SECONDS
# A copy starts at the keyframe before ``start``, so its timestamps begin below zero;
# make_zero shifts them so players that ignore the edit list start at the cut.
# Re-encodes start at zero already, and shifting them would push the audio by the
# AAC encoder's priming delay (64 ms at 16 kHz), past the duration check.
COPY_OPTIONS = ["-c", "copy", "-avoid_negative_ts", "make_zero"]
REENCODE_OPTIONS = [*H264_VIDEO_OPTIONS, *AAC_OPTIONS]


@dataclass(frozen=True)
class ClipContainer:
    """What a clip is written as: its file name, ffmpeg's muxer, the streams it takes and how it is re-encoded."""

    file_name: str
    muxer: str
    stream_maps: tuple[str, ...]
    reencode_options: tuple[str, ...]


VIDEO_CLIP = ClipContainer("clip.mp4", "mp4", ("-map", "0:v:0?", "-map", "0:a:0?"), tuple(REENCODE_OPTIONS))
# ffmpeg's muxer for .m4a: MP4 with the M4A brand that audio players look for.
AUDIO_CLIP = ClipContainer("clip.m4a", "ipod", ("-map", "0:a:0"), tuple(AAC_OPTIONS))


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
        self._smart_cutter = SmartCutter(ffmpeg, threads, self._access)

    def clip(
        self, request: ClipRequest, source: SourceInfo, work_dir: Path, on_progress: ProgressCallback
    ) -> ClipOutcome:
        # The limit covers the whole clip, however many ffmpeg runs it takes.
        deadline = Deadline.after(self._timeout)
        if not source.has_video:
            output = work_dir / AUDIO_CLIP.file_name
            if source.audio_codec == "aac":
                return self._copy_else_reencode(request, source, output, AUDIO_CLIP, on_progress, deadline)
            return self._reencode(request, source, output, AUDIO_CLIP, "audio_not_aac", on_progress, deadline)
        output = work_dir / VIDEO_CLIP.file_name
        if request.accuracy is ClipAccuracy.KEYFRAME:
            return self._copy_else_reencode(
                request, source, output, VIDEO_CLIP, on_progress, deadline, early_start_seconds=KEYFRAME_LEAD_LIMIT_SECONDS
            )
        return self._smart_cut_else_reencode(request, source, output, on_progress, deadline)

    def _smart_cut_else_reencode(
        self, request: ClipRequest, source: SourceInfo, output: Path, on_progress: ProgressCallback, deadline: Deadline
    ) -> ClipOutcome:
        try:
            plan = self._smart_cutter.cut(request, source, output, on_progress, deadline)
        except SmartCutFallback as fallback:
            output.unlink(missing_ok=True)
            return self._reencode(request, source, output, VIDEO_CLIP, fallback.reason, on_progress, deadline)
        problem = self._check(output, request, source)
        if problem is not None:
            output.unlink(missing_ok=True)
            return self._reencode(request, source, output, VIDEO_CLIP, "smart_cut_failed", on_progress, deadline)
        on_progress(1.0)
        if plan.copied_frames == 0:
            # With no keyframe inside the range the whole range was encoded, from the fetched copy.
            return ClipOutcome(output, self._info(output, "reencode", "smart_cut_no_keyframe"))
        return ClipOutcome(output, self._info(output, "smart", None))

    def _copy_else_reencode(
        self,
        request: ClipRequest,
        source: SourceInfo,
        output: Path,
        container: ClipContainer,
        on_progress: ProgressCallback,
        deadline: Deadline,
        early_start_seconds: float = 0.0,
    ) -> ClipOutcome:
        """A stream copy, kept when it starts at most ``early_start_seconds`` before ``start``; else a re-encode."""
        # A copy cannot decode, so it can only seek the input: no pre-roll.
        copy_run = self._cut(
            request, container, COPY_OPTIONS, output, _shares(request, on_progress, 0.0, 0.3), 0.0, deadline
        )
        if copy_run.returncode == 0:
            problem = self._check(output, request, source, early_start_seconds)
            if problem is None:
                return ClipOutcome(output, self._info(output, "copy", None))
            fallback_reason = problem
        else:
            classify_fetch_error(copy_run.stderr, request.source_url)
            fallback_reason = "copy_failed"
        output.unlink(missing_ok=True)
        return self._reencode(request, source, output, container, fallback_reason, on_progress, deadline)

    def _reencode(
        self,
        request: ClipRequest,
        source: SourceInfo,
        output: Path,
        container: ClipContainer,
        fallback_reason: str,
        on_progress: ProgressCallback,
        deadline: Deadline,
    ) -> ClipOutcome:
        encode_run = self._cut(
            request,
            container,
            container.reencode_options,
            output,
            _shares(request, on_progress, 0.3, 0.7),
            REENCODE_PREROLL_SECONDS,
            deadline,
        )
        if encode_run.returncode != 0:
            classify_fetch_error(encode_run.stderr, request.source_url)
            raise ClipFailedError(f"ffmpeg could not cut the clip: {last_stderr_line(encode_run.stderr)}")
        problem = self._check(output, request, source)
        if problem is not None:
            raise ClipFailedError(f"the re-encoded clip did not validate ({problem})")
        on_progress(1.0)
        return ClipOutcome(output, self._info(output, "reencode", fallback_reason))

    def _cut(
        self,
        request: ClipRequest,
        container: ClipContainer,
        codec_options: Sequence[str],
        output: Path,
        on_out_time,
        preroll_seconds: float,
        deadline: Deadline,
    ) -> FfmpegRun:
        """One ffmpeg run over the source; it seeks the input ``preroll_seconds`` early and decodes the rest."""
        coarse = max(request.start_seconds - preroll_seconds, 0.0)
        outputs = [
            *(["-ss", f"{request.start_seconds - coarse:.6f}"] if request.start_seconds > coarse else []),
            "-t", f"{request.duration_seconds:.6f}",
            *container.stream_maps,
            *codec_options,
            *(["-threads", str(self._threads)] if self._threads else []),
            "-movflags", "+faststart",
            "-f", container.muxer, str(output),
        ]  # fmt: skip
        with self._access.fetch(request.source_url, request.source_key is not None) as fetch:
            arguments = [*fetch.options, "-ss", f"{coarse:.6f}", "-i", fetch.location, *outputs]
            run = run_ffmpeg(self._ffmpeg, arguments, deadline.remaining(), on_out_time)
            if run.timed_out:
                output.unlink(missing_ok=True)
                raise deadline.exceeded()
            try:
                fetch.raise_failure()
            except ClipLineError:
                output.unlink(missing_ok=True)
                raise
        return run

    def _check(
        self, output: Path, request: ClipRequest, source: SourceInfo, early_start_seconds: float = 0.0
    ) -> str | None:
        """Why the clip at ``output`` does not match the request, or None if it does.

        Its duration must be the request's within a frame, or up to ``early_start_seconds`` more.
        """
        if not output.is_file() or output.stat().st_size == 0:
            return "copy_empty"
        try:
            clip = self._prober.probe_file(output)
        except Exception:  # noqa: BLE001 - any unreadable result means: do not ship it
            return "copy_unreadable"
        if clip.has_video != source.has_video or clip.has_audio != source.has_audio:
            return "streams_mismatch"
        tolerance = source.frame_duration_seconds or AUDIO_TOLERANCE_SECONDS
        excess = clip.duration_seconds - request.duration_seconds
        if not -tolerance - 0.001 <= excess <= early_start_seconds + tolerance + 0.001:
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


def _shares(request: ClipRequest, on_progress: ProgressCallback, share_start: float, share: float):
    """An ``on_out_time`` callback that maps ffmpeg's output position onto a share of the progress."""
    duration = request.duration_seconds
    return lambda seconds: on_progress(share_start + share * min(seconds / duration, 1.0))
