"""Frame-accurate cuts (smart cut), keyframe cuts and audio-only clips, with the real ffmpeg over HTTP.

The generated videos carry their frame number in the picture: eleven bands across
the top, each white or black for one bit. Re-encoding keeps such bands readable,
so a clip's frames can be matched to the source's frames whether they were copied
or re-encoded. Their audio beeps at every whole second of the source, which tells
whether sound and picture stay together.
"""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from clipline.domain.jobs import ClipAccuracy, ClipRequest
from clipline.media.smart_cut import PacketListing, Segment, SmartCutFallback, VideoPacket, plan_cut

RATE = 25
FRAME = 1 / RATE
BITS = 11
# The frame number in binary across the top 16 rows, over testsrc2's moving picture.
NUMBERED_PICTURE = (
    f"color=c=black:s=320x16:r={RATE},"
    f"geq=lum='if(bitand(N\\,pow(2\\,floor(X*{BITS}/W)))\\,235\\,16)':cb=128:cr=128[bands];"
    f"testsrc2=size=320x164:rate={RATE}[picture];[bands][picture]vstack"
)
# A 200 ms tone at the start of every second, silence between.
BEEPS = "aevalsrc='0.5*sin(2*PI*1000*t)*lt(mod(t\\,1)\\,0.2)':s=48000:d=12"
# 2 s GOPs, fixed: keyframes at 0, 2, 4... s.
GOPS = ["-g", str(2 * RATE), "-keyint_min", str(2 * RATE), "-sc_threshold", "0"]


def _ffmpeg(ffmpeg: str, arguments: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-y", *arguments], capture_output=True, text=True, check=True
    )


@pytest.fixture(scope="module")
def smart_media(ffmpeg, media_dir) -> Path:
    """Sources for this module, next to conftest's so the media server serves them."""
    numbered = ["-f", "lavfi", "-i", NUMBERED_PICTURE]
    h264 = ["-t", "12", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", *GOPS]
    _ffmpeg(ffmpeg, [
        "-v", "error", *numbered, "-f", "lavfi", "-i", BEEPS, *h264, "-bf", "3",
        "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", str(media_dir / "numbered.mp4"),
    ])  # fmt: skip
    _ffmpeg(ffmpeg, ["-v", "error", "-i", str(media_dir / "numbered.mp4"), "-map", "0:v", "-c", "copy",
                     str(media_dir / "numbered-video-only.mp4")])  # fmt: skip
    _ffmpeg(ffmpeg, ["-v", "error", *numbered, *h264, "-bf", "0", str(media_dir / "numbered-no-bframes.mp4")])
    _ffmpeg(ffmpeg, [
        "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={RATE}", "-f", "lavfi", "-i", "sine",
        "-t", "6", "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus",
        str(media_dir / "vp9.webm"),
    ])  # fmt: skip
    numbered_mp4 = str(media_dir / "numbered.mp4")
    # MPEG-TS has no keyframe index: an input seek can land past the keyframe before the start.
    _ffmpeg(ffmpeg, ["-v", "error", "-i", numbered_mp4, "-c", "copy", "-f", "mpegts", str(media_dir / "numbered.ts")])
    # A phone's portrait video: stored landscape, with a display matrix turning it.
    _ffmpeg(ffmpeg, ["-v", "error", "-display_rotation", "90", "-i", numbered_mp4, "-c", "copy",
                     str(media_dir / "numbered-rotated.mp4")])  # fmt: skip
    # Sound that starts half a second after the picture.
    _ffmpeg(ffmpeg, ["-v", "error", "-i", numbered_mp4, "-itsoffset", "0.5", "-i", numbered_mp4,
                     "-map", "0:v", "-map", "1:a", "-c", "copy", str(media_dir / "numbered-late-audio.mp4")])  # fmt: skip
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "8"]
    for name, codec in (("tone.mp3", "libmp3lame"), ("tone.wav", "pcm_s16le"), ("tone.opus", "libopus"),
                        ("tone.m4a", "aac")):  # fmt: skip
        _ffmpeg(ffmpeg, ["-v", "error", *tone, "-c:a", codec, str(media_dir / name)])
    return media_dir


