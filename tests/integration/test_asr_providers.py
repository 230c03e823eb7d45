"""The openai, transcribe and fake providers: a real local HTTP server, moto, and the fake itself.

Whisper runs a real model and lives in test_whisper_accuracy.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import wave
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api import state_manager
from moto.transcribe.models import transcribe_backends

from clipline.asr.fake import SENTENCES, FakeTranscriber
from clipline.asr.openai import OpenAiTranscriber
from clipline.asr.transcribe import AmazonTranscribeTranscriber
from clipline.domain.errors import TranscriptionRejectedError, TranscriptionTimeoutError, TranscriptionUpstreamError

from ..openai_server import VERBOSE_JSON, TranscriptionApi

SPEECH_WAV = Path(__file__).resolve().parents[1] / "fixtures" / "speech" / "speech.wav"
REGION = "us-east-1"


def write_silence(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\x00\x00" * int(16000 * seconds))
    return path


# --- openai: a local server that speaks the transcription API ---------------------------------

@pytest.fixture
def api():
    with TranscriptionApi() as server:
        yield server


def test_openai_sends_the_audio_and_options_and_parses_verbose_json(api):
    # Given a compatible server and a transcriber with a key
    transcriber = OpenAiTranscriber(api.url + "/", "sk-test", "whisper-1", timeout_seconds=10)
    progress: list[float] = []
    # When we transcribe the speech fixture in English
    transcript = transcriber.transcribe(SPEECH_WAV, "en", progress.append)
    # Then the multipart request carried the file and every option
    (request,) = api.requests
    assert request["path"] == "/v1/audio/transcriptions"
    assert request["authorization"] == "Bearer sk-test"
    fields = request["fields"]
    assert fields["model"] == ["whisper-1"]
    assert fields["response_format"] == ["verbose_json"]
    assert sorted(fields["timestamp_granularities[]"]) == ["segment", "word"]
    assert fields["language"] == ["en"]
    ((filename, content_type, data),) = fields["file"]
    assert (filename, content_type, data) == ("speech.wav", "audio/wav", SPEECH_WAV.read_bytes())
    # And the answer became a transcript with words assigned to their segments by time
    assert (transcript.provider, transcript.model, transcript.model_version) == ("openai", "whisper-1", "openai/whisper-1")
    assert transcript.language == "en" and transcript.duration_seconds == 9.47
    first, second = transcript.segments
    assert first.text == "The quick brown fox jumps over the lazy dog."
    assert [w.text for w in first.words] == "The quick brown fox jumps over the lazy dog.".split()
    assert [w.text for w in second.words] == ["Every", "word", "has", "a", "start."]
    assert (second.words[0].start, second.words[0].end) == (3.0, 3.6)
    assert progress[0] == 0.0 and progress[-1] == 1.0


def test_openai_detects_language_and_sends_no_key_when_none(api):
    # Given a server that detects French, and no API key (a self-hosted server)
    api.body = json.dumps({**VERBOSE_JSON, "language": "french"}).encode()
    transcriber = OpenAiTranscriber(api.url, None, "whisper-1", timeout_seconds=10)
    # When we ask for detection
    transcript = transcriber.transcribe(SPEECH_WAV, None, lambda _: None)
    # Then no language or Authorization was sent, and the language name became its ISO code
    (request,) = api.requests
    assert "language" not in request["fields"] and request["authorization"] is None
    assert transcript.language == "fr"


@pytest.mark.parametrize(
    ("status", "body", "error", "kept"),
    [
        (500, b'{"error": {"message": "The server had an error"}}', TranscriptionUpstreamError, "The server had an error"),
        (503, b"<html>bad gateway</html>", TranscriptionUpstreamError, "bad gateway"),
        (429, b'{"error": {"message": "Rate limit reached"}}', TranscriptionUpstreamError, "Rate limit reached"),
        (401, b'{"error": {"message": "Incorrect API key provided"}}', TranscriptionUpstreamError, "Incorrect API key"),
        (400, b'{"error": {"message": "Invalid file format.", "type": "invalid_request_error"}}',
         TranscriptionRejectedError, "Invalid file format."),
        (413, b'{"error": {"message": "Maximum content size limit exceeded"}}', TranscriptionRejectedError, "content size"),
        (200, b"this is not json", TranscriptionUpstreamError, "this is not json"),
    ],
)  # fmt: skip
def test_openai_maps_each_answer_to_its_code_and_keeps_the_message(api, status, body, error, kept):
    # Given a server that answers with this status and body
    api.status, api.body = status, body
    transcriber = OpenAiTranscriber(api.url, "sk-test", "whisper-1", timeout_seconds=10)
    # When we transcribe, Then the mapped error carries the server's own words and status
    with pytest.raises(error) as raised:
        transcriber.transcribe(SPEECH_WAV, "en", lambda _: None)
    assert kept in raised.value.message
    if status != 200:
        assert f"HTTP {status}" in raised.value.message


@pytest.mark.parametrize("upload", ["small", "large"])
def test_openai_server_that_never_answers_times_out_in_time(upload, tmp_path):
    # Given a server that accepts the connection and then neither reads nor says anything;
    # a 10-minute WAV (19 MB) fills the socket buffers, so the upload itself stalls
    audio = SPEECH_WAV if upload == "small" else write_silence(tmp_path / "long.wav", 600)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        transcriber = OpenAiTranscriber(
            f"http://127.0.0.1:{listener.getsockname()[1]}", None, "whisper-1", timeout_seconds=1
        )
        # When we transcribe with a 1 s limit
        started = time.monotonic()
        with pytest.raises(TranscriptionTimeoutError) as raised:
            transcriber.transcribe(audio, "en", lambda _: None)
        elapsed = time.monotonic() - started
    # Then it fails with TIMEOUT close to the limit
    assert raised.value.code == "TIMEOUT"
    assert 1 <= elapsed < 1 + 2, elapsed


def test_openai_refused_connection_is_upstream_failure():
    # Given a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transcriber = OpenAiTranscriber(f"http://127.0.0.1:{port}", None, "whisper-1", timeout_seconds=5)
    # When we transcribe, Then the refusal is an upstream failure, reported at once
    started = time.monotonic()
    with pytest.raises(TranscriptionUpstreamError, match="could not be reached"):
        transcriber.transcribe(SPEECH_WAV, "en", lambda _: None)
    assert time.monotonic() - started < 2


# --- transcribe: Amazon Transcribe in moto ---------------------------------------------------

def transcribe_output(job_name: str, with_audio_segments: bool) -> dict:
    """What Transcribe writes for two short sentences: words, punctuation items, optional audio_segments."""

    def word(i, content, start, end, confidence="0.99"):
        return {"id": i, "type": "pronunciation", "alternatives": [{"confidence": confidence, "content": content}],
                "start_time": start, "end_time": end}  # fmt: skip

    def punctuation(i, content):
        return {"id": i, "type": "punctuation", "alternatives": [{"confidence": "0.0", "content": content}]}

    items = [
        word(0, "Hello", "0.04", "0.51"), word(1, "world", "0.51", "0.98", "0.87"), punctuation(2, "."),
        word(3, "How", "1.60", "1.82"), word(4, "are", "1.82", "1.95"), punctuation(5, ","),
        word(6, "you", "1.95", "2.30"), punctuation(7, "?"),
    ]  # fmt: skip
    results = {"transcripts": [{"transcript": "Hello world. How are, you?"}], "items": items}
    if with_audio_segments:
        results["audio_segments"] = [
            {"id": 0, "transcript": "Hello world.", "start_time": "0.04", "end_time": "0.98", "items": [0, 1, 2]},
            {"id": 1, "transcript": "How are, you?", "start_time": "1.60", "end_time": "2.30", "items": [3, 4, 5, 6, 7]},
        ]
    return {"jobName": job_name, "accountId": DEFAULT_ACCOUNT_ID, "status": "COMPLETED", "results": results}


class SimulatedTranscribe:
    """Stands in for Transcribe's workers while the provider waits: moto keeps the job's
    state but writes no output, so on each of the provider's sleeps this reads the input
    the job names and writes the output where the job's request said."""

    def __init__(self, s3, with_audio_segments: bool = True) -> None:
        self.s3 = s3
        self.with_audio_segments = with_audio_segments
        self.clock = 0.0
        self.seen_jobs: dict[str, dict] = {}
        self.on_sleep = self.write_outputs

    def now(self) -> float:
        return self.clock

    def sleep(self, seconds: float) -> None:
        self.clock += seconds
        for job in self.jobs():
            self.on_sleep(job)

    @staticmethod
    def jobs():
        return list(transcribe_backends[DEFAULT_ACCOUNT_ID][REGION].transcriptions.values())

    def write_outputs(self, job) -> None:
        bucket, key = job.media["MediaFileUri"].removeprefix("s3://").split("/", 1)
        audio = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        self.seen_jobs[job.transcription_job_name] = {
            "input_key": key, "input_bytes": len(audio), "output_bucket": job._output_bucket_name,
            "output_key": job.output_key, "media_format": job.media_format,
            "sample_rate": job.media_sample_rate_hertz, "language_code": job.language_code,
            "identify_language": job.identify_language,
        }  # fmt: skip
        document = transcribe_output(job.transcription_job_name, self.with_audio_segments)
        self.s3.put_object(Bucket=job._output_bucket_name, Key=job.output_key, Body=json.dumps(document).encode())


