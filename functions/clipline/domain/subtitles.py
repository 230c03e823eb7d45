"""Subtitles from a transcript: cue segmentation, the SRT, WebVTT, plain text and JSON renderings,
and the ASS document that burn-in draws.

The cue rules follow common captioning practice (the Netflix and BBC guidelines):
at most two lines of at most 42 characters, at most 7 seconds on screen, breaks at
sentence ends, then at clause punctuation, never inside a word, and two lines of
similar length.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

import srt
import webvtt

from .jobs import STYLE_REFERENCE_HEIGHT, SubtitlePosition, SubtitleStyle
from .transcripts import Segment, Transcript

# Netflix's minimum cue duration: 20 frames at 24 fps.
DEFAULT_MIN_CUE_SECONDS = 5 / 6

# Providers report zero-length words (Whisper does for short ones); a word still takes some time to say.
_MIN_WORD_SECONDS = 0.01

# Closing quotes and brackets may follow the punctuation mark: `"Stop!"` still ends a sentence.
_SENTENCE_END = re.compile(r"[.?!…。？！][\"'”’»)\]]*$")
_CLAUSE_END = re.compile(r"[,;:—–，；：、][\"'”’»)\]]*$")


@dataclass(frozen=True)
class Cue:
    """One subtitle on screen: when it shows and hides (seconds) and its lines."""

    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class _Token:
    """A word to place in a cue, with whether a pause precedes it."""

    text: str
    start: float
    end: float
    pause_before: bool


@dataclass(frozen=True)
class _Draft:
    """A cue before its times are made consistent with its neighbours."""

    start: float
    end: float
    lines: tuple[str, ...]


def build_cues(
    transcript: Transcript,
    *,
    max_line_chars: int = 42,
    max_lines: int = 2,
    max_cue_seconds: float = 7.0,
    pause_seconds: float = 0.5,
    min_cue_seconds: float = DEFAULT_MIN_CUE_SECONDS,
) -> tuple[Cue, ...]:
    """Split a transcript into subtitle cues.

    A cue holds as many words as fit in ``max_lines`` lines of ``max_line_chars``
    characters and ``max_cue_seconds``. A pause of ``pause_seconds`` or more between
    two words always starts a new cue. When the words run over a cue, it ends at the
    last sentence end that fits, else at the last clause punctuation that keeps it at
    least half full, else after the last word that fits. A word longer than a line
    gets a line of its own. Segments without word timings are spread over their
    segment's time in proportion to their characters.

    Cues are in order and never overlap. A cue shows from its first word's start to
    its last word's end, at least ``min_cue_seconds`` when the next cue leaves room,
    at most ``max_cue_seconds``. Times are whole milliseconds, within
    ``[0, transcript.duration_seconds]`` when the duration is known (non-zero); a cue
    that would start at or after the end of the audio is left out, as no player
    could show it.

    Raises:
        ValueError: a limit is not positive, or ``min_cue_seconds`` is negative or
            above ``max_cue_seconds``.
    """
    _check_limits(max_line_chars, max_lines, max_cue_seconds, pause_seconds, min_cue_seconds)
    tokens = _tokens(transcript, pause_seconds)
    drafts = [
        _Draft(
            start=group[0].start,
            end=max(token.end for token in group),
            lines=_wrap([token.text for token in group], max_line_chars),
        )
        for group in _group(tokens, max_line_chars, max_lines, max_cue_seconds)
    ]
    return _timed_cues(drafts, min_cue_seconds, max_cue_seconds, transcript.duration_seconds)


def render_srt(cues: Sequence[Cue]) -> str:
    """SubRip text for the cues, numbered from 1; empty when there are none."""
    subtitles = [
        srt.Subtitle(index=index, start=_timedelta(cue.start), end=_timedelta(cue.end), content=cue.text)
        for index, cue in enumerate(cues, start=1)
    ]
    return srt.compose(subtitles, reindex=False)


def render_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT text for the cues; a bare ``WEBVTT`` header when there are none."""
    captions = [
        webvtt.Caption(
            start=_vtt_timestamp(cue.start),
            end=_vtt_timestamp(cue.end),
            # WebVTT reads "<" as the start of a tag and "&" as an entity; escaping ">" also keeps "-->" out.
            text=[html.escape(line, quote=False) for line in cue.lines],
        )
        for cue in cues
    ]
    return webvtt.WebVTT(captions=captions).content