def cut(clipper, prober, url, start, end, work_dir, accuracy=ClipAccuracy.FRAME):
    request = ClipRequest(source_url=url, start_seconds=start, end_seconds=end, accuracy=accuracy)
    return clipper.clip(request, prober.probe(url), work_dir, lambda fraction: None)


def frame_numbers(ffmpeg: str, path: Path) -> list[int]:
    """The number each frame of ``path`` shows, in presentation order."""
    # Averaging each band down to one pixel evens out what the encoder did to its edges.
    raw = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-map", "0:v:0", "-vf", f"crop=320:16:0:0,scale={BITS}:1:flags=area",
         "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    frames = [raw[offset : offset + BITS] for offset in range(0, len(raw), BITS)]
    return [sum(1 << bit for bit in range(BITS) if frame[bit] > 128) for frame in frames]


def video_timestamps(ffmpeg: str, path: Path) -> tuple[list[Fraction], list[Fraction]]:
    """DTS and PTS in seconds of the video packets of ``path``, in decode order, as a player's demuxer reads them."""
    listing = _ffmpeg(ffmpeg, ["-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"])
    time_base = Fraction(re.search(r"^#tb 0: (\d+/\d+)$", listing.stdout, re.MULTILINE).group(1))
    rows = [line.split(",") for line in listing.stdout.splitlines() if line and not line.startswith("#")]
    return [int(row[1]) * time_base for row in rows], [int(row[2]) * time_base for row in rows]


def decode_errors(ffmpeg: str, path: Path) -> str:
    return _ffmpeg(ffmpeg, ["-v", "error", "-i", str(path), "-f", "null", "-"]).stderr


def beep_starts(ffmpeg: str, path: Path) -> list[float]:
    detected = _ffmpeg(ffmpeg, ["-i", str(path), "-map", "0:a:0", "-af", "silencedetect=noise=-30dB:d=0.1",
                                "-f", "null", "-"])  # fmt: skip
    return [float(value) for value in re.findall(r"silence_end: ([\d.]+)", detected.stderr)]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (3.32, 8.76),  # on frames 83 and 219
        (3.33, 8.77),  # a quarter frame later: still nearest to frames 83 and 219
    ],
)
def test_frame_accuracy_cuts_at_the_requested_frames(
    ffmpeg, prober, clipper, smart_media, media_server, tmp_path, start, end
):
    # Given an H.264 source with B-frames and 2 s GOPs, and a range starting and ending between keyframes
    url = media_server.url("numbered.mp4")
    # When it is cut with the default accuracy
    outcome = cut(clipper, prober, url, start, end, tmp_path)
    # Then only the ends were re-encoded, and the clip holds exactly source frames 83 to 218
    assert (outcome.info.method, outcome.info.fallback_reason) == ("smart", None)
    assert outcome.path.name == "clip.mp4"
    assert frame_numbers(ffmpeg, outcome.path) == list(range(83, 219))
    assert outcome.info.duration_seconds == pytest.approx(end - start, abs=FRAME)
    # And the first frame is shown at 0, every frame one frame after the last, and decoding times rise
    decoding, presentation = video_timestamps(ffmpeg, outcome.path)
    assert sorted(presentation) == [index * Fraction(1, RATE) for index in range(136)]
    assert all(later > earlier for earlier, later in zip(decoding, decoding[1:]))
    # And it decodes without a single error, seams included
    assert decode_errors(ffmpeg, outcome.path) == ""


