"""Shared fixtures: the real ffmpeg, generated media, and a Range-capable media server."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from clipline.local.media_server import MediaServer
from clipline.local.sample_media import make_sample_video
from clipline.media.clip import FfmpegClipper
from clipline.media.ffmpeg_binary import find_ffmpeg
from clipline.media.probe import FfmpegProber

# Tests never reach AWS: boto3 gets fake credentials and a fixed region.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


SPEECH_FIXTURES = Path(__file__).parent / "fixtures" / "speech"
SPEECH_WAV = SPEECH_FIXTURES / "speech.wav"
SPEECH_REFERENCE = SPEECH_FIXTURES / "speech.txt"


WHISPER_MODEL_BESIDE_REPO = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "whisper-base-ct2"


def offline_whisper_model() -> str | None:
    """``CLIPLINE_WHISPER_MODEL`` when set, else the converted base model kept beside the repository."""
    configured = os.environ.get("CLIPLINE_WHISPER_MODEL")
    if configured:
        return configured
    return str(WHISPER_MODEL_BESIDE_REPO) if (WHISPER_MODEL_BESIDE_REPO / "model.bin").is_file() else None


@pytest.fixture(scope="session")
def whisper_model() -> str:
    pytest.importorskip("faster_whisper", reason="the whisper extra (faster-whisper) is not installed")
    found = offline_whisper_model()
    if found is None:
        pytest.skip(
            "no whisper model can be loaded offline: set CLIPLINE_WHISPER_MODEL to a CTranslate2 model folder "
            "(or to a model name, with internet access)"
        )
    return found


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER with case and punctuation ignored: they are presentation, not recognition."""
    import jiwer

    normalise = jiwer.Compose(
        [jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
         jiwer.ReduceToListOfListOfWords()]
    )  # fmt: skip
    # Line breaks are word breaks; jiwer only splits on spaces.
    reference, hypothesis = " ".join(reference.split()), " ".join(hypothesis.split())
    return jiwer.wer(reference, hypothesis, reference_transform=normalise, hypothesis_transform=normalise)


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return find_ffmpeg(None)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory, ffmpeg: str) -> Path:
    """Generated once per session: small files, made by ffmpeg's lavfi sources."""
    root = tmp_path_factory.mktemp("media")
    # Long and faststart, no B-frames, keyframe every 2 s: the demo's shape.
    make_sample_video(ffmpeg, root / "long.mp4", seconds=180, size="640x360", keyframe_seconds=2)
    # B-frames make a stream copy overrun the end, so it cannot be exact.
    make_sample_video(ffmpeg, root / "bframes.mp4", seconds=20, size="320x180", b_frames=3)
    _run(ffmpeg, [
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine",
        "-t", "12", "-c:v", "libtheora", "-c:a", "libvorbis", str(root / "theora.ogv"),
    ])  # fmt: skip
    (root / "not-media.mp4").write_bytes(b"this is plainly not a video\n" * 400)
    make_speech_video(ffmpeg, root / "speech.mp4")
    _run(ffmpeg, [
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "6", "-c:v", "libx264", str(root / "silent.mp4"),
    ])  # fmt: skip
    return root


def make_speech_video(ffmpeg: str, path: Path) -> Path:
    """The committed speech fixture under a moving picture, with 2 s of silence on each side: 13.5 s."""
    _run(ffmpeg, [
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-i", str(SPEECH_WAV),
        "-filter_complex", "[1:a]adelay=2000:all=1,apad=pad_dur=2[a]", "-map", "0:v", "-map", "[a]",
        "-t", "13.5", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart",
        str(path),
    ])  # fmt: skip
    return path


def _run(ffmpeg: str, arguments: list[str]) -> None:
    import subprocess

    subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y", *arguments], check=True)


@pytest.fixture(scope="session")
def prober(ffmpeg: str) -> FfmpegProber:
    return FfmpegProber(ffmpeg, timeout_seconds=30)


@pytest.fixture(scope="session")
def clipper(ffmpeg: str, prober: FfmpegProber) -> FfmpegClipper:
    return FfmpegClipper(ffmpeg, prober, timeout_seconds=120, threads=2)


@pytest.fixture(scope="session")
def media_server(media_dir: Path):
    with MediaServer(media_dir) as server:
        yield server


@pytest.fixture
def stalled_source_url():
    """An http URL whose server accepts the connection and then never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/stalled.mp4"
    listener.close()


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium for the console's tests; they skip without one, except where it is required (CI)."""
    from .console_page import browser_missing_reason, chromium

    reason = browser_missing_reason()
    if reason:
        if os.environ.get("CLIPLINE_BROWSER_TESTS") == "required":
            pytest.fail(reason)
        pytest.skip(reason)
    with chromium() as running:
        yield running


@pytest.fixture
def open_console(browser):
    """Opens the console at a URL in a fresh browser context; every one is closed after the test."""
    from .console_page import ConsolePage

    opened = []

    def open_at(url: str):
        opened.append(ConsolePage.open(browser, url))
        return opened[-1]

    yield open_at
    for console in opened:
        console.close()
