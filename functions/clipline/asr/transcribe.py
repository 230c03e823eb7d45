"""Amazon Transcribe batch jobs: the default provider on AWS.

The audio goes to S3 under ``asr-input/``, Transcribe writes its JSON under
``asr-output/``, and both objects and the job are deleted afterwards whatever
happened. The bucket's lifecycle rules are the backstop for anything a crash leaves.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
import wave
from pathlib import Path
from typing import Any, Callable

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

from ..domain.errors import TranscriptionRejectedError, TranscriptionTimeoutError, TranscriptionUpstreamError
from ..domain.ports import ProgressCallback
from ..domain.transcripts import Segment, Transcript, Word

INPUT_PREFIX = "asr-input/"
OUTPUT_PREFIX = "asr-output/"

# Transcribe wants a locale; the port speaks ISO 639-1. One common locale per language.
LANGUAGE_CODES = {
    "ar": "ar-SA", "da": "da-DK", "de": "de-DE", "en": "en-US", "es": "es-US", "fa": "fa-IR",
    "fi": "fi-FI", "fr": "fr-FR", "he": "he-IL", "hi": "hi-IN", "id": "id-ID", "it": "it-IT",
    "ja": "ja-JP", "ko": "ko-KR", "ms": "ms-MY", "nl": "nl-NL", "no": "no-NO", "pl": "pl-PL",
    "pt": "pt-BR", "ro": "ro-RO", "ru": "ru-RU", "sv": "sv-SE", "th": "th-TH", "tr": "tr-TR",
    "uk": "uk-UA", "vi": "vi-VN", "zh": "zh-CN",
}  # fmt: skip

# A failed job's FailureReason is free text; these phrases mean the audio or the
# request is at fault, so retrying the same input cannot help.
_REJECTED_REASON = re.compile(
    r"unsupported|invalid|not supported|media format|does not match|too (large|long|short)|sample rate|corrupt",
    re.IGNORECASE,
)
# Client errors that are about our request, not about the service's state.
_REJECTED_ERROR_CODES = frozenset({"BadRequestException"})
_SENTENCE_END = (".", "?", "!", "。", "？", "！")


class AmazonTranscribeTranscriber:
    """Transcribes with an Amazon Transcribe batch job, staging the audio and the result in ``bucket``.

    ``now`` and ``sleep`` are injectable so tests can run the polling loop without waiting.

    Raises (from ``transcribe``):
        TranscriptionTimeoutError: the job did not finish within ``timeout_seconds`` (the job is then deleted).
        TranscriptionUpstreamError: throttling, a service error, an unreachable endpoint, a failed
            job whose reason is not about the audio, or output that cannot be read.
        TranscriptionRejectedError: the audio is not a readable WAV, the language has no Transcribe
            locale, Transcribe answered BadRequestException, or the job failed because of the media.
    """

    provider = "transcribe"
    model = "amazon-transcribe"

    def __init__(
        self,
        transcribe_client: Any,
        s3_client: Any,
        bucket: str,
        timeout_seconds: float,
        poll_seconds: float,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._transcribe = transcribe_client
        self._s3 = s3_client
        self._bucket = bucket
        self._timeout_seconds = timeout_seconds
        self._poll_seconds = poll_seconds
        self._now = now
        self._sleep = sleep

    def model_version(self) -> str:
        """``amazon-transcribe/standard``: AWS does not expose model versions, so a server-side
        model update cannot be noticed; the language is not part of it (the port's
        ``model_version`` takes none), so callers keep the language in their cache key.
        """
        return "amazon-transcribe/standard"

    def transcribe(self, audio: Path, language: str | None, on_progress: ProgressCallback) -> Transcript:
        duration, sample_rate = _wav_info(audio)
        # Both refusals come before anything is uploaded.
        language_setting = {"LanguageCode": _locale(language)} if language else {"IdentifyLanguage": True}
        started = self._now()
        deadline = started + self._timeout_seconds
        name = f"clipline-{uuid.uuid4().hex}"
        input_key = f"{INPUT_PREFIX}{name}.wav"
        # We choose the output key ourselves and read it back from there, rather than
        # parsing TranscriptFileUri, whose form depends on region and endpoint style.
        output_key = f"{OUTPUT_PREFIX}{name}.json"
        job_started = False
        try:
            self._call("upload the audio", self._s3.upload_file, str(audio), self._bucket, input_key,
                       ExtraArgs={"ContentType": "audio/wav"})  # fmt: skip
            request: dict[str, Any] = {
                "TranscriptionJobName": name,
                "Media": {"MediaFileUri": f"s3://{self._bucket}/{input_key}"},
                "MediaFormat": "wav",
                "MediaSampleRateHertz": sample_rate,
                "OutputBucketName": self._bucket,
                "OutputKey": output_key,
                **language_setting,
            }
            self._call("start the job", self._transcribe.start_transcription_job, **request)
            job_started = True
            job = self._wait(name, started, deadline, duration, on_progress)
            document = self._read_output(output_key)
            transcript = _transcript(document, job, language, duration, self.model_version())
            on_progress(1.0)
            return transcript
        finally:
            self._clean_up(name if job_started else None, (input_key, output_key))

    def _wait(
        self, name: str, started: float, deadline: float, duration: float, on_progress: ProgressCallback
    ) -> dict[str, Any]:
        # Transcribe reports no progress; this estimate rises towards 0.95 at a pace of
        # about a third of real time, so a caller's heartbeat still sees movement.
        expected = max(30.0, duration / 3)
        while True:
            job = self._call("read the job", self._transcribe.get_transcription_job, TranscriptionJobName=name)[
                "TranscriptionJob"
            ]
            status = job.get("TranscriptionJobStatus")
            if status == "COMPLETED":
                return job
            if status == "FAILED":
                reason = job.get("FailureReason") or "no reason given"
                if _REJECTED_REASON.search(reason):
                    raise TranscriptionRejectedError(f"Amazon Transcribe refused the audio: {reason}")
                raise TranscriptionUpstreamError(f"Amazon Transcribe job failed: {reason}")
            now = self._now()
            on_progress(0.95 * (1 - math.exp(-(now - started) / expected)))
            if now >= deadline:
                raise TranscriptionTimeoutError(
                    f"Amazon Transcribe did not finish within {self._timeout_seconds:g} s (last status {status})"
                )
            self._sleep(min(self._poll_seconds, max(0.0, deadline - now)))

    def _read_output(self, key: str) -> dict[str, Any]:
        response = self._call("read the result", self._s3.get_object, Bucket=self._bucket, Key=key)
        try:
            return json.loads(response["Body"].read())
        except ValueError as error:
            raise TranscriptionUpstreamError(f"Amazon Transcribe wrote output that is not JSON: {error}") from error

    def _clean_up(self, job_name: str | None, keys: tuple[str, ...]) -> None:
        # Best effort: a failed cleanup must not hide the outcome; lifecycle rules expire leftovers.
        try:
            self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True})
        except (ClientError, BotoCoreError):
            pass
        if job_name:
            try:
                self._transcribe.delete_transcription_job(TranscriptionJobName=job_name)
            except (ClientError, BotoCoreError):
                pass

    @staticmethod
    def _call(what: str, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return operation(*args, **kwargs)
        except ClientError as error:
            details = error.response.get("Error", {})
            code = details.get("Code", "Unknown")
            message = f"Amazon Transcribe: could not {what}: {code}: {details.get('Message', error)}"
            if code in _REJECTED_ERROR_CODES:
                raise TranscriptionRejectedError(message) from error
            raise TranscriptionUpstreamError(message) from error
        except (BotoCoreError, Boto3Error) as error:
            # upload_file reports S3 failures as boto3's S3UploadFailedError, not ClientError.
            raise TranscriptionUpstreamError(f"Amazon Transcribe: could not {what}: {error}") from error


def _wav_info(audio: Path) -> tuple[float, int]:
    """Duration in seconds and sample rate of a PCM WAV file.

    Raises:
        TranscriptionRejectedError: the file is missing or not a PCM WAV.
    """
    try:
        with wave.open(str(audio), "rb") as wav:
            return wav.getnframes() / wav.getframerate(), wav.getframerate()
    except (OSError, EOFError, wave.Error) as error:
        raise TranscriptionRejectedError(f"the audio {audio.name} is not a readable PCM WAV: {error}") from error


def _locale(language: str) -> str:
    if "-" in language:
        return language  # already a locale such as en-GB
    try:
        return LANGUAGE_CODES[language.lower()]
    except KeyError:
        raise TranscriptionRejectedError(f"Amazon Transcribe has no locale configured for language {language!r}") from None


def _transcript(
    document: dict[str, Any], job: dict[str, Any], language: str | None, duration: float, model_version: str
) -> Transcript:
    results = document.get("results") or {}
    try:
        words, word_for_item = _words(results.get("items") or ())
        segments = _segments_from_audio_segments(
            results.get("audio_segments"), words, word_for_item
        ) or _segments_by_sentence(words)
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise TranscriptionUpstreamError(f"Amazon Transcribe output has an unexpected shape: {error!r}") from error
    locale = job.get("LanguageCode") or results.get("language_code")
    return Transcript(
        language=locale.split("-")[0].lower() if locale else (language or "und"),
        duration_seconds=duration,
        provider=AmazonTranscribeTranscriber.provider,
        model=AmazonTranscribeTranscriber.model,
        model_version=model_version,
        segments=tuple(segments),
    )


def _words(items: Any) -> tuple[list[Word], dict[int, int]]:
    """The words, each with the punctuation that follows it, and a map from item id to word index."""
    words: list[Word] = []
    word_for_item: dict[int, int] = {}
    for position, item in enumerate(items):
        alternative = item["alternatives"][0]
        content = str(alternative["content"])
        item_id = int(item.get("id", position))
        if item.get("type") == "punctuation":
            if words:
                words[-1] = words[-1].model_copy(update={"text": words[-1].text + content})
                word_for_item[item_id] = len(words) - 1
            continue
        start = max(0.0, float(item["start_time"]))
        confidence = alternative.get("confidence")
        words.append(
            Word(
                start=start,
                end=max(start, float(item["end_time"])),
                text=content.strip(),
                probability=None if confidence is None else min(1.0, max(0.0, float(confidence))),
            )
        )
        word_for_item[item_id] = len(words) - 1
    return words, word_for_item


def _segments_from_audio_segments(audio_segments: Any, words: list[Word], word_for_item: dict[int, int]) -> list[Segment]:
    # Newer output carries Transcribe's own segmentation; the words are ours, with their punctuation.
    segments = []
    for raw in audio_segments or ():
        indices = sorted({word_for_item[int(item)] for item in raw.get("items", ()) if int(item) in word_for_item})
        start = max(0.0, float(raw["start_time"]))
        segments.append(
            Segment(
                start=start,
                end=max(start, float(raw["end_time"])),
                text=str(raw.get("transcript", "")).strip(),
                words=tuple(words[i] for i in indices),
            )
        )
    return segments


def _segments_by_sentence(words: list[Word]) -> list[Segment]:
    segments: list[Segment] = []
    current: list[Word] = []
    for word in words:
        current.append(word)
        if word.text.endswith(_SENTENCE_END):
            segments.append(_segment(current))
            current = []
    if current:
        segments.append(_segment(current))
    return segments


def _segment(words: list[Word]) -> Segment:
    return Segment(start=words[0].start, end=words[-1].end, text=" ".join(w.text for w in words), words=tuple(words))
