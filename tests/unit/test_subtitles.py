import json
import random

import pytest
import srt
import webvtt

from clipline.domain.jobs import SubtitlePosition, SubtitleStyle
from clipline.domain.subtitles import (
    Cue, build_cues, parse_srt, render_ass, render_json, render_srt, render_text, render_vtt,
)
from clipline.domain.transcripts import Segment, Transcript, Word

VOCABULARY = (
    "the a we it clip video subtitle works quickly really because people often want short parts of long "
    "recordings and then they share them with friends or colleagues who never saw the original stream"
).split()


def a_transcript(segments, duration=0.0):
    return Transcript(
        language="en", duration_seconds=duration, provider="fake", model="fake-1", model_version="fake-1.0",
        segments=tuple(segments),
    )


def timed_segment(texts, start=0.0, word_seconds=0.3, gap=0.05, pauses=()):
    """A segment whose words follow each other; a pause (seconds) is added before the word indexes given."""
    words, clock = [], start
    for index, text in enumerate(texts):
        clock += dict(pauses).get(index, 0.0)
        words.append(Word(start=round(clock, 3), end=round(clock + word_seconds, 3), text=text, probability=0.9))
        clock += word_seconds + gap
    return Segment(start=words[0].start, end=words[-1].end, text=" ".join(texts), words=tuple(words))


def long_transcript(word_count=300, seed=7):
    """Sentences of 4-18 words with commas, short gaps between words and a pause now and then."""
    rng = random.Random(seed)
    segments, clock, written = [], 0.0, 0
    while written < word_count:
        size = min(rng.randint(4, 18), word_count - written)
        words = []
        for index in range(size):
            text = rng.choice(VOCABULARY)
            if index == size - 1:
                text += rng.choice(".?!")
            elif rng.random() < 0.12:
                text += ","
            if rng.random() < 0.04:
                clock += rng.uniform(0.6, 1.5)  # a hesitation inside a sentence
            duration = rng.uniform(0.12, 0.6)
            # Leading spaces, as Whisper writes words.
            words.append(Word(start=round(clock, 3), end=round(clock + duration, 3), text=f" {text}"))
            clock += duration + rng.uniform(0.0, 0.15)
        segments.append(Segment(start=words[0].start, end=words[-1].end, text="".join(w.text for w in words),
                                words=tuple(words)))
        clock += rng.uniform(0.2, 1.2)
        written += size
    return a_transcript(segments, duration=clock)


def cue_words(cues):
    return [word for cue in cues for word in cue.text.split()]


@pytest.fixture(scope="module")
def long_cues():
    transcript = long_transcript()
    return transcript, build_cues(transcript)


def test_lines_respect_the_length_and_count_limits(long_cues):
    # Given a 300-word transcript / When cued / Then every cue has 1-2 lines of at most 42 characters
    _, cues = long_cues
    assert len(cues) > 20
    for cue in cues:
        assert 1 <= len(cue.lines) <= 2, cue
        assert all(0 < len(line) <= 42 for line in cue.lines), cue
        assert all(line == line.strip() and "  " not in line for line in cue.lines), cue


def test_a_cue_that_fits_on_one_line_stays_on_one_line(long_cues):
    _, cues = long_cues
    for cue in cues:
        if len(cue.lines) == 2:
            assert len(" ".join(cue.lines)) > 42, cue


def test_no_cue_lasts_longer_than_seven_seconds_or_less_than_nothing(long_cues):
    _, cues = long_cues
    assert all(0 < cue.end - cue.start <= 7.0 + 1e-9 for cue in cues)


def test_cues_are_in_order_and_never_overlap(long_cues):
    transcript, cues = long_cues
    assert cues[0].start >= 0
    assert cues[-1].end <= transcript.duration_seconds
    for previous, current in zip(cues, cues[1:]):
        assert previous.end <= current.start


def test_every_word_appears_once_in_order(long_cues):
    # Given the transcript's words / When cued / Then the cues hold exactly those words, in order
    transcript, cues = long_cues
    assert cue_words(cues) == [word.text.strip() for word in transcript.words]


