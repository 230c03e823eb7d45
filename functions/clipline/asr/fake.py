"""A deterministic transcriber for tests and demos: plausible words at fixed times, no model."""

from __future__ import annotations

import threading
import time
import wave
from pathlib import Path

from ..domain.errors import TranscriptionRejectedError, TranscriptionTimeoutError, TranscriptionUpstreamError
from ..domain.ports import ProgressCallback
from ..domain.transcripts import Segment, Transcript, Word

SENTENCES = (
    "This is a generated transcript.",
    "Every word arrives at a steady pace.",
    "The same audio always gives the same words.",
    "Nothing here was heard by a model.",
)
WORD_SECONDS = 0.4
SENTENCE_PAUSE_SECONDS = 0.8
FAILURES = ("timeout", "upstream", "rejected")
_HANG_STEP_SECONDS = 0.05


class FakeTranscriber:
    """Emits the ``SENTENCES`` words cyclically, one every 0.4 s with a 0.8 s pause after each
    sentence, for as long as the WAV lasts; one segment per sentence.

    ``failure`` makes every call fail with that code; ``hang_seconds`` delays each call,
    like a provider that does not answer, and one that reaches ``timeout_seconds`` ends in a
    timeout at that moment. ``calls`` counts calls, from any thread.

    Raises (from ``transcribe``):
        TranscriptionTimeoutError: ``failure="timeout"``, or ``hang_seconds`` >= ``timeout_seconds``.
        TranscriptionUpstreamError: ``failure="upstream"``.
        TranscriptionRejectedError: ``failure="rejected"``, or the audio is not a readable WAV.
    """

    provider = "fake"
    model = "fake"

    def __init__(self, failure: str | None = None, hang_seconds: float = 0.0, timeout_seconds: float = 30.0) -> None:
        if failure is not None and failure not in FAILURES:
            raise ValueError(f"failure must be one of {FAILURES} or None, not {failure!r}")
        self.failure = failure
        self.hang_seconds = hang_seconds
        self.timeout_seconds = timeout_seconds
        self._calls = 0
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        with self._lock:
            return self._calls

    def model_version(self) -> str:
        return "fake-1"

    def transcribe(self, audio: Path, language: str | None, on_progress: ProgressCallback) -> Transcript:
        with self._lock:
            self._calls += 1
        on_progress(0.0)
        self._hang(on_progress)
        if self.failure == "timeout":
            raise TranscriptionTimeoutError(f"fake transcriber: simulated timeout after {self.timeout_seconds:g} s")
        if self.failure == "upstream":
            raise TranscriptionUpstreamError("fake transcriber: simulated provider failure (HTTP 503)")
        if self.failure == "rejected":
            raise TranscriptionRejectedError("fake transcriber: simulated refusal of the audio")
        duration = _wav_seconds(audio)
        segments = tuple(_segments(duration))
        on_progress(0.5)
        on_progress(1.0)
        return Transcript(
            language=language or "en",
            duration_seconds=duration,
            provider=self.provider,
            model=self.model,
            model_version=self.model_version(),
            segments=segments,
        )

    def _hang(self, on_progress: ProgressCallback) -> None:
        if self.hang_seconds <= 0:
            return
        # Small steps keep the thread responsive to the limit, as a polling client would be.
        started = time.monotonic()
        limit = min(self.hang_seconds, self.timeout_seconds)
        while (elapsed := time.monotonic() - started) < limit:
            time.sleep(min(_HANG_STEP_SECONDS, limit - elapsed))
        if self.hang_seconds >= self.timeout_seconds:
            raise TranscriptionTimeoutError(
                f"fake transcriber: no answer within {self.timeout_seconds:g} s (set to hang {self.hang_seconds:g} s)"
            )
        on_progress(0.25)


def _wav_seconds(audio: Path) -> float:
    try:
        with wave.open(str(audio), "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    except (OSError, EOFError, wave.Error) as error:
        raise TranscriptionRejectedError(f"fake transcriber: {audio.name} is not a readable WAV: {error}") from error


def _segments(duration: float):
    clock = 0.0
    sentence_index = 0
    while True:
        words: list[Word] = []
        for text in SENTENCES[sentence_index % len(SENTENCES)].split():
            if clock + WORD_SECONDS > duration:
                break
            words.append(Word(start=round(clock, 3), end=round(clock + WORD_SECONDS, 3), text=text, probability=1.0))
            clock += WORD_SECONDS
        if words:
            yield Segment(
                start=words[0].start, end=words[-1].end, text=" ".join(w.text for w in words), words=tuple(words)
            )
        if clock + WORD_SECONDS > duration:
            return
        clock += SENTENCE_PAUSE_SECONDS
        sentence_index += 1
