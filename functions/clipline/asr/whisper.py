"""faster-whisper on the local CPU: the default provider in local mode.

faster_whisper is an optional extra (``clipline[whisper]``), so it is imported
inside the functions that need it, never at module scope.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..domain.errors import (
    ClipLineError,
    TranscriptionRejectedError,
    TranscriptionTimeoutError,
    TranscriptionUpstreamError,
)
from ..domain.ports import ProgressCallback
from ..domain.transcripts import Segment, Transcript, Word
from ..media import running_work

# int8 on CPU is faster-whisper's recommended CPU setting: about half the time of
# float32 for the same words on the bundled fixture.
COMPUTE_TYPE = "int8"
# faster-whisper's default beam. Beam 1 gave the same words on the fixture and is
# about a third faster there, but beam search is what keeps quality on harder speech.
BEAM_SIZE = 5

# One loaded model per (model, threads) per process: loading reads ~150 MB (base)
# and takes most of a second, and a worker transcribes many clips.
_models: dict[tuple[str, int], Any] = {}
_models_lock = threading.Lock()
_digests: dict[str, str] = {}
_digests_lock = threading.Lock()


def _is_path(model: str) -> bool:
    # A model name is a size ("base") or a Hub id ("Systran/faster-whisper-base");
    # anything that exists on disk, or looks like a filesystem path, is a folder.
    return Path(model).expanduser().exists() or model.startswith((".", "/", "~")) or "\\" in model


def _load_model(model: str, cpu_threads: int) -> Any:
    """The process-wide WhisperModel for (model, cpu_threads), loaded on first use.

    Raises:
        TranscriptionUpstreamError: faster-whisper is not installed, or the model cannot be found or loaded.
    """
    key = (model, cpu_threads)
    with _models_lock:
        loaded = _models.get(key)
        if loaded is not None:
            return loaded
        try:
            from faster_whisper import WhisperModel
        except ImportError as error:
            raise TranscriptionUpstreamError(
                f"the whisper provider needs faster-whisper (pip install 'clipline[whisper]'): {error}"
            ) from error
        if _is_path(model) and not Path(model).expanduser().is_dir():
            # Without this check faster-whisper would take the path for a Hub id and try to download it.
            raise TranscriptionUpstreamError(f"whisper model folder {model} does not exist")
        try:
            loaded = WhisperModel(
                str(Path(model).expanduser()) if _is_path(model) else model,
                device="cpu",
                compute_type=COMPUTE_TYPE,
                cpu_threads=cpu_threads,
            )
        except Exception as error:  # ctranslate2 and huggingface_hub raise many unrelated types
            raise TranscriptionUpstreamError(f"whisper model {model} could not be loaded: {error}") from error
        _models[key] = loaded
        return loaded


def _model_digest(folder: Path) -> str:
    """A short sha256 of the folder's model.bin, computed once per process."""
    weights = folder.expanduser().resolve() / "model.bin"
    with _digests_lock:
        digest = _digests.get(str(weights))
        if digest is None:
            try:
                with weights.open("rb") as file:
                    digest = hashlib.file_digest(file, "sha256").hexdigest()[:16]
            except OSError as error:
                raise TranscriptionUpstreamError(f"whisper model {folder} has no readable model.bin: {error}") from error
            _digests[str(weights)] = digest
        return digest