def test_cues_follow_the_word_timings(long_cues):
    # Then a cue starts when its first word starts
    transcript, cues = long_cues
    starts = {round(word.start, 3) for word in transcript.words}
    assert all(round(cue.start, 3) in starts for cue in cues)


def test_a_cue_breaks_at_the_sentence_end_inside_its_window():
    # Given a short sentence followed by a long one, together too long for one cue
    first = "We tried it twice.".split()
    second = "And then the whole team decided to rewrite the clipping service from scratch in a week".split()
    transcript = a_transcript([timed_segment(first + second, word_seconds=0.2, gap=0.02)])
    # When cued
    cues = build_cues(transcript)
    # Then the first cue ends with the sentence, though more words would have fitted
    assert cues[0].text == "We tried it twice."
    assert cue_words(cues) == first + second


def test_a_clause_break_is_preferred_to_filling_the_cue():
    # Given a comma past the middle of a run of words too long for one cue
    words = ("When the upload finishes and the checks pass in the background, the service cuts "
             "the clip and sends it back to whoever asked for it").split()
    transcript = a_transcript([timed_segment(words, word_seconds=0.15, gap=0.02)])
    # When cued / Then the first cue ends at the comma
    cues = build_cues(transcript)
    assert cues[0].text.replace("\n", " ").endswith("background,")


def test_a_pause_splits_cues():
    # Given two short phrases, with and without a second of silence between them
    words = "Hello there general Kenobi".split()
    with_pause = a_transcript([timed_segment(words, pauses=[(2, 1.0)])])
    without_pause = a_transcript([timed_segment(words)])
    # When cued / Then the pause ends the first cue and the unbroken phrase is one cue
    assert [cue.text for cue in build_cues(with_pause)] == ["Hello there", "general Kenobi"]
    assert [cue.text for cue in build_cues(without_pause)] == ["Hello there general Kenobi"]


def test_two_lines_are_balanced_and_prefer_punctuation():
    # Given one cue's worth of text, too long for one line
    even = "one two three four five six seven eight nine ten eleven".split()
    comma = "Right after lunch, we cut the clip and sent it over".split()
    # When cued
    balanced = build_cues(a_transcript([timed_segment(even)]))
    punctuated = build_cues(a_transcript([timed_segment(comma)]))
    # Then the lines have about the same length, or break after the comma when that is close enough
    assert balanced[0].lines == ("one two three four five six", "seven eight nine ten eleven")
    assert punctuated[0].lines == ("Right after lunch,", "we cut the clip and sent it over")


def test_a_short_cue_is_held_long_enough_to_read_but_not_into_the_next():
    # Given a 0.2 s word, a pause, and a phrase starting at 0.85 s
    transcript = a_transcript([timed_segment(["Yes.", "Let's", "go"], word_seconds=0.2, pauses=[(1, 0.6)])])
    # When cued with the default minimum (5/6 s) and with a longer one
    default = build_cues(transcript)
    longer = build_cues(transcript, min_cue_seconds=2.0)
    # Then the first cue is held for the minimum, but never past the start of the next cue
    assert [(cue.start, cue.end) for cue in default] == [(0.0, 0.833), (0.85, 1.683)]
    assert [(cue.start, cue.end) for cue in longer] == [(0.0, 0.85), (0.85, 2.85)]


def test_zero_length_words_and_times_past_the_audio_are_clamped():
    # Given words of zero length, the last reported past the end of the audio
    words = (Word(start=1.0, end=1.0, text="tick"), Word(start=1.0, end=1.0, text="tock"),
             Word(start=9.5, end=11.0, text="boom"))
    transcript = a_transcript([Segment(start=1.0, end=11.0, text="tick tock boom", words=words)], duration=10.0)
    # When cued with no minimum duration
    cues = build_cues(transcript, min_cue_seconds=0)
    # Then every cue has a positive duration inside the audio
    assert [cue.text for cue in cues] == ["tick tock", "boom"]
    assert cues[0].end > cues[0].start == 1.0
    assert (cues[1].start, cues[1].end) == (9.5, 10.0)


