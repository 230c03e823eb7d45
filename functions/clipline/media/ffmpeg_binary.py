"""Which ffmpeg to run: the configured one (the Lambda layer's), else the imageio-ffmpeg wheel's."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..domain.errors import InternalError


@lru_cache(maxsize=4)
def find_ffmpeg(configured: str | None) -> str:
    """The ffmpeg executable's path.

    Raises:
        InternalError: the configured path does not exist, or no ffmpeg is installed.
    """
    if configured:
        if not Path(configured).is_file():
            raise InternalError(f"CLIPLINE_FFMPEG points at {configured}, which does not exist")
        return configured
    try:
        import imageio_ffmpeg  # imported here: the Lambda image has no wheel, only the layer
    except ImportError as error:
        raise InternalError("no ffmpeg: set CLIPLINE_FFMPEG or install clipline[local]") from error
    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_to_run(configured: str | None) -> str:
    """The ffmpeg a function's media services will run, without requiring that it exists yet.

    Only the media tasks get the ffmpeg layer; the API and bookkeeping functions
    build the same object graph but never run ffmpeg, so a missing binary is
    reported when a run is attempted (by ``run_ffmpeg``), not when the graph is built.
    """
    try:
        return find_ffmpeg(configured)
    except InternalError:
        return configured or "ffmpeg"