def render_text(transcript: Transcript) -> str:
    """The transcript as plain text, one segment per line; empty when nothing was said."""
    lines = [text for segment in transcript.segments if (text := _normalise(segment.text))]
    return "".join(f"{line}\n" for line in lines)


def render_json(transcript: Transcript) -> str:
    """The transcript as camelCase JSON with its full text and word timings."""
    fields = transcript.model_dump(mode="json", by_alias=True)
    segments = fields.pop("segments")
    document = {**fields, "text": _normalise(transcript.text), "segments": segments}
    return json.dumps(document, indent=2, ensure_ascii=False)


def parse_srt(text: str) -> tuple[Cue, ...]:
    """Cues from SubRip text, in file order; cues without text are skipped.

    Raises:
        ValueError: the text is not SubRip, or a cue ends before it starts.
    """
    try:
        subtitles = list(srt.parse(text))
    except (srt.SRTParseError, srt.TimestampParseError) as error:
        raise ValueError(f"Not valid SRT: {error}") from error
    cues = []
    for subtitle in subtitles:
        if subtitle.end < subtitle.start:
            raise ValueError(f"Not valid SRT: cue {subtitle.index} ends before it starts")
        lines = tuple(line for raw in subtitle.content.splitlines() if (line := _normalise(raw)))
        if lines:
            cues.append(Cue(subtitle.start.total_seconds(), subtitle.end.total_seconds(), lines))
    return tuple(cues)


def _check_limits(
    max_line_chars: int, max_lines: int, max_cue_seconds: float, pause_seconds: float, min_cue_seconds: float
) -> None:
    if max_line_chars < 1 or max_lines < 1:
        raise ValueError("max_line_chars and max_lines must be at least 1")
    if not max_cue_seconds > 0 or not pause_seconds > 0:
        raise ValueError("max_cue_seconds and pause_seconds must be positive")
    if not 0 <= min_cue_seconds <= max_cue_seconds:
        raise ValueError("min_cue_seconds must be between 0 and max_cue_seconds")


def _normalise(text: str) -> str:
    return " ".join(text.split())


# --- words ---------------------------------------------------------------------------------------


def _tokens(transcript: Transcript, pause_seconds: float) -> list[_Token]:
    tokens: list[_Token] = []
    previous_end: float | None = None
    for segment in transcript.segments:
        for text, start, end in _timed_words(segment):
            pause = previous_end is not None and start - previous_end >= pause_seconds
            tokens.append(_Token(text, start, end, pause))
            previous_end = end
    return tokens


def _timed_words(segment: Segment) -> Iterator[tuple[str, float, float]]:
    if not segment.words:
        yield from _spread_over_segment(segment)
        return
    for word in segment.words:
        if text := _normalise(word.text):
            yield text, word.start, max(word.end, word.start + _MIN_WORD_SECONDS)


def _spread_over_segment(segment: Segment) -> Iterator[tuple[str, float, float]]:
    # Without word timings, assume a steady speaking rate; characters follow speaking time
    # more closely than word counts do. Each word owns the space after it, so the words are
    # contiguous and no pause is invented inside the segment.
    words = _normalise(segment.text).split()
    total_chars = sum(len(word) + 1 for word in words)
    span = max(segment.end - segment.start, 0.0)
    offset = 0
    for word in words:
        start = segment.start + span * offset / total_chars
        offset += len(word) + 1
        end = segment.start + span * offset / total_chars
        yield word, start, max(end, start + _MIN_WORD_SECONDS)


# --- grouping words into cues ----------------------------------------------------------------------


def _group(tokens: list[_Token], max_line_chars: int, max_lines: int, max_cue_seconds: float) -> Iterator[list[_Token]]:
    first = 0
    while first < len(tokens):
        stop = _window_end(tokens, first, max_line_chars, max_lines, max_cue_seconds)
        overflows = stop < len(tokens) and not tokens[stop].pause_before
        cut = _best_break(tokens, first, stop) if overflows else stop
        yield tokens[first:cut]
        first = cut


def _window_end(tokens: list[_Token], first: int, max_line_chars: int, max_lines: int, max_cue_seconds: float) -> int:
    """Index after the longest run of words from ``first`` that fits in one cue (at least one word)."""
    stop = first + 1
    while stop < len(tokens):
        candidate = tokens[stop]
        if candidate.pause_before or candidate.end - tokens[first].start > max_cue_seconds:
            break
        if _line_count([token.text for token in tokens[first : stop + 1]], max_line_chars) > max_lines:
            break
        stop += 1
    return stop