def test_segments_without_words_still_yield_cues():
    # Given a 20 s segment with no word timings and ~200 characters of text, after a timed one
    text = " ".join(["clipline cuts the clip and writes the subtitles"] * 4)
    untimed = Segment(start=5.0, end=25.0, text=f"  {text}\n")
    transcript = a_transcript([timed_segment(["Intro."]), untimed], duration=30.0)
    # When cued
    cues = build_cues(transcript)
    # Then the text is spread over cues inside the segment, within the limits, nothing lost
    assert cue_words(cues) == ["Intro."] + text.split()
    later = cues[1:]
    assert len(later) >= 3
    assert later[0].start == 5.0 and later[-1].end <= 25.0
    assert all(cue.end - cue.start <= 7.0 and all(len(line) <= 42 for line in cue.lines) for cue in later)


def test_an_empty_transcript_has_no_cues():
    empty = a_transcript([])
    silent = a_transcript([Segment(start=0, end=1, text="  ")])
    assert build_cues(empty) == build_cues(silent) == ()
    assert render_srt(()) == ""
    assert render_vtt(()).startswith("WEBVTT")
    assert render_text(empty) == ""


def test_a_word_longer_than_a_line_gets_a_line_of_its_own():
    # Given a 60-character word between ordinary ones
    giant = "x" * 60
    transcript = a_transcript([timed_segment(["see", giant, "here", "now"])])
    # When cued / Then the word is kept whole on its own line and the others stay within limits
    cues = build_cues(transcript)
    lines = [line for cue in cues for line in cue.lines]
    assert giant in lines
    assert all(len(line) <= 42 for line in lines if line != giant)
    assert cue_words(cues) == ["see", giant, "here", "now"]


def test_limits_are_checked():
    with pytest.raises(ValueError, match="min_cue_seconds"):
        build_cues(a_transcript([]), min_cue_seconds=8)


def test_srt_round_trips(long_cues):
    # Given cues / When rendered as SRT and parsed back / Then times and text are the same
    _, cues = long_cues
    rendered = render_srt(cues)
    subtitles = list(srt.parse(rendered))
    assert [subtitle.index for subtitle in subtitles] == list(range(1, len(cues) + 1))
    assert [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in subtitles] == [
        (cue.start, cue.end, cue.text) for cue in cues
    ]
    assert parse_srt(rendered) == cues


@pytest.mark.parametrize(
    "text",
    ["not subtitles at all", "1\n00:00:aa,000 --> 00:00:02,000\nhi\n", "1\n00:00:01,000 -> 00:00:02,000\nhi\n"],
)
def test_malformed_srt_is_a_value_error(text):
    with pytest.raises(ValueError, match="Not valid SRT"):
        parse_srt(text)


def test_srt_cue_ending_before_it_starts_is_a_value_error():
    with pytest.raises(ValueError, match="cue 1 ends before it starts"):
        parse_srt("1\n00:00:02,000 --> 00:00:01,000\nhi\n")


def test_vtt_parses_with_the_same_cues(long_cues):
    # Given cues / When rendered as WebVTT and parsed / Then the count, times and text match
    _, cues = long_cues
    rendered = render_vtt(cues)
    assert rendered.startswith("WEBVTT")
    captions = webvtt.from_string(rendered).captions
    assert len(captions) == len(cues)
    assert [(c.start_time.in_milliseconds(), c.end_time.in_milliseconds(), c.text) for c in captions] == [
        (round(cue.start * 1000), round(cue.end * 1000), cue.text) for cue in cues
    ]


def test_vtt_escapes_markup_characters():
    rendered = render_vtt([Cue(1.0, 2.5, ("AT&T <3 --> ok",))])
    assert "AT&amp;T &lt;3 --&gt; ok" in rendered
    assert "00:00:01.000 --> 00:00:02.500" in rendered


