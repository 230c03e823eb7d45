"""The benchmarks' pure helpers: percentiles, growth and the report table. No benchmark runs here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "_common.py"
_spec = importlib.util.spec_from_file_location("bench_common", _PATH)
bench = importlib.util.module_from_spec(_spec)
# dataclasses look their module up by name.
sys.modules.setdefault("bench_common", bench)
_spec.loader.exec_module(bench)


def test_percentile_interpolates_between_ranks():
    # Given ten evenly spaced values
    values = [float(value) for value in range(10, 0, -1)]
    # Then the median falls between the middle two, and the ends are the extremes
    assert bench.percentile(values, 0.5) == pytest.approx(5.5)
    assert bench.percentile(values, 0.0) == 1.0
    assert bench.percentile(values, 1.0) == 10.0
    assert bench.percentile(values, 0.99) == pytest.approx(9.91)


def test_percentile_refuses_no_values_and_fractions_outside_0_1():
    with pytest.raises(ValueError):
        bench.percentile([], 0.5)
    with pytest.raises(ValueError):
        bench.percentile([1.0], 1.5)


def test_growth_is_relative_to_the_first_value():
    assert bench.growth([200.0, 210.0, 220.0]) == pytest.approx(0.10)
    with pytest.raises(ValueError):
        bench.growth([1.0])


def test_markdown_table_has_one_row_per_figure_and_keeps_pipes_inside_cells():
    # Given a row whose notes hold a pipe and a line break
    rows = [bench.Row("load", "120 jobs/min", "one at a time: 60 jobs/min", "2.00", "a | b\nc")]
    # When it is rendered
    lines = bench.markdown_table(rows).splitlines()
    # Then the header, the rule and the row each have the five cells
    assert lines[0] == "| benchmark | figure | baseline | ratio | notes |"
    assert lines[2] == "| load | 120 jobs/min | one at a time: 60 jobs/min | 2.00 | a \\| b c |"
    assert len(lines) == 3


def test_summary_round_trips(tmp_path: Path):
    rows = [bench.Row("cut", "1.0 s", "2.0 s", "0.50", extra={"series": [1, 2]})]
    bench.write_summary(tmp_path / "summary.json", rows)
    assert bench.read_summary(tmp_path / "summary.json") == rows
