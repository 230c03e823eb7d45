"""Burned-in subtitles, the user's own subtitles, and audio-only sources, through local mode."""

from __future__ import annotations

import subprocess
import urllib.request

import pytest

from clipline.asr.fake import FakeTranscriber
from clipline.media.probe import FfmpegProber
from tests.local.conftest import start_service

OWN_SRT = "1\n00:00:00,500 --> 00:00:02,500\nOur own words: {\\pos(0,0)} stay literal\n\n2\n00:00:03,000 --> 00:00:04,000\n字幕テスト\n"


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    service = start_service(tmp_path_factory.mktemp("subtitles"), transcriber=FakeTranscriber(), asr_workers=1)
    yield service
    service.service.stop()


@pytest.fixture(scope="module")
def audio_only_url(media_server, media_dir, ffmpeg):
    """An MP3 of 8 s of tone, served beside the other media."""
    path = media_dir / "tone.mp3"
    if not path.exists():
        subprocess.run(
            [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=8", "-c:a", "libmp3lame", str(path)],
            check=True,
        )
    return media_server.url("tone.mp3")


def create(running, **body):
    return running.client.request("POST", "/api/jobs", body)


def states_of(running, job_id) -> list[str]:
    history = running.execution_history(job_id)
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]


def download(url: str, path) -> None:
    with urllib.request.urlopen(url) as response:
        path.write_bytes(response.read())


def test_burned_subtitles_from_the_transcript_come_beside_the_plain_clip(running, media_server, ffmpeg, tmp_path):
    # Given a job that asks for subtitles burned in, without asking for a transcript
    reply = create(running, sourceUrl=media_server.url("speech.mp4"), start=1, end=6, burnSubtitles=True)
    assert reply.status == 202, reply.body
    # When it finishes
    job = running.client.wait(reply.body["id"])
    # Then it was transcribed (implied) and burned in, in that order
    assert job["status"] == "succeeded", job
    assert job["request"]["transcribe"] is True
    assert states_of(running, job["id"])[-3:] == ["WantsBurnIn", "BurnIn", "FinalizeJob"]
    assert job["resultKeys"]["burned"].endswith("/clip.burned.mp4")
    # And the result links both clips and the transcripts
    result = running.client.request("GET", f"/api/jobs/{job['id']}/result").body
    names = {artifact["name"]: artifact["url"] for artifact in result["artifacts"]}
    assert {"clip", "burned", "srt", "vtt", "txt", "json"} <= set(names)
    # And the burned clip is H.264 with the plain clip's duration
    burned = tmp_path / "burned.mp4"
    download(names["burned"], burned)
    info = FfmpegProber(ffmpeg, timeout_seconds=30).probe_file(burned)
    assert info.video_codec == "h264" and info.has_audio
    assert info.duration_seconds == pytest.approx(job["clip"]["durationSeconds"], abs=0.05)
    burn_events = [e for e in job["events"] if e["state"] == "BurnIn"]
    assert [e["type"] for e in burn_events] == ["stageEntered", "stageExited"]


def test_own_subtitles_are_burned_in_without_a_transcript(running, media_server):
    # Given a job with its own SubRip subtitles
    reply = create(
        running, sourceUrl=media_server.url("long.mp4"), start=10, end=15, burnSubtitles=True, subtitles={"srt": OWN_SRT}
    )
    assert reply.status == 202, reply.body
    job = running.client.wait(reply.body["id"])
    # Then no transcription ran, and the burned clip is there
    assert job["status"] == "succeeded", job
    assert "Transcribe" not in states_of(running, job["id"])
    assert set(job["resultKeys"]) == {"clip", "burned"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"burnSubtitles": True, "subtitles": {"srt": "this is not subrip"}}, "INVALID_SUBTITLES"),
        ({"burnSubtitles": True, "subtitles": {"srt": "1\n00:00:05,000 --> 00:00:01,000\nbackwards\n"}}, "INVALID_SUBTITLES"),
        ({"burnSubtitles": True, "subtitles": {"srt": "x" * (256 * 1024 + 1)}}, "INVALID_SUBTITLES"),
        ({"subtitles": {"srt": OWN_SRT}}, "VALIDATION_FAILED"),
        ({"burnSubtitles": True, "subtitleStyle": {"fontSise": 40}}, "VALIDATION_FAILED"),
        ({"burnSubtitles": True, "subtitleStyle": {"primaryColour": "red"}}, "VALIDATION_FAILED"),
        ({"accuracy": "exact"}, "VALIDATION_FAILED"),
    ],
)
def test_bad_subtitle_requests_are_refused_and_leave_nothing(running, media_server, body, code):
    # Given a request with bad subtitles or options
    before = running.job_count()
    # When it is sent
    reply = create(running, sourceUrl=media_server.url("long.mp4"), start=10, end=15, **body)
    # Then it is a 400 with a stable code, and no job was stored
    assert (reply.status, reply.code) == (400, code), reply.body
    assert running.job_count() == before


def test_an_audio_only_source_gives_an_m4a_clip_that_can_be_transcribed(running, audio_only_url):
    # Given an MP3 source and a request for a transcript
    reply = create(running, sourceUrl=audio_only_url, start=1, end=5, transcribe=True)
    job = running.client.wait(reply.body["id"])
    # Then the clip is audio in M4A, and the transcript was made from it
    assert job["status"] == "succeeded", job
    assert job["resultKeys"]["clip"].endswith("/clip.m4a")
    assert job["clip"]["durationSeconds"] == pytest.approx(4, abs=0.05)
    assert "srt" in job["resultKeys"]
    result = running.client.request("GET", f"/api/jobs/{job['id']}/result").body
    (clip,) = [a for a in result["artifacts"] if a["name"] == "clip"]
    with urllib.request.urlopen(clip["url"]) as response:
        assert response.headers["Content-Type"] == "audio/mp4"


def test_burning_into_an_audio_only_source_fails_at_probe(running, audio_only_url):
    # Given an MP3 source and a request to burn subtitles in
    reply = create(running, sourceUrl=audio_only_url, start=1, end=5, burnSubtitles=True)
    job = running.client.wait(reply.body["id"])
    # Then the job fails at probe, before any cutting, with NO_VIDEO_STREAM
    assert (job["status"], job["error"]["code"], job["stage"]) == ("failed", "NO_VIDEO_STREAM", "probe")
    assert "ClipSource" not in states_of(running, job["id"])
    assert running.artifact_files(job["id"]) == []
