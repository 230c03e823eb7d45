"""faster-whisper in child processes, for local mode, so that a cancelled job's transcription ends at once.

A transcription runs in the same process as the API in local mode. faster-whisper
decodes a whole 30-second window before it yields, and a thread cannot be
stopped half-way through one; a process can. Each child loads the model once and
transcribes one clip at a time; a child whose job was stopped is killed and
replaced on the next request.

In Lambda the provider runs in-process (``WhisperTranscriber``): nothing there
can be stopped from outside, and a Lambda is one transcription anyway.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..asr.whisper import WhisperTranscriber
from ..domain import errors
from ..domain.ports import ProgressCallback
from ..domain.transcripts import Transcript
from ..media import running_work

# How often the parent looks at whether the job was stopped, while it waits for the child.
_POLL_SECONDS = 0.1
# The child checks its own deadline between segments; past it by this much, it is killed.
_KILL_GRACE_SECONDS = 5.0
# Spawned, not forked: the parent runs many threads (the gateway, the engine), which fork would copy mid-flight.
_CONTEXT = multiprocessing.get_context("spawn")


def _serve(connection: Connection, model: str, cpu_threads: int, timeout_seconds: float) -> None:
    """The child: transcribe each request it is sent, reporting progress, until the parent goes."""
    transcriber = WhisperTranscriber(model, cpu_threads, timeout_seconds)
    while True:
        try:
            audio, language = connection.recv()
        except (EOFError, OSError):
            return
        try:
            transcript = transcriber.transcribe(Path(audio), language, lambda fraction: connection.send(("progress", fraction)))
            connection.send(("done", transcript.model_dump(mode="json")))
        except errors.ClipLineError as error:
            connection.send(("error", type(error).__name__, error.message))
        except Exception as error:  # noqa: BLE001 - reported to the parent as the provider's failure
            connection.send(("error", errors.TranscriptionUpstreamError.__name__, f"whisper failed: {error}"))


class _Child:
    def __init__(self, model: str, cpu_threads: int, timeout_seconds: float) -> None:
        self.connection, child_end = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(
            target=_serve, args=(child_end, model, cpu_threads, timeout_seconds), name="whisper", daemon=True
        )
        self.process.start()
        child_end.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.connection.close()


class ChildProcessWhisperTranscriber:
    """Transcriber with faster-whisper's results, each transcription in a child process that can be killed."""

    provider = WhisperTranscriber.provider

    def __init__(self, model: str, cpu_threads: int, timeout_seconds: float) -> None:
        self._in_process = WhisperTranscriber(model, cpu_threads, timeout_seconds)
        self._arguments = (model, cpu_threads, timeout_seconds)
        self._timeout_seconds = timeout_seconds
        self.model = self._in_process.model
        self._idle: list[_Child] = []
        self._lock = threading.Lock()

    def model_version(self) -> str:
        return self._in_process.model_version()

    def transcribe(self, audio: Path, language: str | None, on_progress: ProgressCallback) -> Transcript:
        """As WhisperTranscriber.transcribe; a stopped job's transcription is killed within a tenth of a second.

        Raises:
            JobFinishedError: the job was stopped while it was transcribed.
        """
        child = self._take()
        deadline = time.monotonic() + self._timeout_seconds + _KILL_GRACE_SECONDS
        try:
            with running_work.tracked(child.process):
                child.connection.send((str(audio), language))
                outcome = self._wait(child, on_progress, deadline)
        except BaseException:
            child.kill()
            raise
        self._give_back(child)
        return outcome

    def _wait(self, child: _Child, on_progress: ProgressCallback, deadline: float) -> Transcript:
        while True:
            running_work.raise_if_stopped()
            if time.monotonic() > deadline:
                raise errors.TranscriptionTimeoutError(f"whisper did not finish within {self._timeout_seconds:g} s")
            if not child.connection.poll(_POLL_SECONDS):
                if not child.process.is_alive():
                    raise errors.TranscriptionUpstreamError(f"whisper's process ended (exit {child.process.exitcode})")
                continue
            try:
                message = child.connection.recv()
            except (EOFError, OSError):
                # Killed because its job was stopped, or it died: which, the next look says.
                running_work.raise_if_stopped()
                raise errors.TranscriptionUpstreamError("whisper's process ended mid-transcription") from None
            if message[0] == "progress":
                on_progress(message[1])
            elif message[0] == "done":
                return Transcript.model_validate(message[1])
            else:
                _, error_name, text = message
                raise _error_named(error_name, text)

    def _take(self) -> _Child:
        with self._lock:
            while self._idle:
                child = self._idle.pop()
                if child.process.is_alive():
                    return child
                child.kill()
        return _Child(*self._arguments)

    def _give_back(self, child: _Child) -> None:
        with self._lock:
            self._idle.append(child)

    def close(self) -> None:
        """Stop every idle child: the service is stopping."""
        with self._lock:
            idle, self._idle = self._idle, []
        for child in idle:
            child.kill()


def _error_named(name: str, message: str) -> errors.ClipLineError:
    error_class: Any = getattr(errors, name, None)
    if not (isinstance(error_class, type) and issubclass(error_class, errors.ClipLineError)):
        error_class = errors.TranscriptionUpstreamError
    return error_class(message)
