"""Extracting the speech track for transcription."""

from __future__ import annotations

from pathlib import Path

from ..domain.errors import AudioExtractionError, NoAudioError
from .ffmpeg_process import run_ffmpeg

# What every speech model here expects: mono, 16 kHz, 16-bit PCM. Converting once
# here keeps providers simple and makes the hash that keys the transcript cache
# depend on the audio alone, not on the container or codec it came in.
SPEECH_AUDIO_OPTIONS = ["-vn", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", "-f", "wav"]
# ffmpeg writes the encoder name into the WAV's LIST chunk; without it equal audio gives equal bytes across versions.
_DETERMINISTIC_OUTPUT = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact"]


class FfmpegAudioExtractor:
    """AudioExtractor with ffmpeg."""

    def __init__(self, ffmpeg: str, timeout_seconds: float) -> None:
        self._ffmpeg = ffmpeg
        self._timeout = timeout_seconds

    def extract(self, media: Path, work_dir: Path) -> Path:
        output = work_dir / "speech.wav"
        run = run_ffmpeg(
            self._ffmpeg,
            ["-i", str(media), *SPEECH_AUDIO_OPTIONS, *_DETERMINISTIC_OUTPUT, str(output)],
            self._timeout,
        )
        if run.returncode == 0:
            return output
        output.unlink(missing_ok=True)
        if "does not contain any stream" in run.stderr or "matches no streams" in run.stderr:
            raise NoAudioError("the clip has no audio to transcribe")
        if run.timed_out:
            raise AudioExtractionError(f"extracting the audio took longer than {self._timeout:g}s")
        raise AudioExtractionError(f"ffmpeg could not extract the audio: {run.stderr.strip()[-300:]}")
