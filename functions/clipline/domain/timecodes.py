"""Time positions as users write them: seconds (``70.5``) or ``[HH:]MM:SS[.mmm]``."""

from __future__ import annotations

import math
import re

from .errors import InvalidTimecodeError, InvalidTimeRangeError

_TIMECODE = re.compile(r"^(?:(?P<h>\d+):)?(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d{1,6})?)$")
_DECIMAL = re.compile(r"^\d+(?:\.\d+)?$")


def parse_position(value: object, field: str) -> float:
    """Seconds from a number or a timecode string.

    Raises:
        InvalidTimeRangeError: the position is negative.
        InvalidTimecodeError: it is neither a finite number nor ``[HH:]MM:SS[.mmm]``.
    """
    if isinstance(value, bool):
        raise InvalidTimecodeError(f"{field} must be seconds or HH:MM:SS.mmm, not a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise InvalidTimecodeError(f"{field} must be a finite number of seconds")
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("-"):
            raise InvalidTimeRangeError(f"{field} must not be negative")
        if _DECIMAL.match(text):
            seconds = float(text)
        else:
            match = _TIMECODE.match(text)
            if not match:
                raise InvalidTimecodeError(f"{field} {value!r} is not seconds or HH:MM:SS.mmm")
            minutes, secs = int(match["m"]), float(match["s"])
            if minutes >= 60 or secs >= 60:
                raise InvalidTimecodeError(f"{field} {value!r} has minutes or seconds of 60 or more")
            seconds = int(match["h"] or 0) * 3600 + minutes * 60 + secs
    else:
        raise InvalidTimecodeError(f"{field} must be seconds or HH:MM:SS.mmm")
    if seconds < 0:
        raise InvalidTimeRangeError(f"{field} must not be negative")
    return round(seconds, 6)


def format_timecode(seconds: float) -> str:
    """``HH:MM:SS.mmm`` for a position in seconds."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"
