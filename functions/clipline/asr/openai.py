"""Any server that speaks OpenAI's audio transcription API (OpenAI itself, or a self-hosted one)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import urllib3

from ..domain.errors import TranscriptionRejectedError, TranscriptionTimeoutError, TranscriptionUpstreamError
from ..domain.ports import ProgressCallback
from ..domain.transcripts import Segment, Transcript, Word

# Statuses that mean the request or the audio is wrong: retrying cannot help.
_REJECTED_STATUSES = frozenset({400, 413, 415, 422})
# A connection attempt that takes longer than this is not going to succeed.
_CONNECT_SECONDS = 10.0
_READ_CHUNK = 64 * 1024

# verbose_json names the language in English ("english"); the port speaks ISO 639-1.
# These are Whisper's languages, the set OpenAI-compatible servers answer with.
_LANGUAGE_CODES = {
    name: code
    for code, name in (
        pair.split(":")
        for pair in (
            "en:english zh:chinese de:german es:spanish ru:russian ko:korean fr:french ja:japanese "
            "pt:portuguese tr:turkish pl:polish ca:catalan nl:dutch ar:arabic sv:swedish it:italian "
            "id:indonesian hi:hindi fi:finnish vi:vietnamese he:hebrew uk:ukrainian el:greek ms:malay "
            "cs:czech ro:romanian da:danish hu:hungarian ta:tamil no:norwegian th:thai ur:urdu "
            "hr:croatian bg:bulgarian lt:lithuanian la:latin mi:maori ml:malayalam cy:welsh sk:slovak "
            "te:telugu fa:persian lv:latvian bn:bengali sr:serbian az:azerbaijani sl:slovenian "
            "kn:kannada et:estonian mk:macedonian br:breton eu:basque is:icelandic hy:armenian "
            "ne:nepali mn:mongolian bs:bosnian kk:kazakh sq:albanian sw:swahili gl:galician mr:marathi "
            "pa:punjabi si:sinhala km:khmer sn:shona yo:yoruba so:somali af:afrikaans oc:occitan "
            "ka:georgian be:belarusian tg:tajik sd:sindhi gu:gujarati am:amharic yi:yiddish lo:lao "
            "uz:uzbek fo:faroese ht:haitian_creole ps:pashto tk:turkmen nn:nynorsk mt:maltese "
            "sa:sanskrit lb:luxembourgish my:myanmar bo:tibetan tl:tagalog mg:malagasy as:assamese "
            "tt:tatar haw:hawaiian ln:lingala ha:hausa ba:bashkir jw:javanese su:sundanese yue:cantonese"
        ).split()
    )
}


class OpenAiTranscriber:
    """Transcribes by POSTing the WAV to ``{base_url}/v1/audio/transcriptions`` (verbose_json, word timings).

    Raises (from ``transcribe``):
        TranscriptionTimeoutError: no connection or no complete answer within ``timeout_seconds``.
        TranscriptionUpstreamError: connection failed, 5xx, 429, 401/403, any other unexpected
            status, or a body that is not the expected JSON.
        TranscriptionRejectedError: 400, 413, 415 or 422: the server refused the request or the audio.
    The server's own error message is kept in ours.
    """

    provider = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout_seconds: float,
        api_key_loader: Callable[[], str] | None = None,
    ) -> None:
        """``api_key_loader`` fetches the key on the first transcription (from Secrets Manager in AWS), so a
        function that never transcribes never reads it, and the key never sits in a function's configuration."""
        self._url = base_url.rstrip("/") + "/v1/audio/transcriptions"
        self._api_key = api_key
        self._api_key_loader = api_key_loader
        self.model = model
        self._timeout_seconds = timeout_seconds
        # A pool keeps the TLS session warm across transcriptions; creating it opens nothing.
        self._http = urllib3.PoolManager()

    def model_version(self) -> str:
        """``openai/<model>``: the server does not say which weights answered, so the name is all we know."""
        return f"openai/{self.model}"

    def transcribe(self, audio: Path, language: str | None, on_progress: ProgressCallback) -> Transcript:
        try:
            data = audio.read_bytes()
        except OSError as error:
            raise TranscriptionRejectedError(f"cannot read the audio {audio.name}: {error}") from error
        fields: list[tuple[str, Any]] = [
            ("file", (audio.name, data, "audio/wav")),
            ("model", self.model),
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "word"),
            ("timestamp_granularities[]", "segment"),
        ]
        if language:
            fields.append(("language", language))
        if self._api_key is None and self._api_key_loader is not None:
            self._api_key = self._api_key_loader()
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        on_progress(0.0)
        status, body = self._post(fields, headers)
        if status in _REJECTED_STATUSES:
            raise TranscriptionRejectedError(f"{self._what()} refused the request: HTTP {status}: {_error_message(body)}")
        if not 200 <= status < 300:
            raise TranscriptionUpstreamError(f"{self._what()} failed: HTTP {status}: {_error_message(body)}")
        try:
            payload = json.loads(body)
            transcript = self._transcript(payload, language)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise TranscriptionUpstreamError(
                f"{self._what()} answered with an unexpected body ({error}): {body[:200]!r}"
            ) from error
        on_progress(1.0)
        return transcript

    def _what(self) -> str:
        return f"transcription server {self._url}"

    def _post(self, fields: list[tuple[str, Any]], headers: dict[str, str]) -> tuple[int, bytes]:
        deadline = time.monotonic() + self._timeout_seconds
        timeout = urllib3.Timeout(connect=min(_CONNECT_SECONDS, self._timeout_seconds), read=self._timeout_seconds)
        try:
            response = self._http.request(
                "POST", self._url, fields=fields, headers=headers, timeout=timeout, retries=False, preload_content=False
            )
            try:
                # The read timeout bounds each socket read, not the whole answer, so a
                # server that trickles bytes is held to the deadline here.
                chunks = []
                for chunk in response.stream(_READ_CHUNK):
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise urllib3.exceptions.ReadTimeoutError(None, self._url, "deadline passed mid-answer")
                return response.status, b"".join(chunks)
            finally:
                response.release_conn()
        # NewConnectionError subclasses ConnectTimeoutError in urllib3 2, so it must come first.
        except urllib3.exceptions.NewConnectionError as error:
            raise TranscriptionUpstreamError(f"{self._what()} could not be reached: {error}") from error
        except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError) as error:
            raise TranscriptionTimeoutError(
                f"{self._what()} did not answer within {self._timeout_seconds:g} s: {error}"
            ) from error
        except urllib3.exceptions.ProtocolError as error:
            # A server that stops reading our upload shows up as an aborted connection
            # wrapping the socket's timeout; that is still the server not answering in time.
            if any(isinstance(arg, TimeoutError) for arg in error.args):
                raise TranscriptionTimeoutError(
                    f"{self._what()} stopped taking the upload within {self._timeout_seconds:g} s: {error}"
                ) from error
            raise TranscriptionUpstreamError(f"{self._what()} failed: {error}") from error
        except urllib3.exceptions.HTTPError as error:
            raise TranscriptionUpstreamError(f"{self._what()} failed: {error}") from error

    def _transcript(self, payload: dict[str, Any], language: str | None) -> Transcript:
        words = [_word(item) for item in payload.get("words") or ()]
        raw_segments = payload.get("segments") or ()
        segments: list[Segment] = []
        for index, item in enumerate(raw_segments):
            start = max(0.0, float(item["start"]))
            end = max(start, float(item["end"]))
            if item.get("words"):
                # Some compatible servers nest the words in their segments.
                own = tuple(_word(word) for word in item["words"])
            else:
                last = index == len(raw_segments) - 1
                own = tuple(w for w in words if _belongs(w, start, end, last))
            segments.append(Segment(start=start, end=end, text=str(item.get("text", "")).strip(), words=own))
        placed = {id(word) for segment in segments for word in segment.words}
        orphans = [w for w in words if id(w) not in placed]
        text = str(payload.get("text", "")).strip()
        if segments and orphans:
            # A word whose middle falls in a gap between segments joins the nearest one.
            segments = _attach_orphans(segments, orphans)
        elif not segments and (orphans or text):
            # Words without segments (or text alone): one segment holds them all.
            segments = [
                Segment(
                    start=orphans[0].start if orphans else 0.0,
                    end=orphans[-1].end if orphans else float(payload.get("duration") or 0.0),
                    text=text,
                    words=tuple(orphans),
                )
            ]
        duration = payload.get("duration")
        if duration is None:
            duration = max((segment.end for segment in segments), default=0.0)
        return Transcript(
            language=_language_code(payload.get("language"), language),
            duration_seconds=float(duration),
            provider=self.provider,
            model=self.model,
            model_version=self.model_version(),
            segments=tuple(segments),
        )


