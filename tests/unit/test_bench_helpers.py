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


def _report_module():
    path = Path(__file__).resolve().parents[2] / "bench" / "report.py"
    spec = importlib.util.spec_from_file_location("bench_report", path)
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    return report


@pytest.mark.parametrize(("jobs", "command"), [(1000, "BENCH_ARGS=--soak`"), (5000, 'BENCH_ARGS="--soak --jobs 5000"`')])
def test_the_soak_section_names_the_command_that_reproduces_it(jobs, command):
    report = _report_module()
    # Given a soak's memory row, sampled at each tenth
    series = [{"jobs": jobs // 10 * tenth, "rss_mib": 250.0 + tenth, "cpu_in_tenth": 5.0, "jobs_per_minute": 240.0}
              for tenth in range(1, 11)]  # fmt: skip
    row = report.Row("load: server memory", "peak RSS 261 MiB", extra={
        "jobs": jobs, "series": series, "growth": 0.036, "flat": True, "per_100_jobs_mib": 0.1, "second_half_kib_per_job": 0.5,
        "peak_mib": 261.0, "jobs_per_minute": 240.0,
    })  # fmt: skip
    # When its section is written
    section = report.soak_section(row, "all succeeded", {"CPU": "2 cores"}, seconds=600)
    # Then it names the command with the job count it ran, and the figures in a table of tenths
    assert command in section.splitlines()[0] and f"({jobs} jobs, 10 min)" in section
    assert section.count("\n| ") == 2 + 10 and "+9.0 MiB (+3.6 %), flat; over the second half +0.50 KiB a job; peak 261 MiB" in section


def test_second_half_growth_tells_a_warm_up_from_a_leak():
    jobs = [100 * tenth for tenth in range(1, 11)]
    # A server whose memory rises 8 MiB over its first half, then holds
    warming_up = [250.0, 254.0, 256.0, 258.0, 258.0, 258.0, 257.5, 258.0, 258.0, 258.0]
    assert bench.second_half_kib_per_job(jobs, warming_up) == pytest.approx(0.0)
    # One that keeps about 20 KiB of every job
    leaking = [250.0 + 0.02 * job for job in jobs]
    assert bench.second_half_kib_per_job(jobs, leaking) == pytest.approx(20.48)
    # Too few samples, or no job ended over the second half
    with pytest.raises(ValueError):
        bench.second_half_kib_per_job(jobs[:3], leaking[:3])
    with pytest.raises(ValueError):
        bench.second_half_kib_per_job([1] * 10, leaking)