def test_plain_text_is_one_segment_per_line():
    transcript = a_transcript([Segment(start=0, end=1, text=" Hello  there. "), Segment(start=1, end=2, text=""),
                               Segment(start=2, end=3, text="Bye.\n")])
    assert render_text(transcript) == "Hello there.\nBye.\n"


def test_json_has_camel_case_fields_text_and_words():
    # Given a transcript with word timings / When rendered as JSON
    transcript = a_transcript([timed_segment(["Hello", "world."])], duration=2.0)
    data = json.loads(render_json(transcript))
    # Then the fields are camelCase, the full text is included, and words keep their timings
    assert list(data) == ["language", "durationSeconds", "provider", "model", "modelVersion", "text", "segments"]
    assert (data["durationSeconds"], data["modelVersion"], data["text"]) == (2.0, "fake-1.0", "Hello world.")
    segment = data["segments"][0]
    assert set(segment) == {"start", "end", "text", "words"}
    assert segment["words"][1] == {"start": 0.35, "end": 0.65, "text": "world.", "probability": 0.9}


# --- ASS for burn-in ---------------------------------------------------------------------------------

WORD_JOINER = "\u2060"
LIBASS_ESCAPES = {"N": "\n", "n": " ", "h": "\xa0", "{": "{", "}": "}"}


def ass_section(document, section, kind):
    """The ``kind`` lines of ``section`` as dicts keyed by the section's Format names."""
    body = document.split(f"[{section}]\n", 1)[1].split("\n\n", 1)[0].splitlines()
    names = [name.strip() for name in body[0].removeprefix("Format:").split(",")]
    # The last field (an event's text) may hold commas.
    return [
        dict(zip(names, line.removeprefix(f"{kind}: ").split(",", len(names) - 1)))
        for line in body[1:]
        if line.startswith(f"{kind}: ")
    ]


def ass_style(document):
    (style,) = ass_section(document, "V4+ Styles", "Style")
    return style


def ass_events(document):
    return ass_section(document, "Events", "Dialogue")