def test_an_mpeg_ts_source_still_starts_at_the_requested_frame(ffmpeg, prober, clipper, smart_media, media_server, tmp_path):
    # Given an MPEG-TS source, where an input seek can land after the keyframe before the start
    url = media_server.url("numbered.ts")
    # When 3.32 s to 8.76 s is cut frame-accurately
    outcome = cut(clipper, prober, url, 3.32, 8.76, tmp_path)
    # Then it starts at the requested frame and ends within a frame of the end, whichever
    # way it was cut (a full re-encode can lose the last frame to the encoder's rounding)
    frames = frame_numbers(ffmpeg, outcome.path)
    assert frames[0] == 83 and frames == list(range(83, 83 + len(frames))) and len(frames) in (135, 136)
    assert decode_errors(ffmpeg, outcome.path) == ""


def test_a_rotated_source_keeps_its_rotation(ffmpeg, prober, clipper, smart_media, media_server, tmp_path):
    # Given a source whose display matrix turns it a quarter
    url = media_server.url("numbered-rotated.mp4")
    assert prober.probe(url).rotation_degrees == 90
    # When it is smart-cut
    outcome = cut(clipper, prober, url, 3.32, 8.76, tmp_path)
    # Then the clip is turned the same way
    assert outcome.info.method == "smart"
    assert prober.probe_file(outcome.path).rotation_degrees == 90


def test_sound_that_starts_late_stays_late(ffmpeg, prober, clipper, smart_media, media_server, tmp_path):
    # Given a source whose sound starts 0.5 s after its picture, beeping at 0.5, 1.5, 2.5 s...
    url = media_server.url("numbered-late-audio.mp4")
    # When its first 3.32 s are cut
    outcome = cut(clipper, prober, url, 0, 3.32, tmp_path)
    # Then the beeps are still 0.5 s behind the picture, and the sound lasts as long as the picture
    assert outcome.info.method == "smart"
    assert beep_starts(ffmpeg, outcome.path)[:3] == pytest.approx([0.5, 1.5, 2.5], abs=0.002)
    assert outcome.info.duration_seconds == pytest.approx(3.32, abs=FRAME)


def test_smart_cut_keeps_sound_with_picture(ffmpeg, prober, clipper, smart_media, media_server, tmp_path):
    # Given a source that beeps at each whole second
    url = media_server.url("numbered.mp4")
    # When 3.32 s to 8.76 s is cut
    outcome = cut(clipper, prober, url, 3.32, 8.76, tmp_path)
    # Then the beeps of 4 s to 8 s start 0.68 s, 1.68 s... into the clip, within a millisecond
    assert beep_starts(ffmpeg, outcome.path)[:5] == pytest.approx([0.68, 1.68, 2.68, 3.68, 4.68], abs=0.001)


def test_start_on_a_keyframe_copies_from_it(ffmpeg, prober, clipper, smart_media, media_server, tmp_path):
    # Given a range that starts on a keyframe (4 s) and ends mid-GOP
    url = media_server.url("numbered.mp4")
    # When it is cut frame-accurately
    outcome = cut(clipper, prober, url, 4.0, 8.76, tmp_path)
    # Then it is still exact
    assert outcome.info.method == "smart"
    assert frame_numbers(ffmpeg, outcome.path) == list(range(100, 219))
    assert decode_errors(ffmpeg, outcome.path) == ""


def test_a_range_without_a_keyframe_is_reencoded_from_the_fetched_copy(
    ffmpeg, prober, clipper, smart_media, media_server, tmp_path
):
    # Given a range inside one GOP, so there is nothing to copy
    url = media_server.url("numbered.mp4")
    source = prober.probe(url)
    media_server.reset_counters()
    # When it is cut frame-accurately
    outcome = clipper.clip(
        ClipRequest(source_url=url, start_seconds=4.2, end_seconds=5.6), source, tmp_path, lambda fraction: None
    )
    # Then the whole range is re-encoded, exactly, and the reason is reported
    assert (outcome.info.method, outcome.info.fallback_reason) == ("reencode", "smart_cut_no_keyframe")
    assert frame_numbers(ffmpeg, outcome.path) == list(range(105, 140))
    # And the source was read once (an input seek is its index, then the range), not again for the encode
    assert media_server.requests <= 3