def _best_break(tokens: list[_Token], first: int, stop: int) -> int:
    """Where to end a cue whose words run past ``stop``: the index after its last word."""
    cuts = range(stop, first, -1)
    for cut in cuts:
        if _SENTENCE_END.search(tokens[cut - 1].text):
            return cut
    # A comma right after the first word or two would leave a cue nearly empty, which reads worse
    # than a break between two words.
    full_width = _width([token.text for token in tokens[first:stop]])
    for cut in cuts:
        if _CLAUSE_END.search(tokens[cut - 1].text) and 2 * _width([t.text for t in tokens[first:cut]]) >= full_width:
            return cut
    return stop


# --- lines ---------------------------------------------------------------------------------------


def _width(words: Sequence[str]) -> int:
    return sum(len(word) for word in words) + len(words) - 1


def _line_count(words: Sequence[str], max_line_chars: int) -> int:
    """Fewest lines of at most ``max_line_chars`` that hold the words, an over-long word taking a line alone."""
    lines, width = 0, 0
    for word in words:
        if width and width + 1 + len(word) <= max_line_chars:
            width += 1 + len(word)
        else:
            lines, width = lines + 1, len(word)
    return lines


def _wrap(words: Sequence[str], max_line_chars: int) -> tuple[str, ...]:
    """The words in as few lines as fit, split where the lines are most even, preferring punctuation."""
    line_count = _line_count(words, max_line_chars)
    all_cuts = itertools.combinations(range(1, len(words)), line_count - 1)
    cuts = min(all_cuts, key=lambda cuts: _layout_cost(words, cuts, max_line_chars))
    bounds = (0, *cuts, len(words))
    return tuple(" ".join(words[a:b]) for a, b in itertools.pairwise(bounds))


def _layout_cost(words: Sequence[str], cuts: tuple[int, ...], max_line_chars: int) -> float:
    # For a fixed amount of text, the sum of squared line widths is lowest when the lines are even.
    # A break after punctuation earns a bonus worth a few characters of imbalance.
    bounds = (0, *cuts, len(words))
    cost = 0.0
    for a, b in itertools.pairwise(bounds):
        width = _width(words[a:b])
        if width > max_line_chars and b - a > 1:
            return math.inf
        cost += width**2
    for cut in cuts:
        if _SENTENCE_END.search(words[cut - 1]):
            cost -= (0.35 * max_line_chars) ** 2
        elif _CLAUSE_END.search(words[cut - 1]):
            cost -= (0.25 * max_line_chars) ** 2
    return cost


# --- times ---------------------------------------------------------------------------------------


def _timed_cues(
    drafts: list[_Draft], min_cue_seconds: float, max_cue_seconds: float, duration_seconds: float
) -> tuple[Cue, ...]:
    # Whole milliseconds, the precision of SRT and WebVTT, so cues round-trip through both exactly.
    min_ms, max_ms = _ms(min_cue_seconds), _ms(max_cue_seconds)
    limit = _ms(duration_seconds) if duration_seconds > 0 else None
    cues: list[Cue] = []
    previous_end = 0
    for index, draft in enumerate(drafts):
        start = max(_ms(draft.start), previous_end)
        # A short cue stays up long enough to be read, but never into the next one.
        end = max(_ms(draft.end), start + min_ms)
        if index + 1 < len(drafts):
            end = min(end, _ms(drafts[index + 1].start))
        end = min(end, start + max_ms)
        if limit is not None:
            end = min(end, limit)
        # Words starting together can land in two cues; the later cue then starts a moment later.
        end = max(end, start + 1)
        if limit is not None and end > limit:
            continue
        cues.append(Cue(start / 1000, end / 1000, draft.lines))
        previous_end = end
    return tuple(cues)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _timedelta(seconds: float) -> timedelta:
    return timedelta(milliseconds=_ms(seconds))