@pytest.fixture
def aws():
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="work")
        yield s3, boto3.client("transcribe", region_name=REGION)


def bucket_keys(s3) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket="work").get("Contents", [])]


@pytest.mark.parametrize("with_audio_segments", [True, False], ids=["audio_segments", "sentence_punctuation"])
def test_transcribe_runs_a_job_parses_words_and_cleans_up(aws, with_audio_segments):
    # Given Transcribe (moto) and a simulated worker that writes its output JSON
    s3, transcribe = aws
    simulated = SimulatedTranscribe(s3, with_audio_segments)
    transcriber = AmazonTranscribeTranscriber(transcribe, s3, "work", timeout_seconds=600, poll_seconds=5,
                                              now=simulated.now, sleep=simulated.sleep)  # fmt: skip
    progress: list[float] = []
    # When we transcribe the speech fixture in English
    transcript = transcriber.transcribe(SPEECH_WAV, "en", progress.append)
    # Then the job read our upload as a 16 kHz WAV in en-US and wrote where we asked
    (job,) = simulated.seen_jobs.values()
    assert job["input_key"].startswith("asr-input/") and job["input_bytes"] == SPEECH_WAV.stat().st_size
    assert (job["output_bucket"], job["media_format"], job["sample_rate"]) == ("work", "wav", 16000)
    assert job["output_key"].startswith("asr-output/")
    assert (job["language_code"], job["identify_language"]) == ("en-US", None)
    # And words carry their punctuation, times and confidence, grouped in two sentences
    assert [s.text for s in transcript.segments] == ["Hello world.", "How are, you?"]
    assert [[w.text for w in s.words] for s in transcript.segments] == [["Hello", "world."], ["How", "are,", "you?"]]
    hello, world = transcript.segments[0].words
    assert (hello.start, hello.end, hello.probability) == (0.04, 0.51, 0.99)
    assert (world.start, world.end, world.probability) == (0.51, 0.98, 0.87)
    assert (transcript.segments[1].start, transcript.segments[1].end) == (1.6, 2.3)
    assert transcript.language == "en" and transcript.provider == "transcribe"
    assert transcript.duration_seconds == pytest.approx(9.47, abs=0.01)
    assert transcript.model_version == "amazon-transcribe/standard"
    # And it polled with progress (heartbeats) until COMPLETED, then removed input, output and job
    assert len(progress) >= 2 and progress == sorted(progress) and progress[-1] == 1.0
    assert bucket_keys(s3) == []
    assert transcribe.list_transcription_jobs()["TranscriptionJobSummaries"] == []


