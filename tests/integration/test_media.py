"""Probing and clipping with the real ffmpeg, over a real Range-capable HTTP server."""

import dataclasses
import os
import socket
import time

import pytest

from clipline.domain import errors
from clipline.domain.jobs import ClipAccuracy, ClipRequest, SourceInfo
from clipline.media.clip import FfmpegClipper


def request(url, start, end):
    # These tests are about stream copy and its fallback; frame-accurate cuts are in test_smart_cut.py.
    return ClipRequest(source_url=url, start_seconds=start, end_seconds=end, accuracy=ClipAccuracy.KEYFRAME)


def test_probe_reads_streams_and_duration_over_http(prober, media_server):
    info = prober.probe(media_server.url("long.mp4"))
    assert info.duration_seconds == pytest.approx(180, abs=0.05)
    assert (info.has_video, info.has_audio, info.video_codec, info.audio_codec) == (True, True, "h264", "aac")
    assert info.frame_rate == 25


def test_probe_of_a_missing_file_is_source_not_found(prober, media_server):
    with pytest.raises(errors.SourceNotFoundError, match="404"):
        prober.probe(media_server.url("nope.mp4"))


def test_probe_of_a_text_file_is_source_not_media(prober, media_server):
    with pytest.raises(errors.SourceNotMediaError):
        prober.probe(media_server.url("not-media.mp4"))


def test_probe_of_a_closed_port_is_source_unreachable(prober):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(errors.SourceUnreachableError):
        prober.probe(f"http://127.0.0.1:{port}/a.mp4")


def test_keyframe_aligned_copy_is_exact_and_reads_little(prober, clipper, media_server, tmp_path):
    # Given a 3-minute faststart MP4 served with Range support
    url = media_server.url("long.mp4")
    media_server.reset_counters()
    # When we probe it and cut 10 s from the middle
    source = prober.probe(url)
    progress = []
    outcome = clipper.clip(request(url, 90, 100), source, tmp_path, progress.append)
    # Then stream copy was enough, the clip is exact to a frame, and only the range was read
    assert outcome.info.method == "copy" and outcome.info.fallback_reason is None
    assert outcome.info.duration_seconds == pytest.approx(10, abs=1 / 25)
    ratio = media_server.bytes_sent / outcome.info.size_bytes
    assert ratio <= 3, f"read {media_server.bytes_sent} bytes for a {outcome.info.size_bytes}-byte clip"
    assert progress and max(progress) <= 1.0


def test_a_keyframe_cut_starts_at_the_keyframe_before_start(prober, clipper, media_server, tmp_path):
    # Given a source with B-frames and 2 s GOPs, and a start between keyframes
    url = media_server.url("bframes.mp4")
    source = prober.probe(url)
    # When it is cut with keyframe accuracy
    outcome = clipper.clip(request(url, 3.3, 8.3), source, tmp_path, lambda _: None)
    # Then it is a stream copy from the keyframe at 2 s to the requested end, give or
    # take the few frames B-frame reordering carries past it
    assert outcome.info.method == "copy" and outcome.info.fallback_reason is None
    assert 6.3 - 1 / 25 <= outcome.info.duration_seconds <= 6.3 + 0.25


def test_streams_mp4_cannot_hold_are_reencoded(prober, clipper, media_server, tmp_path):
    # Given Theora/Vorbis, which ffmpeg cannot stream-copy into MP4
    url = media_server.url("theora.ogv")
    source = prober.probe(url)
    outcome = clipper.clip(request(url, 2, 6), source, tmp_path, lambda _: None)
    assert outcome.info.method == "reencode" and outcome.info.fallback_reason == "copy_failed"
    clip = prober.probe_file(outcome.path)
    assert (clip.video_codec, clip.audio_codec) == ("h264", "aac")
    assert clip.duration_seconds == pytest.approx(4, abs=1 / 25)


def test_ffmpeg_past_its_time_limit_is_killed(ffmpeg, prober, tmp_path, stalled_source_url):
    # Given a source server that accepts connections and then says nothing
    url = stalled_source_url
    clipper = FfmpegClipper(ffmpeg, prober, timeout_seconds=1)
    started = time.monotonic()
    with pytest.raises(errors.ClipTimeoutError):
        clipper.clip(request(url, 0, 5), SourceInfo(duration_seconds=10, has_video=True, has_audio=True), tmp_path, lambda _: None)
    assert time.monotonic() - started < 10
    assert list(tmp_path.iterdir()) == []


def test_a_frame_accurate_cut_of_low_rate_audio_is_exact(clipper, prober, media_server, tmp_path):
    # Given a B-frame source with 16 kHz AAC, whose stream copy overruns the end,
    # and whose encoder priming (64 ms per AAC frame) once pushed a re-encode past it
    url = media_server.url("speech.mp4")
    # When 12 s are cut from it frame-accurately
    exact = ClipRequest(source_url=url, start_seconds=1, end_seconds=13, accuracy=ClipAccuracy.FRAME)
    outcome = clipper.clip(exact, prober.probe(url), tmp_path, lambda fraction: None)
    # Then the clip, audio included, lands within one frame
    assert outcome.info.method == "smart"
    assert outcome.info.duration_seconds == pytest.approx(12, abs=1 / 25)


def test_speech_audio_is_mono_16k_pcm_and_deterministic(ffmpeg, media_dir, tmp_path):
    import hashlib
    import wave

    from clipline.media.audio import FfmpegAudioExtractor

    extractor = FfmpegAudioExtractor(ffmpeg, timeout_seconds=30)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = extractor.extract(media_dir / "speech.mp4", tmp_path / "a")
    second = extractor.extract(media_dir / "speech.mp4", tmp_path / "b")
    with wave.open(str(first)) as audio:
        assert (audio.getnchannels(), audio.getframerate(), audio.getsampwidth()) == (1, 16000, 2)
        assert audio.getnframes() / 16000 == pytest.approx(13.5, abs=0.1)
    # The transcript cache keys on this hash, so the same media must give the same bytes.
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()