def _vtt_timestamp(seconds: float) -> str:
    hours, rest = divmod(_ms(seconds), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


# --- burn-in (ASS for libass) ----------------------------------------------------------------------

# The family name inside the bundled font files (Source Sans Pro, SIL OFL 1.1); burn-in
# draws with the fonts directory that carries them and no other fonts.
SUBTITLE_FONT_FAMILY = "Source Sans Pro"

# Side margins as a share of the width, on any aspect ratio: text stays inside the
# title-safe area (the middle 90 % of the picture).
_SIDE_MARGIN_SHARE = 0.05

_ALIGNMENT = {SubtitlePosition.BOTTOM: 2, SubtitlePosition.TOP: 8}

# An ASS event is one line of the file and libass reads the file as C strings, so a
# newline would start a new event and a NUL would end the document. Every C0 and C1
# control becomes a space.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# libass reads "{" as the start of an override block when a "}" follows it ({\pos(0,0)},
# {\fs200}) and a backslash and the next character as an escape (\N, \n, \h, \{, \}).
# - A brace becomes libass's "\{", which it draws as the brace alone (ass_get_next_char;
#   a libass extension, VSFilter would draw the backslash too, but only libass draws
#   ours). With no bare "{" left, no block can open, so "}" needs nothing.
# - ASS has no escape for the backslash itself. A WORD JOINER (U+2060) after each one
#   keeps it from pairing with the next character. It is default-ignorable, so HarfBuzz
#   draws nothing for it (no missing-glyph box even without a font that has it), and
#   unlike a zero-width space it allows no line break.
_WORD_JOINER = "\u2060"
_LITERAL_TEXT = str.maketrans({"\\": "\\" + _WORD_JOINER, "{": "\\{"})

_ASS_HEADER = """\
[Script Info]
ScriptType: v4.00+
PlayResX: {width}
PlayResY: {height}
WrapStyle: 0
ScaledBorderAndShadow: yes
YCbCr Matrix: None

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, \
Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, \
Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,{font},{font_size},{primary},{primary},{outline},{outline},\
0,0,0,0,100,100,0,0,1,{outline_width},0,{alignment},{side_margin},{side_margin},{margin_vertical},1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""


def render_ass(cues: Sequence[Cue], style: SubtitleStyle, width: int, height: int) -> str:
    """An ASS (Advanced SubStation Alpha) document drawing ``cues`` on a ``width`` x ``height`` picture.

    The script's coordinates are the picture's pixels. ``style`` sizes are pixels of a
    ``STYLE_REFERENCE_HEIGHT``-line frame, scaled by ``height``. Lines wider than the
    picture wrap (WrapStyle 0, balanced lines); a cue's own lines are kept. Cue text is
    drawn literally: override blocks, escapes and control characters in it do nothing.
    Times are in centiseconds, the precision of ASS.

    Raises:
        ValueError: ``width`` or ``height`` is not positive.
    """
    if width < 1 or height < 1:
        raise ValueError(f"the picture must have a positive size, not {width}x{height}")
    scale = height / STYLE_REFERENCE_HEIGHT
    header = _ASS_HEADER.format(
        width=width,
        height=height,
        font=SUBTITLE_FONT_FAMILY,
        font_size=_ass_number(style.font_size * scale),
        primary=_ass_colour(style.primary_colour),
        outline=_ass_colour(style.outline_colour),
        outline_width=_ass_number(style.outline_width * scale),
        alignment=_ALIGNMENT[style.position],
        side_margin=round(width * _SIDE_MARGIN_SHARE),
        margin_vertical=round(style.margin_vertical * scale),
    )
    events = [
        f"Dialogue: 0,{_ass_time(cue.start)},{_ass_time(cue.end)},Default,,0,0,0,,{text}\n"
        for cue in cues
        if (text := _ass_text(cue.lines))
    ]
    return header + "".join(events)


def _ass_text(lines: Sequence[str]) -> str:
    """The lines as the literal text of one ASS event, joined by hard line breaks."""
    literal = (_normalise(_CONTROL_CHARACTERS.sub(" ", line)).translate(_LITERAL_TEXT) for line in lines)
    return "\\N".join(line for line in literal if line)


def _ass_colour(hex_rgb: str) -> str:
    # ASS colours are &HAABBGGRR, alpha 00 being opaque.
    red, green, blue = hex_rgb[1:3], hex_rgb[3:5], hex_rgb[5:7]
    return f"&H00{blue}{green}{red}".upper()


def _ass_number(value: float) -> str:
    return f"{round(value, 2):g}"


def _ass_time(seconds: float) -> str:
    hours, rest = divmod(max(round(seconds * 100), 0), 360_000)
    minutes, rest = divmod(rest, 6000)
    secs, centis = divmod(rest, 100)
    return f"{hours}:{minutes:02d}:{secs:02d}.{centis:02d}"
