"""Amazon Transcribe's workers, which moto lacks: it keeps jobs and their state, but writes no transcript.

Each job the account accepts is transcribed here, with faster-whisper and the
model given to ``clipline serve --aws-sim --transcribe-model``, and its output is
written where the job asked, in Transcribe's own format (``results.items`` with
pronunciation and punctuation items, ``audio_segments``). Until then the job
reports ``IN_PROGRESS``; without a model it ends ``FAILED`` with the reason.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from moto.transcribe.models import FakeTranscriptionJob, transcribe_backends

from ..domain.transcription import Transcript

log = logging.getLogger("clipline.aws_sim")

_TRAILING_PUNCTUATION = re.compile(r"^(.*?)([.,!?;:]*)$")
_NO_MODEL = "the simulated account has no speech model: start it with --transcribe-model"


def transcribe_output(job_name: str, transcript: Transcript) -> dict[str, Any]:
    """``transcript`` as Transcribe writes its output JSON."""
    items: list[dict[str, Any]] = []
    audio_segments = []
    for segment in transcript.segments:
        ids = []
        for word in segment.words:
            content, punctuation = _TRAILING_PUNCTUATION.match(word.text.strip()).groups()  # type: ignore[union-attr]
            confidence = "1.0" if word.probability is None else f"{word.probability:.4f}"
            ids.append(len(items))
            items.append(
                {"id": len(items), "type": "pronunciation", "start_time": f"{word.start:.3f}", "end_time": f"{word.end:.3f}",
                 "alternatives": [{"confidence": confidence, "content": content}]}
            )  # fmt: skip
            for mark in punctuation:
                ids.append(len(items))
                items.append({"id": len(items), "type": "punctuation", "alternatives": [{"confidence": "0.0", "content": mark}]})
        audio_segments.append(
            {"id": len(audio_segments), "transcript": segment.text.strip(), "start_time": f"{segment.start:.3f}",
             "end_time": f"{segment.end:.3f}", "items": ids}
        )  # fmt: skip
    text = " ".join(segment.text.strip() for segment in transcript.segments)
    return {
        "jobName": job_name,
        "accountId": "123456789012",
        "status": "COMPLETED",
        "results": {
            "transcripts": [{"transcript": text}],
            "items": items,
            "audio_segments": audio_segments,
            "language_code": transcript.language,
        },
    }


class SimulatedTranscribe:
    def __init__(
        self, clients: Callable[[str], Any], model: str | None, account_id: str, region: str, stop: threading.Event
    ) -> None:
        self._s3 = clients("s3")
        self._model = model
        self._jobs = transcribe_backends[account_id][region].transcriptions
        self._outcomes: dict[str, str | None] = {}  # job name -> None (done) or the failure reason
        self._started: set[str] = set()
        self._lock = threading.Lock()
        self._stop = stop
        self._report_status_of_work()
        threading.Thread(target=self._watch, name="transcribe-workers", daemon=True).start()

    def _report_status_of_work(self) -> None:
        """A job reads IN_PROGRESS until its transcript is written, then COMPLETED, or FAILED with its reason."""
        simulation = self
        written = FakeTranscriptionJob.status

        def status(job: FakeTranscriptionJob) -> str:
            with simulation._lock:
                if job.transcription_job_name not in simulation._outcomes:
                    return "IN_PROGRESS"
                reason = simulation._outcomes[job.transcription_job_name]
            if reason is not None:
                job.failure_reason = reason
                return "FAILED"
            return "COMPLETED"

        FakeTranscriptionJob.status = property(status, written.fset)  # type: ignore[assignment, method-assign]

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            for name, job in list(self._jobs.items()):
                if name not in self._started:
                    self._started.add(name)
                    threading.Thread(target=self._transcribe, args=(job,), name=f"transcribe-{name}", daemon=True).start()

    def _transcribe(self, job: FakeTranscriptionJob) -> None:
        name = job.transcription_job_name
        try:
            reason = self._write_transcript(job) if self._model else _NO_MODEL
        except Exception as error:  # noqa: BLE001 - a job that cannot be done fails, as Transcribe's do
            log.exception("simulated Transcribe failed a job", extra={"job": name})
            reason = f"the simulated recognizer failed: {error}"
        with self._lock:
            self._outcomes[name] = reason

    def _write_transcript(self, job: FakeTranscriptionJob) -> None:
        from ..asr.whisper import WhisperTranscriber

        bucket, key = job.media["MediaFileUri"].removeprefix("s3://").split("/", 1)
        language = (job.language_code or "").split("-")[0] or None
        with tempfile.TemporaryDirectory() as folder:
            audio = Path(folder) / "media"
            self._s3.download_file(bucket, key, str(audio))
            transcript = WhisperTranscriber(self._model, 2, 600).transcribe(audio, language, lambda _: None)
        if job.identify_language:
            job.language_code = {"en": "en-US"}.get(transcript.language, transcript.language)
        document = transcribe_output(job.transcription_job_name, transcript)
        self._s3.put_object(Bucket=job._output_bucket_name, Key=job.output_key, Body=json.dumps(document).encode())
        return None