def script_info(document):
    lines = document.split("[Script Info]\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return dict(line.split(": ", 1) for line in lines)


def libass_reading(text):
    """What libass draws for an event's text: its override-block and escape rules
    (ass_render.c, ass_get_next_char), an applied override block shown as "<override>"."""
    drawn, index = [], 0
    while index < len(text):
        char = text[index]
        if char == "{" and "}" in text[index + 1:]:
            drawn.append("<override>")
            index = text.index("}", index) + 1
        elif char == "\\" and text[index + 1:index + 2] in tuple(LIBASS_ESCAPES):
            drawn.append(LIBASS_ESCAPES[text[index + 1]])
            index += 2
        else:
            drawn.append(char)
            index += 1
    # The word joiner is default-ignorable: HarfBuzz draws nothing for it.
    return "".join(drawn).replace(WORD_JOINER, "")


def test_ass_style_converts_colours_to_ass_order():
    # Given colours as #RRGGBB / When rendered
    document = render_ass([], SubtitleStyle(primary_colour="#ff8800", outline_colour="#102030"), 1920, 1080)
    style = ass_style(document)
    # Then ASS has them as &HAABBGGRR, opaque
    assert (style["PrimaryColour"], style["OutlineColour"]) == ("&H000088FF", "&H00302010")
    assert style["Fontname"] == "Source Sans Pro"


@pytest.mark.parametrize(
    ("width", "height", "font_size", "outline", "margin_vertical"),
    [(1920, 1080, "54", "3", "60"), (1280, 720, "36", "2", "40"), (640, 360, "18", "1", "20")],
)
def test_ass_sizes_scale_with_the_picture_height(width, height, font_size, outline, margin_vertical):
    # Given the default style, in pixels of a 1080-line frame / When rendered for a smaller picture
    document = render_ass([], SubtitleStyle(), width, height)
    # Then the script's coordinates are the picture's pixels and the sizes shrink with its height
    info, style = script_info(document), ass_style(document)
    assert (info["PlayResX"], info["PlayResY"], info["ScaledBorderAndShadow"]) == (str(width), str(height), "yes")
    assert (style["Fontsize"], style["Outline"], style["MarginV"]) == (font_size, outline, margin_vertical)


def test_ass_sizes_keep_fractions():
    document = render_ass([], SubtitleStyle(font_size=50, outline_width=2.5), 1280, 720)
    assert (ass_style(document)["Fontsize"], ass_style(document)["Outline"]) == ("33.33", "1.67")


@pytest.mark.parametrize(("position", "alignment"), [(SubtitlePosition.BOTTOM, "2"), (SubtitlePosition.TOP, "8")])
def test_ass_alignment_follows_the_position(position, alignment):
    document = render_ass([], SubtitleStyle(position=position), 1280, 720)
    assert ass_style(document)["Alignment"] == alignment


def test_ass_events_keep_times_and_join_lines_with_hard_breaks():
    # Given two cues, one of two lines / When rendered
    cues = [Cue(1.5, 3.25, ("First line,", "second line")), Cue(3661.01, 3662.0, ("Later",))]
    events = ass_events(render_ass(cues, SubtitleStyle(), 1280, 720))
    # Then each is one event in centiseconds, its lines joined by \N and commas kept in the text
    assert [(e["Start"], e["End"], e["Style"], e["Text"]) for e in events] == [
        ("0:00:01.50", "0:00:03.25", "Default", r"First line,\Nsecond line"),
        ("1:01:01.01", "1:01:02.00", "Default", "Later"),
    ]


HOSTILE_LINES = [
    r"{\pos(0,0)}{\an7}{\fs200}moved and huge?",
    r"escapes \N \n \h and a lone \ and \\ and a trailing \ ",
    r"an {unclosed brace, a closed} one, \{escaped\} ones",
    "colons: 'single' \"double\" % ; [ ] , 字幕テスト مرحبا",
]


def test_hostile_text_is_drawn_literally():
    # Given lines full of ASS override blocks, escapes and punctuation
    cue = Cue(0.0, 2.0, tuple(HOSTILE_LINES))
    # When rendered and read the way libass reads an event's text
    (event,) = ass_events(render_ass([cue], SubtitleStyle(), 1280, 720))
    drawn = libass_reading(event["Text"])
    # Then no override block applies, no escape is taken, and only our line breaks remain
    assert drawn == "\n".join(" ".join(line.split()) for line in HOSTILE_LINES)
    assert "<override>" not in drawn


def test_control_characters_cannot_start_an_event_or_end_the_document():
    # Given lines with newlines, a carriage return, a NUL, C1 controls and separators
    injected = "Dialogue: 0,0:00:00.00,0:00:09.00,Default,,0,0,0,,{\\fs200}injected"
    cues = [Cue(0.0, 1.0, (f"one\n{injected}",)), Cue(1.0, 2.0, ("two\r\x00three\x85four\x9b\u2028five\tsix",))]
    # When rendered
    document = render_ass(cues, SubtitleStyle(), 1280, 720)
    # Then there is one event per cue, each on one line of plain text
    events = ass_events(document)
    assert len(events) == 2 and document.count("\nDialogue:") == 2
    assert libass_reading(events[0]["Text"]) == f"one {injected}"
    assert libass_reading(events[1]["Text"]) == "two three four five six"
    assert "\x00" not in document and "\r" not in document


def test_cues_without_text_are_left_out():
    events = ass_events(render_ass([Cue(0.0, 1.0, ("\x00", " ")), Cue(1.0, 2.0, ("kept",))], SubtitleStyle(), 640, 360))
    assert [event["Text"] for event in events] == ["kept"]


def test_ass_needs_a_picture_size():
    with pytest.raises(ValueError):
        render_ass([], SubtitleStyle(), 0, 720)
