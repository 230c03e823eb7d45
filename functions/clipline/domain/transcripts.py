"""A transcript: what a speech-recognition provider heard, with word timings.

Times are seconds from the start of the transcribed audio, which is the clip, so
they are already relative to the clip.
"""

from __future__ import annotations

from pydantic import Field

from .models import DomainModel


class Word(DomainModel):
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    text: str = Field(description="The word as the provider wrote it, with its punctuation, without surrounding spaces")
    probability: float | None = Field(None, ge=0, le=1)


class Segment(DomainModel):
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    text: str
    words: tuple[Word, ...] = ()


class Transcript(DomainModel):
    language: str = Field(description="ISO 639-1 code the provider used or detected")
    duration_seconds: float = Field(ge=0, description="Length of the transcribed audio")
    provider: str = Field(description="whisper, openai, transcribe or fake")
    model: str = Field(description="The provider's model name")
    model_version: str = Field(description="Identifies the model exactly; part of the transcript cache key")
    segments: tuple[Segment, ...] = ()

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(word for segment in self.segments for word in segment.words)

    @property
    def text(self) -> str:
        return " ".join(segment.text.strip() for segment in self.segments if segment.text.strip())
