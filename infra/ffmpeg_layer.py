"""The ffmpeg layer: built from the imageio-ffmpeg and font wheels at synth time, never committed."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from layers.ffmpeg.build import build_ffmpeg_layer, check_fits_lambda

from . import BUILD_DIR

FFMPEG_LAYER_DIR = BUILD_DIR / "layers" / "ffmpeg"
# Where Lambda mounts the layer's bin/ (layers unpack under /opt).
LAYER_FFMPEG_PATH = "/opt/bin/ffmpeg"


class FfmpegLayer(Construct):
    """``bin/ffmpeg`` (x86_64), ``share/fonts/`` and ``share/fontconfig/fonts.conf`` as a layer."""

    def __init__(self, scope: Construct, construct_id: str, *, build_dir: Path = FFMPEG_LAYER_DIR) -> None:
        super().__init__(scope, construct_id)
        self.directory = build_ffmpeg_layer(build_dir)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(str(self.directory)),
            compatible_architectures=[lambda_.Architecture.X86_64],
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            description="ffmpeg (imageio-ffmpeg's static x86_64 build), the subtitle font and fontconfig",
        )

    def check_fits_with(self, *other_dirs: Path) -> int:
        """The unzipped size of this layer with a function's code and other layers.

        Raises:
            ValueError: together they are over Lambda's 250 MB unzipped limit.
        """
        return check_fits_lambda(self.directory, *other_dirs)