def test_speech_audio_of_a_silent_video_is_no_audio(ffmpeg, media_dir, tmp_path):
    from clipline.media.audio import FfmpegAudioExtractor

    with pytest.raises(errors.NoAudioError):
        FfmpegAudioExtractor(ffmpeg, timeout_seconds=30).extract(media_dir / "silent.mp4", tmp_path)


def test_a_user_source_never_becomes_a_file_path(prober, media_dir):
    # A path, or a file URL, named as a source is refused before ffmpeg runs
    for location in (str(media_dir / "long.mp4"), "/etc/passwd", f"file://{media_dir / 'long.mp4'}"):
        with pytest.raises(errors.UnsupportedSourceUrlError):
            prober.probe(location)


def test_an_upper_case_scheme_still_goes_through_the_guard(media_server):
    from clipline.composition import media_services
    from clipline.settings import Settings

    # Given the production graph with private sources refused
    prober = media_services(Settings(allow_private_sources=False))["prober"]
    # When the scheme is written in capitals, Then it is still a network fetch, checked and refused
    with pytest.raises(errors.SourceNotAllowedError):
        prober.probe(media_server.url("long.mp4").replace("http://", "HTTP://"))


def test_a_function_without_ffmpeg_builds_its_services_and_fails_only_when_it_runs_ffmpeg(media_server):
    from clipline.composition import media_services
    from clipline.settings import Settings

    # Given a function with no ffmpeg (the API Lambdas have no ffmpeg layer)
    media = media_services(Settings(ffmpeg="/opt/bin/ffmpeg-not-here", allow_private_sources=True))
    # When a media step runs anyway, it fails with a message that says what is missing
    with pytest.raises(errors.InternalError, match="CLIPLINE_FFMPEG"):
        media["prober"].probe(media_server.url("long.mp4"))


def test_one_deadline_bounds_all_the_runs_of_a_clip():
    from clipline.media.ffmpeg_process import Deadline

    # Given a clip's time limit, shared by its ffmpeg runs
    deadline = Deadline.after(0.2)
    # Then each run gets what is left, never the whole limit again
    first = deadline.remaining()
    time.sleep(0.1)
    assert 0 < deadline.remaining() < first <= 0.2
    # And once it has passed, no further run may start
    time.sleep(0.15)
    with pytest.raises(errors.ClipTimeoutError, match="0.2s clip time limit"):
        deadline.remaining()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, a device that is always full")
def test_ffmpeg_writing_to_a_full_disk_is_a_storage_failure_not_a_bad_clip(ffmpeg):
    from clipline.media.ffmpeg_process import run_ffmpeg

    # When ffmpeg writes its output where there is no space left,
    # Then the step fails as storage (STORAGE_FAILURE, retried), quoting ffmpeg's own line, not as the clip's fault
    with pytest.raises(errors.StorageUnavailableError, match=r"work folder is full: \[out#0/mpegts.*No space left"):
        run_ffmpeg(ffmpeg, ["-f", "lavfi", "-i", "testsrc=duration=1:size=160x90", "-f", "mpegts", "/dev/full"], 30)


def test_a_source_whose_metadata_mentions_a_full_disk_is_still_the_sources_problem(ffmpeg, prober, tmp_path):
    # Given a file whose title is ffmpeg's disk-full message, which ffmpeg prints when it reads the file
    tricky = tmp_path / "tricky.mp4"
    _run_ffmpeg_cli(ffmpeg, ["-f", "lavfi", "-i", "testsrc=duration=1:size=160x90", "-metadata",
                             "title=No space left on device", "-c:v", "libx264", str(tricky)])  # fmt: skip
    # When it is probed (an ffmpeg run with no output, which always exits 1), Then it is read as media, not storage
    assert prober.probe_file(tricky).has_video


def test_a_work_dir_that_cannot_hold_a_scratch_folder_is_a_storage_failure(tmp_path):
    from clipline.domain.use_cases import scratch_folder
    from tests.fakes import FixedClock, fake_services

    # Given a work dir that does not exist (or is full, or not writable)
    services = dataclasses.replace(fake_services(FixedClock()), work_dir=tmp_path / "gone")
    # When a step asks for its scratch folder, Then it fails as storage, not as a bug
    with pytest.raises(errors.StorageUnavailableError, match="no scratch space"):
        with scratch_folder(services, "clip-"):
            pass


def _run_ffmpeg_cli(ffmpeg: str, arguments: list[str]) -> None:
    import subprocess

    subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y", *arguments], check=True)


def test_a_full_disk_during_a_steps_own_writes_is_a_storage_failure(tmp_path):
    import errno as errno_codes

    from clipline.domain.use_cases import scratch_folder
    from tests.fakes import FixedClock, fake_services

    services = dataclasses.replace(fake_services(FixedClock()), work_dir=tmp_path)
    with pytest.raises(errors.StorageUnavailableError, match="work folder is full"):
        with scratch_folder(services, "burn-"):
            raise OSError(errno_codes.ENOSPC, "No space left on device")
    # And any other I/O error stays what it is: a bug to see, not storage to retry
    with pytest.raises(PermissionError):
        with scratch_folder(services, "burn-"):
            raise PermissionError(errno_codes.EACCES, "Permission denied")
    assert list(tmp_path.iterdir()) == []