def test_keyframe_accuracy_is_a_checked_stream_copy(ffmpeg, prober, clipper, smart_media, media_server, tmp_path):
    url = media_server.url("numbered-no-bframes.mp4")
    (tmp_path / "aligned").mkdir()
    (tmp_path / "early").mkdir()
    # Given a range that starts on a keyframe
    # When it is cut with keyframe accuracy
    aligned = cut(clipper, prober, url, 4.0, 8.0, tmp_path / "aligned", ClipAccuracy.KEYFRAME)
    # Then it is a stream copy whose first frame is that keyframe
    assert (aligned.info.method, aligned.info.fallback_reason) == ("copy", None)
    assert frame_numbers(ffmpeg, aligned.path)[:1] == [100]
    # Given a range that starts 1.2 s after the keyframe at 4 s
    # When it is cut with keyframe accuracy
    early = cut(clipper, prober, url, 5.2, 8.0, tmp_path / "early", ClipAccuracy.KEYFRAME)
    # Then it is still a stream copy: it starts at that keyframe and ends at the requested end
    assert (early.info.method, early.info.fallback_reason) == ("copy", None)
    frames = frame_numbers(ffmpeg, early.path)
    assert frames[:1] == [100] and frames[-1] == 199


def test_a_vp9_source_falls_back_to_a_full_reencode(prober, clipper, smart_media, media_server, tmp_path):
    # Given a VP9/Opus WebM, which the smart cut does not handle
    url = media_server.url("vp9.webm")
    # When it is cut frame-accurately
    outcome = cut(clipper, prober, url, 1.3, 4.1, tmp_path)
    # Then it is re-encoded to H.264/AAC, exactly, and says why
    assert (outcome.info.method, outcome.info.fallback_reason) == ("reencode", "smart_cut_unsupported_codec")
    clip = prober.probe_file(outcome.path)
    assert (clip.video_codec, clip.audio_codec) == ("h264", "aac")
    assert clip.duration_seconds == pytest.approx(2.8, abs=FRAME)


@pytest.mark.parametrize(
    ("name", "method", "fallback_reason"),
    [
        ("tone.m4a", "copy", None),
        ("tone.mp3", "reencode", "audio_not_aac"),
        ("tone.wav", "reencode", "audio_not_aac"),
        ("tone.opus", "reencode", "audio_not_aac"),
    ],
)
def test_an_audio_only_source_gives_an_m4a(
    prober, clipper, smart_media, media_server, tmp_path, name, method, fallback_reason
):
    # Given an audio-only source
    url = media_server.url(name)
    # When 2.5 s to 6 s is cut
    outcome = cut(clipper, prober, url, 2.5, 6.0, tmp_path)
    # Then the clip is AAC in an M4A, copied when the source is AAC already, of the requested length
    assert outcome.path.name == "clip.m4a"
    assert (outcome.info.method, outcome.info.fallback_reason) == (method, fallback_reason)
    clip = prober.probe_file(outcome.path)
    assert (clip.has_video, clip.audio_codec) == (False, "aac")
    assert clip.duration_seconds == pytest.approx(3.5, abs=0.05)


def test_a_video_only_source_is_smart_cut(ffmpeg, prober, clipper, smart_media, media_server, tmp_path):
    # Given an H.264 source with no audio
    url = media_server.url("numbered-video-only.mp4")
    # When a range between keyframes is cut
    outcome = cut(clipper, prober, url, 3.32, 6.0, tmp_path)
    # Then it is smart-cut, exact, and still has no audio
    assert outcome.info.method == "smart"
    assert frame_numbers(ffmpeg, outcome.path) == list(range(83, 150))
    assert prober.probe_file(outcome.path).has_audio is False