def test_transcribe_without_language_asks_transcribe_to_identify_it(aws):
    # Given Transcribe (moto), which identifies en-US when asked
    s3, transcribe = aws
    simulated = SimulatedTranscribe(s3)
    transcriber = AmazonTranscribeTranscriber(transcribe, s3, "work", 600, 5, now=simulated.now, sleep=simulated.sleep)
    # When we transcribe with no language
    transcript = transcriber.transcribe(SPEECH_WAV, None, lambda _: None)
    # Then the job was started with IdentifyLanguage and the identified locale became "en"
    (job,) = simulated.seen_jobs.values()
    assert job["identify_language"] is True
    assert transcript.language == "en"


def test_transcribe_failed_job_is_upstream_failure_and_cleans_up(aws):
    # Given a job that Transcribe marks FAILED while we wait
    s3, transcribe = aws
    simulated = SimulatedTranscribe(s3)

    def fail(job):
        job.status = "FAILED"

    simulated.on_sleep = fail
    transcriber = AmazonTranscribeTranscriber(transcribe, s3, "work", 600, 5, now=simulated.now, sleep=simulated.sleep)
    # When we transcribe, Then it is an upstream failure and nothing is left behind
    with pytest.raises(TranscriptionUpstreamError, match="job failed"):
        transcriber.transcribe(SPEECH_WAV, "en", lambda _: None)
    assert bucket_keys(s3) == []
    assert transcribe.list_transcription_jobs()["TranscriptionJobSummaries"] == []


