"""The ffmpeg Lambda layer: ``bin/ffmpeg``, the subtitle fonts and a fontconfig file.

Lambda mounts a layer at ``/opt``, so the function sees ``/opt/bin/ffmpeg`` and
``/opt/share/fonts`` (where ``clipline.media.burn_in`` looks when the font wheel
is absent). Both come from wheels the ``local`` extra already installs
(imageio-ffmpeg, font-source-sans-pro), so local mode and Lambda run the same
binary and draw with the same fonts, and no binary is committed.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

# Lambda's limit on a function's code plus all its layers, unzipped.
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024

# fontconfig's cache must be writable, and /tmp is the only writable place in Lambda.
LAMBDA_FONTCONFIG_CACHE_DIR = "/tmp/fontconfig-cache"

_ELF_MAGIC = b"\x7fELF"
_ELFCLASS64 = 2
_ELFDATA2LSB = 1
_EM_X86_64 = 62
_ET_EXEC, _ET_DYN = 2, 3  # a plain or a position-independent executable


class FfmpegLayerError(RuntimeError):
    """The layer cannot be built from what is installed here."""


def build_ffmpeg_layer(out_dir: Path) -> Path:
    """Build (or bring up to date) the ffmpeg layer at ``out_dir`` and return ``out_dir``.

    Only ``bin/``, ``share/fonts/`` and ``share/fontconfig/`` are written; files in
    them that the layer no longer needs are removed, and files already identical
    are left untouched, so a second build changes nothing.

    Raises:
        FfmpegLayerError: imageio-ffmpeg's binary is not a Linux x86-64 executable
            (the wheel for another platform is installed), or a wheel is missing.
    """
    from clipline.media.burn_in import LAYER_FONTS_DIR

    out_dir = Path(out_dir)
    ffmpeg = _linux_x86_64_ffmpeg()
    fonts = _wheel_fonts_dir()
    font_files = sorted(path for path in fonts.iterdir() if path.is_file())
    if not any(path.suffix.lower() in {".ttf", ".otf"} for path in font_files):
        raise FfmpegLayerError(f"no font files in {fonts}; reinstall font-source-sans-pro")

    _sync_files(out_dir / "bin", {"ffmpeg": ffmpeg})
    # The exec bit travels into the layer's zip; without it Lambda cannot run the binary.
    (out_dir / "bin" / "ffmpeg").chmod(0o755)
    _sync_files(out_dir / "share" / "fonts", {path.name: path for path in font_files})
    _sync_text(out_dir / "share" / "fontconfig", "fonts.conf", fontconfig_configuration(LAYER_FONTS_DIR))
    return out_dir


def fontconfig_configuration(fonts_dir: Path) -> str:
    """A fontconfig file that knows ``fonts_dir`` alone, with its cache where Lambda can write.

    ffmpeg's burn-in writes its own per-run configuration (``FONTCONFIG_FILE``);
    this one is for any other ffmpeg run that pulls in fontconfig, so it finds
    the layer's fonts instead of failing on the build machine's missing paths.
    """
    return (
        '<?xml version="1.0"?>\n'
        '<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n'
        "<fontconfig>\n"
        f"  <dir>{xml_escape(str(fonts_dir))}</dir>\n"
        f"  <cachedir>{xml_escape(LAMBDA_FONTCONFIG_CACHE_DIR)}</cachedir>\n"
        "</fontconfig>\n"
    )


def unzipped_size(*dirs: Path) -> int:
    """Total bytes of the regular files under ``dirs`` (symlinks are not followed)."""
    total = 0
    for directory in dirs:
        for root, _subdirs, files in os.walk(directory):
            for name in files:
                path = Path(root, name)
                if not path.is_symlink():
                    total += path.stat().st_size
    return total


def check_fits_lambda(*dirs: Path) -> int:
    """The unzipped size of a function's code and layers, checked against Lambda's limit.

    Raises:
        ValueError: together they exceed ``LAMBDA_UNZIPPED_LIMIT_BYTES``; the message
            names each directory's size.
    """
    sizes = {Path(directory): unzipped_size(directory) for directory in dirs}
    total = sum(sizes.values())
    if total > LAMBDA_UNZIPPED_LIMIT_BYTES:
        parts = ", ".join(f"{directory} {_mib(size)}" for directory, size in sizes.items())
        raise ValueError(
            f"function code and layers unzip to {_mib(total)}, over Lambda's "
            f"{_mib(LAMBDA_UNZIPPED_LIMIT_BYTES)} limit: {parts}"
        )
    return total


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def _linux_x86_64_ffmpeg() -> Path:
    try:
        import imageio_ffmpeg
    except ImportError as error:
        raise FfmpegLayerError("imageio-ffmpeg is not installed: pip install -e '.[local]'") from error
    # IMAGEIO_FFMPEG_EXE, when set, is what get_ffmpeg_exe returns: the way to supply a Linux binary elsewhere.
    path = Path(imageio_ffmpeg.get_ffmpeg_exe())
    with path.open("rb") as binary:
        header = binary.read(20)
    is_x86_64_executable = (
        len(header) == 20
        and header[:4] == _ELF_MAGIC
        and header[4] == _ELFCLASS64
        and header[5] == _ELFDATA2LSB
        and int.from_bytes(header[16:18], "little") in {_ET_EXEC, _ET_DYN}
        and int.from_bytes(header[18:20], "little") == _EM_X86_64
    )
    if not is_x86_64_executable:
        raise FfmpegLayerError(
            f"{path} is not a Linux x86-64 executable, and Lambda runs x86_64 Linux. This machine has the "
            "imageio-ffmpeg wheel for its own platform. Build on Linux x86-64, or fetch the Linux wheel "
            "(pip download imageio-ffmpeg --no-deps --only-binary=:all: --platform manylinux2014_x86_64 "
            "-d wheels), unzip it, and set IMAGEIO_FFMPEG_EXE to its imageio_ffmpeg/binaries/ffmpeg-linux-* file."
        )
    return path


def _wheel_fonts_dir() -> Path:
    # The same lookup burn-in uses, so the layer carries exactly the fonts local mode draws with.
    from clipline.media.burn_in import LAYER_FONTS_DIR, default_fonts_dir

    fonts = default_fonts_dir()
    if fonts is None or fonts == LAYER_FONTS_DIR:
        raise FfmpegLayerError("font-source-sans-pro is not installed: pip install -e '.[local]'")
    return fonts


def _sync_files(directory: Path, wanted: dict[str, Path]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _remove_unwanted(directory, set(wanted))
    for name, source in wanted.items():
        target = directory / name
        if target.is_file() and not target.is_symlink() and filecmp.cmp(source, target, shallow=False):
            continue
        target.unlink(missing_ok=True)
        shutil.copyfile(source, target)


def _sync_text(directory: Path, name: str, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _remove_unwanted(directory, {name})
    target = directory / name
    if not (target.is_file() and target.read_text("utf-8") == text):
        target.write_text(text, "utf-8")


def _remove_unwanted(directory: Path, wanted: set[str]) -> None:
    for entry in directory.iterdir():
        if entry.name in wanted and (entry.is_file() or entry.is_symlink()):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