def test_a_smart_cut_reads_little_more_than_the_range(prober, clipper, media_server, tmp_path):
    # Given a 3-minute faststart MP4 served with Range support
    url = media_server.url("long.mp4")
    source = prober.probe(url)
    media_server.reset_counters()
    # When 10 s from its middle are cut between keyframes
    request = ClipRequest(source_url=url, start_seconds=90.5, end_seconds=100.5)
    outcome = clipper.clip(request, source, tmp_path, lambda fraction: None)
    # Then it was smart-cut from a read of little more than the range: a GOP before it, a second after
    assert outcome.info.method == "smart"
    ratio = media_server.bytes_sent / outcome.info.size_bytes
    assert ratio <= 3, f"read {media_server.bytes_sent} bytes for a {outcome.info.size_bytes}-byte clip"


# The planner alone: listings written by hand, times in frames of 1/25 s relative to the start.


def listing(*packets: tuple[int, str]) -> PacketListing:
    """Packets in decode order as (frame, "K" for a keyframe or "" for any other)."""
    return PacketListing(
        Fraction(1, 12800),
        tuple(VideoPacket(Fraction(frame, RATE), Fraction(0), kind == "K") for frame, kind in packets),
    )


def frames(*numbers: int) -> list[Fraction]:
    return [Fraction(number, RATE) for number in numbers]


def test_the_copy_ends_where_no_kept_frame_needs_a_dropped_one():
    # Given GOPs at -2 and 2 with pyramid B-frames: each P-frame is decoded ahead of the B-frames shown before it
    packets = listing(
        (-2, "K"), (1, ""), (-1, ""), (0, ""),
        (2, "K"), (6, ""), (4, ""), (3, ""), (5, ""), (10, ""), (8, ""), (7, ""), (9, ""),
    )  # fmt: skip
    # When frames 0 to 8 are planned
    plan = plan_cut(packets, 9 / RATE)
    # Then 0 and 1 are encoded, 2 to 6 copied, and 7 and 8 encoded: copied, they would need frame 10
    assert plan.segments == (
        Segment(*frames(0, 2), copied=False),
        Segment(*frames(2, 7), copied=True),
        Segment(*frames(7, 9), copied=False),
    )
    # And the copy starts at the keyframe's packet, and its frame 3 is decoded two frames ahead of its turn
    assert (plan.first_copied_packet, plan.copied_frames, plan.decode_delay) == (4, 5, 2)


def test_an_open_gops_leading_frames_stop_the_copy():
    # Given a keyframe at 4 followed, in decode order, by frames 2 and 3 that are shown before it
    packets = listing((-2, "K"), (-1, ""), (0, ""), (1, ""), (4, "K"), (2, ""), (3, ""), (6, ""), (5, ""), (7, ""))
    # When frames 0 to 7 are planned
    plan = plan_cut(packets, 8 / RATE)
    # Then the copy holds the keyframe alone: everything decoded after it may refer to the leading frames
    assert plan.segments == (
        Segment(*frames(0, 4), copied=False),
        Segment(*frames(4, 5), copied=True),
        Segment(*frames(5, 8), copied=False),
    )


def test_a_range_inside_one_gop_is_encoded_whole():
    # Given a range with no keyframe in it
    packets = listing((-2, "K"), (-1, ""), (0, ""), (1, ""), (2, ""), (3, "K"))
    # When frames 0 to 2 are planned, Then they are one encoded segment
    plan = plan_cut(packets, 3 / RATE)
    assert plan.segments == (Segment(*frames(0, 3), copied=False),) and plan.copied_frames == 0


def test_a_variable_frame_rate_is_not_smart_cut():
    # Given frames that are not evenly spaced inside the range
    packets = listing((0, "K"), (1, ""), (3, ""), (4, "K"), (5, ""))
    # When planned, Then the planner declines with its reason
    with pytest.raises(SmartCutFallback) as declined:
        plan_cut(packets, 5 / RATE)
    assert declined.value.reason == "smart_cut_variable_frame_rate"