def _word(item: dict[str, Any]) -> Word:
    start = max(0.0, float(item["start"]))
    probability = item.get("probability")
    return Word(
        start=start,
        end=max(start, float(item["end"])),
        text=str(item["word"]).strip(),
        probability=None if probability is None else min(1.0, max(0.0, float(probability))),
    )


def _belongs(word: Word, start: float, end: float, last: bool) -> bool:
    middle = (word.start + word.end) / 2
    return start <= middle < end or (last and middle == end)


def _attach_orphans(segments: list[Segment], orphans: list[Word]) -> list[Segment]:
    extra: dict[int, list[Word]] = {}
    for word in orphans:
        middle = (word.start + word.end) / 2
        nearest = min(range(len(segments)), key=lambda i: _distance(segments[i], middle))
        extra.setdefault(nearest, []).append(word)
    return [
        segment.model_copy(update={"words": tuple(sorted((*segment.words, *extra.get(i, ())), key=lambda w: w.start))})
        for i, segment in enumerate(segments)
    ]


def _distance(segment: Segment, moment: float) -> float:
    if segment.start <= moment <= segment.end:
        return 0.0
    return min(abs(moment - segment.start), abs(moment - segment.end))


def _language_code(reported: Any, requested: str | None) -> str:
    if isinstance(reported, str) and reported.strip():
        name = reported.strip().lower().replace(" ", "_")
        if name in _LANGUAGE_CODES:
            return _LANGUAGE_CODES[name]
        if name in _LANGUAGE_CODES.values():
            return name
    return requested or (str(reported).strip() if reported else "und")


def _error_message(body: bytes) -> str:
    """The server's own message: OpenAI's ``{"error": {"message": ...}}``, else the start of the body."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body[:300].decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if payload.get("detail"):
            # FastAPI-based compatible servers answer {"detail": ...}.
            return str(payload["detail"])
    return body[:300].decode("utf-8", "replace").strip()