class WhisperTranscriber:
    """Transcribes with faster-whisper on the CPU, with word timings and voice-activity filtering.

    ``model`` is a faster-whisper model name (downloaded on first use) or the
    path of a CTranslate2 model folder. The model loads on the first call and is
    then shared by every transcriber in the process with the same model and threads.
    ``now`` is the clock ``timeout_seconds`` is measured on.

    Raises (from ``transcribe``):
        TranscriptionUpstreamError: the model cannot be found or loaded, or inference failed.
        TranscriptionRejectedError: the audio cannot be read or decoded.
        TranscriptionTimeoutError: the work ran past ``timeout_seconds``; checked between segments,
            so a single segment can overrun it by its own decoding time.
    """

    provider = "whisper"

    def __init__(
        self, model: str, cpu_threads: int, timeout_seconds: float, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._model_ref = model
        self._cpu_threads = cpu_threads
        self._timeout_seconds = timeout_seconds
        self._now = now
        self.model = Path(model).name if _is_path(model) else model

    def model_version(self) -> str:
        """``whisper-ct2/sha256-<16 hex>`` of model.bin for a folder, so two folders with the
        same name but different weights never share cached transcripts;
        ``faster-whisper/<name>@<faster-whisper version>`` for a named model, which
        avoids reading (or downloading) the weights just to name them; the Hub
        repositories behind the names are not re-published in practice, and a folder
        is the way to make the cache exact. Both end in the compute type, which
        changes the output.

        Raises:
            TranscriptionUpstreamError: the model folder has no readable model.bin.
        """
        if _is_path(self._model_ref):
            return f"whisper-ct2/sha256-{_model_digest(Path(self._model_ref))}/{COMPUTE_TYPE}"
        try:
            from faster_whisper import __version__ as library_version
        except ImportError:
            library_version = "unknown"
        return f"faster-whisper/{self._model_ref}@{library_version}/{COMPUTE_TYPE}"

    def transcribe(self, audio: Path, language: str | None, on_progress: ProgressCallback) -> Transcript:
        deadline = self._now() + self._timeout_seconds
        model = _load_model(self._model_ref, self._cpu_threads)
        if language is not None and language not in model.supported_languages:
            raise TranscriptionRejectedError(f"whisper model {self.model} does not support language {language!r}")
        samples = self._decode(audio, model.feature_extractor.sampling_rate)
        if self._now() > deadline:
            # A first load (or download) can use up the whole limit on its own.
            raise TranscriptionTimeoutError(f"whisper did not start within {self._timeout_seconds:g} s (model loading)")
        try:
            segments, info = model.transcribe(
                samples,
                language=language,
                beam_size=BEAM_SIZE,
                word_timestamps=True,
                vad_filter=True,
            )
            found: list[Segment] = []
            # faster-whisper decodes lazily: each step of this loop runs the model on the
            # next window, which is where the time goes and where we can stop.
            for segment in segments:
                # Local mode stops a cancelled job's transcription here, between windows.
                running_work.raise_if_stopped()
                found.append(_segment(segment))
                if info.duration > 0:
                    on_progress(min(1.0, float(segment.end) / float(info.duration)))
                if self._now() > deadline:
                    raise TranscriptionTimeoutError(
                        f"whisper did not finish within {self._timeout_seconds:g} s "
                        f"(reached {segment.end:.1f} s of {info.duration:.1f} s)"
                    )
        except ClipLineError:
            # Our own: the deadline, or the caller's progress callback stopping an abandoned run.
            raise
        except Exception as error:  # ctranslate2 raises RuntimeError and others
            raise TranscriptionUpstreamError(f"whisper failed: {error}") from error
        on_progress(1.0)
        return Transcript(
            language=info.language,
            duration_seconds=float(info.duration),
            provider=self.provider,
            model=self.model,
            model_version=self.model_version(),
            segments=tuple(found),
        )

    @staticmethod
    def _decode(audio: Path, sampling_rate: int) -> Any:
        # Decoding first, on its own, separates a bad file (the caller's) from a model failure (ours).
        from faster_whisper.audio import decode_audio

        try:
            return decode_audio(str(audio), sampling_rate=sampling_rate)
        except Exception as error:  # PyAV raises its own FFmpegError family (ValueError, OSError)
            raise TranscriptionRejectedError(f"whisper could not read the audio {audio.name}: {error}") from error


def _segment(segment: Any) -> Segment:
    words = tuple(
        Word(
            start=max(0.0, float(word.start)),
            end=max(float(word.start), float(word.end), 0.0),
            text=word.word.strip(),
            probability=min(1.0, max(0.0, float(word.probability))),
        )
        for word in (segment.words or ())
        if word.word.strip()
    )
    return Segment(
        start=max(0.0, float(segment.start)),
        end=max(0.0, float(segment.start), float(segment.end)),
        text=segment.text.strip(),
        words=words,
    )