@pytest.fixture
def stuck_jobs():
    # Jobs then change status only after an hour of real time: they stay where a test puts them.
    state_manager.set_transition("transcribe::transcriptionjob", {"progression": "time", "seconds": 3600})
    yield
    state_manager.unset_transition("transcribe::transcriptionjob")


def test_transcribe_job_that_never_finishes_times_out_and_is_deleted(aws, stuck_jobs):
    # Given a job that stays IN_PROGRESS
    s3, transcribe = aws
    simulated = SimulatedTranscribe(s3)

    def stall(job):
        job.status = "IN_PROGRESS"

    simulated.on_sleep = stall
    transcriber = AmazonTranscribeTranscriber(transcribe, s3, "work", timeout_seconds=30, poll_seconds=10,
                                              now=simulated.now, sleep=simulated.sleep)  # fmt: skip
    progress: list[float] = []
    # When we transcribe with a 30 s limit, polling every 10 s
    with pytest.raises(TranscriptionTimeoutError, match="IN_PROGRESS"):
        transcriber.transcribe(SPEECH_WAV, "en", progress.append)
    # Then it gave up at the limit, after heartbeats at each poll, and deleted the job and the input
    assert simulated.clock == 30
    assert len(progress) == 4 and all(0 < p < 1 for p in progress[1:]) and progress == sorted(progress)
    assert bucket_keys(s3) == []
    assert transcribe.list_transcription_jobs()["TranscriptionJobSummaries"] == []


