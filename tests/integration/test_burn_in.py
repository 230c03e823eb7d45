"""Burning subtitles into a clip with the real ffmpeg and libass, judged by the decoded pixels."""

import operator
import re
import shutil
import subprocess

import pytest

from clipline.domain import errors
from clipline.domain.jobs import SubtitleStyle
from clipline.domain.subtitles import Cue
from clipline.media.burn_in import FfmpegSubtitleBurner, default_fonts_dir

WIDTH, HEIGHT, RATE, SECONDS = 640, 360, 25, 4
# A flat picture: without the subtitles every pixel of a frame should be the same colour.
BACKGROUND = "0x3060a0"
# Both files are lossy H.264 (CRF 20) of that flat picture, so a pixel away from the text
# comes back within a few levels of its colour (we see at most 2 of 255); the text's
# white-on-black edges differ from the blue by 100 levels and more.
CODEC_NOISE = 8
TEXT_CHANGE = 40
# The default style at 360 lines: 18 px text, 20 px above the bottom edge.
BOTTOM_ROWS = range(HEIGHT * 3 // 4, HEIGHT)
TOP_ROWS = range(0, HEIGHT // 2)

A_CUE = Cue(1.0, 2.0, ("Subtitles, burned in",))
QUIET_SECOND = 3.0  # no cue on screen
CUE_SECOND = 1.5


# --- media and frames --------------------------------------------------------------------------------


def ffmpeg_run(ffmpeg, *arguments):
    return subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y", *arguments],
                          check=True, capture_output=True)  # fmt: skip


@pytest.fixture(scope="module")
def media(tmp_path_factory, ffmpeg):
    root = tmp_path_factory.mktemp("burn-in media")
    # Shaped like a re-encoded clip: H.264 CRF 20 and AAC, moov first.
    ffmpeg_run(
        ffmpeg,
        "-f", "lavfi", "-i", f"color=c={BACKGROUND}:size={WIDTH}x{HEIGHT}:rate={RATE}:duration={SECONDS}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", str(root / "clip.mp4"),
    )  # fmt: skip
    ffmpeg_run(ffmpeg, "-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac", str(root / "audio-only.m4a"))
    # MP4 cannot hold WMA audio, so copying this clip's audio fails in ffmpeg.
    ffmpeg_run(
        ffmpeg,
        "-f", "lavfi", "-i", f"color=c={BACKGROUND}:size=320x180:rate={RATE}:duration=1",
        "-f", "lavfi", "-i", "sine=duration=1",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "wmav2", str(root / "wma.mkv"),
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def burner(ffmpeg, prober):
    return FfmpegSubtitleBurner(ffmpeg, prober, default_fonts_dir(), timeout_seconds=60)


@pytest.fixture(scope="module")
def burned(burner, media, tmp_path_factory):
    progress = []
    work_dir = tmp_path_factory.mktemp("burned")
    output = burner.burn(media / "clip.mp4", [A_CUE], SubtitleStyle(), work_dir, progress.append)
    return output, progress


def frame(ffmpeg, path, seconds):
    """The frame shown at ``seconds``, as rgb24 bytes, row by row."""
    run = ffmpeg_run(ffmpeg, "-ss", f"{seconds}", "-i", str(path), "-frames:v", "1",
                     "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1")  # fmt: skip
    assert len(run.stdout) == WIDTH * HEIGHT * 3
    return run.stdout


def rows(picture, selected):
    return picture[selected.start * WIDTH * 3 : selected.stop * WIDTH * 3]


def max_difference(first, second):
    """The largest difference of one colour channel of one pixel, 0-255."""
    return max(map(abs, map(operator.sub, first, second)))


def changed_pixels(first, second):
    """How many pixels differ by more than the codec's noise could make them: drawn text."""
    channel_changed = [abs(a - b) > TEXT_CHANGE for a, b in zip(first, second)]
    return sum(any(channel_changed[i : i + 3]) for i in range(0, len(channel_changed), 3))


def changed_rows(first, second):
    """The rows where text was drawn."""
    return [
        y for y in range(HEIGHT)
        if max_difference(rows(first, range(y, y + 1)), rows(second, range(y, y + 1))) > TEXT_CHANGE
    ]  # fmt: skip


def top_level_boxes(path):
    """The types of an MP4's top-level boxes, in file order."""
    data, offset, types = path.read_bytes(), 0, []
    while offset + 8 <= len(data):
        size, kind = int.from_bytes(data[offset : offset + 4]), data[offset + 4 : offset + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[offset + 8 : offset + 16])
        elif size == 0:
            size = len(data) - offset
        types.append(kind)
        offset += size
    return types


def packets_md5(ffmpeg, path, stream):
    run = ffmpeg_run(ffmpeg, "-i", str(path), "-map", f"0:{stream}", "-c", "copy", "-f", "md5", "pipe:1")
    return run.stdout.strip()


# --- the picture -------------------------------------------------------------------------------------


def test_text_is_drawn_at_the_bottom_only_while_its_cue_is_shown(ffmpeg, media, burned):
    # Given a flat clip burned with one bottom cue from 1 s to 2 s
    output, _ = burned
    # When the frames in the cue and after it are compared with the clip's own
    plain_cue, burned_cue = frame(ffmpeg, media / "clip.mp4", CUE_SECOND), frame(ffmpeg, output, CUE_SECOND)
    plain_quiet, burned_quiet = frame(ffmpeg, media / "clip.mp4", QUIET_SECOND), frame(ffmpeg, output, QUIET_SECOND)
    # Then text appears in the bottom quarter while the cue is shown
    assert changed_pixels(rows(plain_cue, BOTTOM_ROWS), rows(burned_cue, BOTTOM_ROWS)) > 300
    # And the top half is untouched during it, and the whole frame once it has gone
    assert max_difference(rows(plain_cue, TOP_ROWS), rows(burned_cue, TOP_ROWS)) <= CODEC_NOISE
    assert max_difference(plain_quiet, burned_quiet) <= CODEC_NOISE


def test_a_top_cue_is_drawn_at_the_top(ffmpeg, media, burner, tmp_path):
    # Given the same cue styled to the top / When burned
    style = SubtitleStyle(position="top")
    output = burner.burn(media / "clip.mp4", [A_CUE], style, tmp_path, lambda fraction: None)
    # Then its text is in the top half and the bottom quarter is untouched
    plain, burned_frame = frame(ffmpeg, media / "clip.mp4", CUE_SECOND), frame(ffmpeg, output, CUE_SECOND)
    assert changed_pixels(rows(plain, TOP_ROWS), rows(burned_frame, TOP_ROWS)) > 300
    assert max_difference(rows(plain, BOTTOM_ROWS), rows(burned_frame, BOTTOM_ROWS)) <= CODEC_NOISE


HOSTILE_CUES = [
    Cue(0.2, 1.0, ("Reference line",)),
    Cue(1.2, 2.0, (r"{\an7\pos(0,0)}{\fs200}Override",)),
    Cue(2.2, 3.0, (r"Reference\Nline \n \h",)),
    Cue(3.2, 3.9, ("Colons: 'single' \"double\" back\\slash {brace} % ; [ ] , 字幕テスト مرحبا",)),
]


def test_hostile_text_is_drawn_literally(ffmpeg, media, burner, tmp_path):
    # Given cues with ASS override tags, escapes, quotes, filtergraph punctuation, CJK and Arabic
    # When they are burned in
    output = burner.burn(media / "clip.mp4", HOSTILE_CUES, SubtitleStyle(), tmp_path, lambda fraction: None)
    plain = frame(ffmpeg, media / "clip.mp4", 0.6)
    reference, override, escapes, punctuation = (frame(ffmpeg, output, second) for second in (0.6, 1.6, 2.6, 3.6))
    # Then the override cue is drawn where any bottom cue is, at its size: {\an7\pos(0,0)} and
    # {\fs200} were shown as text, not applied (they would have put huge text at the top left)
    assert changed_pixels(rows(plain, BOTTOM_ROWS), rows(override, BOTTOM_ROWS)) > 300
    assert max_difference(rows(plain, TOP_ROWS), rows(override, TOP_ROWS)) <= CODEC_NOISE
    assert max(changed_rows(plain, override)) - min(changed_rows(plain, override)) < 40
    # And \N did not break the line: that cue takes the reference line's height, not two lines'
    reference_rows, escape_rows = changed_rows(plain, reference), changed_rows(plain, escapes)
    assert min(escape_rows) >= min(reference_rows) - 3 and max(escape_rows) <= max(reference_rows) + 3
    # And the punctuation, CJK and Arabic cue is drawn (missing glyphs as boxes) at the bottom
    assert changed_pixels(rows(plain, BOTTOM_ROWS), rows(punctuation, BOTTOM_ROWS)) > 300


# --- fonts and paths ---------------------------------------------------------------------------------


def test_text_comes_from_the_bundled_font_whatever_fonts_the_machine_has(ffmpeg, media, burner, tmp_path, monkeypatch):
    # Given a cue with Arabic, which the bundled font lacks and this machine's fonts may have
    cue = Cue(1.0, 2.0, ("Hello مرحبا",))
    system_work, fontless_work, empty = tmp_path / "system", tmp_path / "fontless", tmp_path / "no fonts"
    for directory in (system_work, fontless_work, empty / "fonts"):
        directory.mkdir(parents=True)
    with_system_fonts = burner.burn(media / "clip.mp4", [cue], SubtitleStyle(), system_work, lambda fraction: None)
    # When it is burned again where fontconfig finds no fonts at all (like AWS Lambda)
    (empty / "fonts.conf").write_text(f"<fontconfig><dir>{empty / 'fonts'}</dir></fontconfig>\n")
    monkeypatch.setenv("FONTCONFIG_FILE", str(empty / "fonts.conf"))
    for variable in ("FONTCONFIG_PATH", "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(variable, str(empty))
    without_fonts = burner.burn(media / "clip.mp4", [cue], SubtitleStyle(), fontless_work, lambda fraction: None)
    # Then the text is still drawn, from the bundled font
    plain = frame(ffmpeg, media / "clip.mp4", CUE_SECOND)
    fontless_frame = frame(ffmpeg, without_fonts, CUE_SECOND)
    assert changed_pixels(rows(plain, BOTTOM_ROWS), rows(fontless_frame, BOTTOM_ROWS)) > 300
    # And exactly as with the machine's fonts: those were never used, not even for the Arabic
    assert max_difference(frame(ffmpeg, with_system_fonts, CUE_SECOND), fontless_frame) <= CODEC_NOISE


def test_paths_with_filtergraph_punctuation_work(ffmpeg, media, prober, tmp_path):
    # Given a work dir and a fonts dir whose names hold : ' \ , [ ] ; = % and spaces
    work_dir = tmp_path / "work dir: it's [a,b];c=d\\e%f"
    fonts_dir = tmp_path / "fonts: it's [x,y];z=1\\w%"
    work_dir.mkdir()
    fonts_dir.mkdir()
    shutil.copy(default_fonts_dir() / "SourceSansPro-Regular.ttf", fonts_dir)
    burner = FfmpegSubtitleBurner(ffmpeg, prober, fonts_dir, timeout_seconds=60)
    # When a cue is burned there
    output = burner.burn(media / "clip.mp4", [A_CUE], SubtitleStyle(), work_dir, lambda fraction: None)
    # Then the text is drawn, and only the burned clip is left in the work dir
    plain, burned_frame = frame(ffmpeg, media / "clip.mp4", CUE_SECOND), frame(ffmpeg, output, CUE_SECOND)
    assert changed_pixels(rows(plain, BOTTOM_ROWS), rows(burned_frame, BOTTOM_ROWS)) > 300
    assert [path.name for path in work_dir.iterdir()] == ["clip.burned.mp4"]


# --- the file ----------------------------------------------------------------------------------------


def test_output_is_faststart_h264_with_the_audio_copied(ffmpeg, media, prober, burned):
    # Given the burned clip and its source
    output, progress = burned
    source, result = prober.probe_file(media / "clip.mp4"), prober.probe_file(output)
    # Then it is H.264 in yuv420p, as long as the source within a frame
    assert (result.video_codec, result.has_audio) == ("h264", True)
    summary = subprocess.run([ffmpeg, "-hide_banner", "-i", str(output)], capture_output=True, text=True).stderr
    assert re.search(r"Video: h264 .*yuv420p", summary)
    assert result.duration_seconds == pytest.approx(source.duration_seconds, abs=1 / RATE)
    # And its audio packets are the source's, byte for byte (copied, not re-encoded)
    assert packets_md5(ffmpeg, output, "a") == packets_md5(ffmpeg, media / "clip.mp4", "a")
    # And the index (moov) comes before the media data, so playback starts before the download ends
    boxes = top_level_boxes(output)
    assert boxes.index("moov") < boxes.index("mdat")
    # And progress rose to 1.0
    assert progress == sorted(progress) and progress[-1] == 1.0 and 0 <= progress[0]


def test_an_audio_only_file_has_no_video_to_draw_on(media, burner, tmp_path):
    with pytest.raises(errors.NoVideoStreamError):
        burner.burn(media / "audio-only.m4a", [A_CUE], SubtitleStyle(), tmp_path, lambda fraction: None)


def test_an_ffmpeg_failure_reports_its_cause(media, burner, tmp_path):
    # Given a clip whose audio cannot be copied into MP4 / When burned
    with pytest.raises(errors.BurnInFailedError, match="wmav2") as failure:
        burner.burn(media / "wma.mkv", [A_CUE], SubtitleStyle(), tmp_path, lambda fraction: None)
    # Then ffmpeg's own words say why, and no partial file is left
    assert "not currently supported in container" in failure.value.message
    assert not (tmp_path / "clip.burned.mp4").exists()


def test_a_missing_fonts_dir_fails_before_ffmpeg_runs(ffmpeg, media, prober, tmp_path):
    burner = FfmpegSubtitleBurner(ffmpeg, prober, tmp_path / "absent", timeout_seconds=60)
    with pytest.raises(errors.BurnInFailedError, match="fonts directory"):
        burner.burn(media / "clip.mp4", [A_CUE], SubtitleStyle(), tmp_path, lambda fraction: None)


def test_ffmpeg_past_its_time_limit_is_a_timeout(ffmpeg, media, prober, tmp_path):
    burner = FfmpegSubtitleBurner(ffmpeg, prober, default_fonts_dir(), timeout_seconds=0.001)
    with pytest.raises(errors.ClipTimeoutError):
        burner.burn(media / "clip.mp4", [A_CUE], SubtitleStyle(), tmp_path, lambda fraction: None)
