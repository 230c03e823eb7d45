"""Burning subtitles into a clip's picture with ffmpeg's ``ass`` filter (libass).

Two things make this safe to run on any text, in any directory, on any machine:

- Nothing from a path reaches the filtergraph. Filter arguments have their own
  escaping (``:``, ``'``, ``\\``, ``,``, ``[`` ...), and getting it wrong breaks the
  graph or changes its meaning. ffmpeg instead runs inside a scratch directory of
  ours, and the filter names fixed relative files there: the ASS document and a
  symlink to the fonts directory.
- Only the bundled fonts are used. libass loads every font in ``fontsdir`` and
  picks the style's family from them; for a glyph the family lacks it asks its
  font provider, fontconfig, for a fallback. ffmpeg's fontconfig is pointed at a
  generated configuration that lists the fonts directory alone, so a machine's
  system fonts (or their absence, as in Lambda) never change what is drawn.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

from ..domain.errors import BurnInFailedError, ClipTimeoutError, NoVideoStreamError, SourceNotMediaError
from ..domain.jobs import SubtitleStyle
from ..domain.ports import ProgressCallback
from ..domain.subtitles import Cue, render_ass
from .encoding import H264_VIDEO_OPTIONS
from .ffmpeg_process import FfmpegRun, last_stderr_line, run_ffmpeg
from .probe import FfmpegProber, local_file_fetch

BURNED_CLIP_NAME = "clip.burned.mp4"

# 4:2:0 H.264 needs an even width and height; a stream-copied clip can have odd ones.
# Dropping the odd last column or row is invisible, and the ASS document is laid out
# for the size the filter sees.
_EVEN_SIZE_FILTER = "crop=trunc(iw/2)*2:trunc(ih/2)*2"

# The names the filtergraph sees, relative to the scratch directory ffmpeg runs in.
_ASS_NAME = "subtitles.ass"
_FONTS_LINK_NAME = "fonts"
_FONTCONFIG_NAME = "fonts.conf"
_FONTCONFIG_CACHE_NAME = "fontconfig-cache"

# showinfo's line for a decoded frame: "... s:640x360 ...", the size after ffmpeg's
# autorotation, which is what the burn-in filter will see (a phone clip tagged as
# rotated is taller than its stream's coded size).
_SHOWINFO_SIZE = re.compile(r"showinfo.*\bs:(\d+)x(\d+)\b")


# Where the ffmpeg Lambda layer puts the font (layers are mounted under /opt).
LAYER_FONTS_DIR = Path("/opt/share/fonts")


def default_fonts_dir() -> Path | None:
    """The font-source-sans-pro wheel's fonts, else the Lambda layer's, else None.

    The wheel is local mode's (the ``local`` extra); in Lambda the ffmpeg layer carries the same font.
    """
    try:
        import font_source_sans_pro  # imported here: the wheel globs its files when imported
    except ImportError:
        return LAYER_FONTS_DIR if LAYER_FONTS_DIR.is_dir() else None
    return Path(font_source_sans_pro.font_directory)


class FfmpegSubtitleBurner:
    """SubtitleBurner with ffmpeg's libass filter, drawing with the fonts in ``fonts_dir`` only."""

    def __init__(
        self, ffmpeg: str, prober: FfmpegProber, fonts_dir: Path, timeout_seconds: float, threads: int = 0
    ) -> None:
        self._ffmpeg = ffmpeg
        self._prober = prober
        self._fonts_dir = fonts_dir
        self._timeout = timeout_seconds
        self._threads = threads

    def burn(
        self, clip: Path, cues: Sequence[Cue], style: SubtitleStyle, work_dir: Path, on_progress: ProgressCallback
    ) -> Path:
        """``clip`` with ``cues`` drawn into its picture, as ``clip.burned.mp4`` under ``work_dir``.

        The video is re-encoded as H.264 (yuv420p, the clipper's re-encode settings);
        the audio, when there is any, is copied as it is. The MP4 starts with its index
        (faststart). Cue text is drawn literally. ``on_progress`` receives 0.0-1.0.

        Raises:
            NoVideoStreamError: the clip has no video to draw on.
            BurnInFailedError: the clip cannot be read, the fonts directory is missing,
                or ffmpeg failed (the message ends with ffmpeg's first error line, the cause).
            ClipTimeoutError: ffmpeg ran past ``timeout_seconds`` and was stopped.
        """
        if not self._fonts_dir.is_dir():
            raise BurnInFailedError(f"the subtitle fonts directory {self._fonts_dir} does not exist")
        try:
            info = self._prober.probe_file(clip)
        except SourceNotMediaError as error:
            raise BurnInFailedError(f"the clip to burn subtitles into cannot be read: {error.message}") from error
        if not info.has_video:
            raise NoVideoStreamError("the clip has no video stream to burn subtitles into")
        width, height = self._displayed_size(clip)
        document = render_ass(cues, style, width // 2 * 2, height // 2 * 2)  # the size after _EVEN_SIZE_FILTER
        output = work_dir / BURNED_CLIP_NAME
        fonts_dir = self._fonts_dir.resolve()
        with tempfile.TemporaryDirectory(prefix="burn-in-", dir=work_dir) as scratch_name:
            scratch = Path(scratch_name).resolve()
            (scratch / _ASS_NAME).write_text(document, "utf-8")
            os.symlink(fonts_dir, scratch / _FONTS_LINK_NAME, target_is_directory=True)
            (scratch / _FONTCONFIG_NAME).write_text(_fontconfig_configuration(fonts_dir, scratch), "utf-8")

            def report(seconds: float) -> None:
                on_progress(min(seconds / info.duration_seconds, 1.0) if info.duration_seconds else 0.0)

            run = self._encode(clip, output, scratch, report)
        if run.timed_out:
            output.unlink(missing_ok=True)
            raise ClipTimeoutError(f"ffmpeg ran past the {self._timeout:g}s burn-in time limit and was stopped")
        if run.returncode != 0:
            output.unlink(missing_ok=True)
            raise BurnInFailedError(f"ffmpeg could not burn in the subtitles: {_first_line(run.stderr)}")
        on_progress(1.0)
        return output

    def _displayed_size(self, clip: Path) -> tuple[int, int]:
        """Width and height of the clip's first frame as ffmpeg's filters receive it."""
        fetch = local_file_fetch(clip)
        arguments = [
            *fetch.options,
            "-i", fetch.location,
            "-map", "0:v:0", "-frames:v", "1", "-vf", "showinfo",
            "-f", "null", "-",
        ]  # fmt: skip
        run = run_ffmpeg(self._ffmpeg, arguments, self._timeout)
        if run.timed_out:
            raise ClipTimeoutError(f"ffmpeg ran past the {self._timeout:g}s burn-in time limit and was stopped")
        size = _SHOWINFO_SIZE.search(run.stderr)
        if size is None:
            raise BurnInFailedError(f"ffmpeg could not decode the clip's picture: {last_stderr_line(run.stderr)}")
        return int(size.group(1)), int(size.group(2))

    def _encode(self, clip: Path, output: Path, scratch: Path, on_out_time: ProgressCallback) -> FfmpegRun:
        fetch = local_file_fetch(clip)
        arguments = [
            # Errors only: libass reports every glyph it lacks, which would push the
            # cause out of the stderr tail run_ffmpeg keeps.
            "-loglevel", "error",
            *fetch.options,
            "-i", fetch.location,
            "-map", "0:v:0", "-map", "0:a:0?",
            "-vf", f"{_EVEN_SIZE_FILTER},ass=filename={_ASS_NAME}:fontsdir={_FONTS_LINK_NAME}",
            *H264_VIDEO_OPTIONS,
            "-c:a", "copy",
            *(["-threads", str(self._threads)] if self._threads else []),
            "-movflags", "+faststart",
            "-f", "mp4", f"file:{os.path.abspath(output)}",
        ]  # fmt: skip
        # FONTCONFIG_FILE replaces the system configuration (and the user's, which it
        # would include) instead of adding to it.
        environment = {"FONTCONFIG_FILE": str(scratch / _FONTCONFIG_NAME)}
        return run_ffmpeg(
            self._ffmpeg, arguments, self._timeout, on_out_time, cwd=scratch, extra_environment=environment
        )


def _fontconfig_configuration(fonts_dir: Path, scratch: Path) -> str:
    """A fontconfig configuration that knows the fonts in ``fonts_dir`` (absolute) and nothing else.

    Its cache goes to the scratch directory: the system cache may be read-only (Lambda)
    and describes fonts that are not ours.
    """
    return (
        '<?xml version="1.0"?>\n'
        "<fontconfig>\n"
        f"  <dir>{xml_escape(str(fonts_dir))}</dir>\n"
        f"  <cachedir>{xml_escape(str(scratch / _FONTCONFIG_CACHE_NAME))}</cachedir>\n"
        "</fontconfig>\n"
    )


def _first_line(stderr: str) -> str:
    # At the error log level the first line is the cause; the last ones are ffmpeg's
    # generic epilogue ("Conversion failed!", "Nothing was written into output file").
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else "no output"