# Moto reports no FailureReason and raises no service errors on demand, so these
# answers come from botocore's Stubber, with S3 still in moto.
@pytest.mark.parametrize(
    ("reason", "error"),
    [
        ("The media format provided does not match the detected media format.", TranscriptionRejectedError),
        ("Unsupported audio format", TranscriptionRejectedError),
        ("Internal failure. Please try your request again.", TranscriptionUpstreamError),
    ],
)
def test_transcribe_failure_reason_decides_the_code(aws, reason, error):
    # Given Transcribe answering FAILED with this reason
    s3, transcribe = aws
    stubber = Stubber(transcribe)
    stubber.add_response("start_transcription_job", {"TranscriptionJob": {"TranscriptionJobStatus": "IN_PROGRESS"}})
    stubber.add_response(
        "get_transcription_job",
        {"TranscriptionJob": {"TranscriptionJobStatus": "FAILED", "FailureReason": reason}},
    )
    stubber.add_response("delete_transcription_job", {})
    transcriber = AmazonTranscribeTranscriber(transcribe, s3, "work", 600, 5, sleep=lambda _: None)
    # When we transcribe, Then the reason picks the code and is kept in the message
    with stubber, pytest.raises(error) as raised:
        transcriber.transcribe(SPEECH_WAV, "en", lambda _: None)
    assert reason in raised.value.message
    stubber.assert_no_pending_responses()  # the job was deleted
    assert bucket_keys(s3) == []


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("BadRequestException", 400, TranscriptionRejectedError),
        ("LimitExceededException", 400, TranscriptionUpstreamError),
        ("ThrottlingException", 400, TranscriptionUpstreamError),
        ("InternalFailureException", 500, TranscriptionUpstreamError),
    ],
)
def test_transcribe_service_errors_map_to_codes(aws, code, status, error):
    # Given Transcribe refusing to start the job
    s3, transcribe = aws
    stubber = Stubber(transcribe)
    stubber.add_client_error("start_transcription_job", code, "the service said no", http_status_code=status)
    transcriber = AmazonTranscribeTranscriber(transcribe, s3, "work", 600, 5, sleep=lambda _: None)
    # When we transcribe, Then the error code maps, the message is kept, and the upload is removed
    with stubber, pytest.raises(error, match="the service said no"):
        transcriber.transcribe(SPEECH_WAV, "en", lambda _: None)
    assert bucket_keys(s3) == []


def test_transcribe_upload_failure_is_upstream_failure(aws):
    # Given a staging bucket that does not exist
    s3, transcribe = aws
    transcriber = AmazonTranscribeTranscriber(transcribe, s3, "missing-bucket", 600, 5, sleep=lambda _: None)
    # When we transcribe, Then the failed upload is an upstream failure naming S3's error, and no job started
    with pytest.raises(TranscriptionUpstreamError, match="upload the audio.*NoSuchBucket"):
        transcriber.transcribe(SPEECH_WAV, "en", lambda _: None)
    assert transcribe.list_transcription_jobs()["TranscriptionJobSummaries"] == []


def test_transcribe_rejects_what_is_not_a_wav_and_languages_it_cannot_map(aws, tmp_path):
    s3, transcribe = aws
    transcriber = AmazonTranscribeTranscriber(transcribe, s3, "work", 600, 5, sleep=lambda _: None)
    # Given a file that is not a WAV, When we transcribe it, Then it is rejected before any upload
    not_wav = tmp_path / "clip.wav"
    not_wav.write_bytes(b"not a wav at all")
    with pytest.raises(TranscriptionRejectedError, match="not a readable PCM WAV"):
        transcriber.transcribe(not_wav, "en", lambda _: None)
    # Given a language with no Transcribe locale, Then it is rejected and the upload removed
    with pytest.raises(TranscriptionRejectedError, match="'xx'"):
        transcriber.transcribe(SPEECH_WAV, "xx", lambda _: None)
    assert bucket_keys(s3) == []


# --- fake ------------------------------------------------------------------------------------

def test_fake_is_deterministic_and_paced(tmp_path):
    # Given a 6 s WAV
    audio = write_silence(tmp_path / "six.wav", 6.0)
    fake = FakeTranscriber()
    progress: list[float] = []
    # When we transcribe it twice
    first = fake.transcribe(audio, None, progress.append)
    second = fake.transcribe(audio, None, lambda _: None)
    # Then both are equal: a word every 0.4 s, a 0.8 s pause between sentences, one segment per sentence
    assert first == second and fake.calls == 2
    assert first.segments[0].text == SENTENCES[0]
    assert [(w.start, w.end) for w in first.segments[0].words[:2]] == [(0.0, 0.4), (0.4, 0.8)]
    sentence_words = len(SENTENCES[0].split())
    assert first.segments[1].start == pytest.approx(sentence_words * 0.4 + 0.8)
    assert all(w.end <= 6.0 for w in first.words)
    assert (first.language, first.provider, first.model, first.model_version) == ("en", "fake", "fake", "fake-1")
    assert first.duration_seconds == 6.0
    assert len(progress) >= 3 and progress[-1] == 1.0
    # And a given language is reported back
    assert fake.transcribe(audio, "de", lambda _: None).language == "de"


