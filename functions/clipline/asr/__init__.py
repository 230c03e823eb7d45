"""Speech-recognition providers behind the ``Transcriber`` port.

- ``whisper``: faster-whisper on the local CPU (the ``whisper`` extra)
- ``openai``: any server that speaks OpenAI's ``/v1/audio/transcriptions``
- ``transcribe``: Amazon Transcribe batch jobs, through S3
- ``fake``: deterministic words, for tests and demos without a model

Each maps its own failures to ``TranscriptionTimeoutError``,
``TranscriptionUpstreamError`` or ``TranscriptionRejectedError``.
"""
