import pytest

from clipline.domain.errors import InvalidTimecodeError, InvalidTimeRangeError
from clipline.domain.timecodes import format_timecode, parse_position


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (70.5, 70.5),
        (0, 0.0),
        ("70.5", 70.5),
        ("00:01:00", 60.0),
        ("01:00.250", 60.25),
        ("1:02:03.004", 3723.004),
        ("100:00:00", 360000.0),
    ],
)
def test_accepts_seconds_and_timecodes(given, seconds):
    # Given a position as users write it / When parsed / Then it is seconds
    assert parse_position(given, "start") == pytest.approx(seconds)


@pytest.mark.parametrize("given", [-1, -0.5, "-00:00:01", "-3"])
def test_negative_positions_are_a_range_error(given):
    with pytest.raises(InvalidTimeRangeError, match="start must not be negative"):
        parse_position(given, "start")


@pytest.mark.parametrize("given", ["abc", "1:2:3:4", "00:61:00", "00:00:60", "", None, True, float("nan"), float("inf"), [1]])
def test_malformed_positions_are_a_timecode_error(given):
    with pytest.raises(InvalidTimecodeError):
        parse_position(given, "end")


def test_format_round_trips():
    assert format_timecode(3723.004) == "01:02:03.004"
    assert parse_position(format_timecode(61.25), "x") == 61.25
