"""The whisper provider with a real model on the committed speech fixture.

The model is ``CLIPLINE_WHISPER_MODEL`` when set, else the converted base model
kept beside the repository (``../shared/models/whisper-base-ct2``). Without
either there is nothing to load offline, and the model tests skip.
"""

from __future__ import annotations

import hashlib
import wave
from pathlib import Path

import pytest

pytest.importorskip("faster_whisper", reason="the whisper extra (faster-whisper) is not installed")

from clipline.asr.whisper import WhisperTranscriber  # noqa: E402
from tests.conftest import SPEECH_FIXTURES, SPEECH_REFERENCE, word_error_rate  # noqa: E402
from clipline.domain.errors import (  # noqa: E402
    TranscriptionRejectedError,
    TranscriptionTimeoutError,
    TranscriptionUpstreamError,
)

SPEECH_WAV = SPEECH_FIXTURES / "speech.wav"
REFERENCE = SPEECH_REFERENCE.read_text(encoding="utf-8")
MAX_WORD_ERROR_RATE = 0.25


@pytest.fixture(scope="module")
def model(whisper_model) -> str:
    return whisper_model


@pytest.fixture(scope="module")
def transcriber(model) -> WhisperTranscriber:
    return WhisperTranscriber(model, cpu_threads=0, timeout_seconds=120)


@pytest.fixture(scope="module")
def detected(transcriber):
    """One transcription of the fixture with language detection, shared by the checks below."""
    progress: list[float] = []
    return transcriber.transcribe(SPEECH_WAV, None, progress.append), progress


def audio_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def test_word_error_rate_on_the_fixture(detected):
    # Given the fixture's reference text, When whisper transcribes its audio
    transcript, _ = detected
    # Then at most a quarter of the words differ, ignoring case and punctuation
    error_rate = word_error_rate(REFERENCE, transcript.text)
    assert error_rate <= MAX_WORD_ERROR_RATE, f"WER {error_rate:.2f}: heard {transcript.text!r}"


def test_detects_english_and_describes_itself(detected, model):
    transcript, _ = detected
    assert transcript.language == "en"
    assert transcript.provider == "whisper"
    assert transcript.model == Path(model).name
    assert transcript.duration_seconds == pytest.approx(audio_seconds(SPEECH_WAV), abs=0.01)


def test_word_timings_are_monotonic_and_inside_the_audio(detected):
    transcript, progress = detected
    words = transcript.words
    duration = audio_seconds(SPEECH_WAV)
    assert len(words) >= 10
    assert all(0 <= w.start <= w.end <= duration for w in words)
    assert all(a.start <= b.start and a.end <= b.end for a, b in zip(words, words[1:]))
    for segment in transcript.segments:
        assert segment.start <= segment.words[0].start and segment.words[-1].end <= segment.end + 0.5
    # And progress rose to 1.0 as segments arrived
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_model_version_names_the_weights(transcriber, model):
    # Given a model folder, When we ask for its version, Then it names a digest of its weights,
    # so two folders with the same name never share cached transcripts
    if not Path(model).is_dir():
        pytest.skip("the configured model is a name, not a folder")
    with (Path(model) / "model.bin").open("rb") as weights:
        digest = hashlib.file_digest(weights, "sha256").hexdigest()
    assert transcriber.model_version() == f"whisper-ct2/sha256-{digest[:16]}/int8"


class SegmentClock:
    """Time that passes only when a segment is reported, one second a segment: where the limit falls
    does not depend on how busy the machine is."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds

    def segment_reported(self, progress: float) -> None:
        self.seconds += 1.0


def test_timeout_is_enforced_between_segments(model):
    # Given a 0.5 s limit, and a clock on which loading and decoding take no time but each
    # recognised segment takes a second
    clock = SegmentClock()
    hurried = WhisperTranscriber(model, cpu_threads=0, timeout_seconds=0.5, now=clock)
    # When it transcribes, Then it stops with TIMEOUT after the first segment instead of finishing
    with pytest.raises(TranscriptionTimeoutError, match=r"within 0.5 s \(reached"):
        hurried.transcribe(SPEECH_WAV, "en", clock.segment_reported)
    assert clock.seconds == 1.0


def test_audio_that_cannot_be_decoded_is_rejected(transcriber, tmp_path):
    not_audio = tmp_path / "clip.wav"
    not_audio.write_bytes(b"plainly not audio\n" * 100)
    with pytest.raises(TranscriptionRejectedError, match="could not read the audio"):
        transcriber.transcribe(not_audio, None, lambda _: None)


def test_unknown_language_is_rejected(transcriber):
    with pytest.raises(TranscriptionRejectedError, match="'xx'"):
        transcriber.transcribe(SPEECH_WAV, "xx", lambda _: None)


def test_missing_model_folder_is_upstream_failure(tmp_path):
    # Given a model path that does not exist, When we transcribe, Then the model cannot load
    missing = WhisperTranscriber(str(tmp_path / "no-such-model"), cpu_threads=1, timeout_seconds=10)
    with pytest.raises(TranscriptionUpstreamError, match="does not exist"):
        missing.transcribe(SPEECH_WAV, "en", lambda _: None)


def test_folder_without_a_model_is_upstream_failure_with_the_library_message(tmp_path):
    # Given an existing folder with no model in it
    empty = tmp_path / "empty-model"
    empty.mkdir()
    # When we transcribe, Then the failure keeps CTranslate2's own explanation
    with pytest.raises(TranscriptionUpstreamError, match="model.bin"):
        WhisperTranscriber(str(empty), cpu_threads=1, timeout_seconds=10).transcribe(SPEECH_WAV, "en", lambda _: None)