@pytest.mark.parametrize(
    ("failure", "error", "code"),
    [
        ("timeout", TranscriptionTimeoutError, "TIMEOUT"),
        ("upstream", TranscriptionUpstreamError, "UPSTREAM_FAILURE"),
        ("rejected", TranscriptionRejectedError, "VALIDATION_FAILED"),
    ],
)
def test_fake_failure_modes_raise_their_codes(tmp_path, failure, error, code):
    # Given a fake set to fail this way, When it transcribes, Then it raises the matching error
    with pytest.raises(error) as raised:
        FakeTranscriber(failure=failure).transcribe(write_silence(tmp_path / "a.wav", 1), None, lambda _: None)
    assert raised.value.code == code


def test_fake_that_hangs_times_out_at_its_limit(tmp_path):
    # Given a fake that would hang for a minute with a 0.5 s limit
    fake = FakeTranscriber(hang_seconds=60, timeout_seconds=0.5)
    # When it transcribes, Then it gives up with TIMEOUT at the limit, not at the hang
    started = time.monotonic()
    with pytest.raises(TranscriptionTimeoutError):
        fake.transcribe(write_silence(tmp_path / "a.wav", 1), None, lambda _: None)
    assert 0.5 <= time.monotonic() - started < 1.5


def test_fake_that_hangs_less_than_its_limit_answers_late(tmp_path):
    # Given a fake that hangs 0.3 s within a 5 s limit
    fake = FakeTranscriber(hang_seconds=0.3, timeout_seconds=5)
    started = time.monotonic()
    # When it transcribes, Then it answers after the hang
    transcript = fake.transcribe(write_silence(tmp_path / "a.wav", 2), None, lambda _: None)
    assert time.monotonic() - started >= 0.3 and transcript.words


def test_fake_counts_calls_from_many_threads(tmp_path):
    # Given one fake shared by eight threads
    audio = write_silence(tmp_path / "a.wav", 1)
    fake = FakeTranscriber()
    threads = [
        threading.Thread(target=lambda: [fake.transcribe(audio, None, lambda _: None) for _ in range(25)])
        for _ in range(8)
    ]
    # When each transcribes 25 times
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every call was counted
    assert fake.calls == 200


def test_fake_rejects_a_file_that_is_not_a_wav(tmp_path):
    not_wav = tmp_path / "a.wav"
    not_wav.write_bytes(b"nope")
    with pytest.raises(TranscriptionRejectedError):
        FakeTranscriber().transcribe(not_wav, None, lambda _: None)


def test_openai_in_aws_reads_its_key_from_secrets_manager_on_the_first_transcription(api):
    import boto3
    from moto import mock_aws

    from clipline.composition import transcriber_for
    from clipline.settings import Settings

    with mock_aws():
        # Given a worker configured with a secret's name, built before the secret even exists
        transcriber = transcriber_for(
            Settings(asr_provider="openai", openai_base_url=api.url, openai_api_key_secret="clipline/openai-api-key")
        )
        boto3.client("secretsmanager").create_secret(Name="clipline/openai-api-key", SecretString="sk-from-secret")
        # When it transcribes, Then the server receives the secret's key
        transcriber.transcribe(SPEECH_WAV, "en", lambda _: None)
        assert api.requests[-1]["authorization"] == "Bearer sk-from-secret"


def test_openai_with_an_unreadable_secret_is_a_retryable_service_failure(api):
    from moto import mock_aws

    from clipline.composition import transcriber_for
    from clipline.domain.errors import ServiceUnavailableError
    from clipline.settings import Settings

    with mock_aws():
        transcriber = transcriber_for(
            Settings(asr_provider="openai", openai_base_url=api.url, openai_api_key_secret="clipline/missing")
        )
        with pytest.raises(ServiceUnavailableError, match="clipline/missing"):
            transcriber.transcribe(SPEECH_WAV, "en", lambda _: None)
    assert api.requests == []
