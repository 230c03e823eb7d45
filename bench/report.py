"""Run every benchmark, print one Markdown table, and write it with the machine into docs/performance.md.

Each benchmark runs as its own process (its output is shown as it goes) and hands
back its summary rows through --summary-json. ASR runs when a whisper model can be
loaded offline (CLIPLINE_WHISPER_MODEL, else the converted base model kept beside the
repository); otherwise its row says it was skipped.

    python bench/report.py                 # every benchmark, rewrites the results section
    python bench/report.py --soak          # the load benchmark with --jobs 1000, rewrites the soak section
    python bench/report.py --only load cut --no-write
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_ROOT, Row, markdown_table, offline_whisper_model, read_summary  # noqa: E402

BENCHMARKS = {
    "range_reads": "range reads",
    "cut": "frame-accurate cut",
    "overhead": "service overhead",
    "asr": "ASR",
    "load": "load",
    "sweep": "cleanup sweep",
    "aws_host": "AWS host (simulated)",
    "webhooks": "webhooks",
    "job_management": "job management",
    "console": "web console",
}
DOC = REPO_ROOT / "docs" / "performance.md"
RESULTS_MARKERS = ("<!-- bench:results:begin -->", "<!-- bench:results:end -->")
SOAK_JOBS = 1000
SOAK_MARKERS = ("<!-- bench:soak:begin -->", "<!-- bench:soak:end -->")


def machine() -> dict[str, str]:
    """CPU model and count, RAM, Python and ffmpeg versions: what the figures depend on."""
    from clipline.media.ffmpeg_binary import find_ffmpeg

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or "unknown")  # fmt: skip
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    total_kib = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:")), 0)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    version = subprocess.run([find_ffmpeg(None), "-version"], capture_output=True, text=True).stdout.split("\n", 1)[0]
    return {
        "CPU": f"{model}, {os.cpu_count()} logical CPUs ({usable} usable)",
        "RAM": f"{total_kib / 1024 / 1024:.1f} GiB" if total_kib else "unknown",
        "OS": f"{platform.system()} {platform.machine()}",
        "Python": platform.python_version(),
        "ffmpeg": " ".join(version.split()[:3]) if version else "unknown",
    }


def run_benchmark(name: str, extra_arguments: list[str], scratch: Path) -> tuple[list[Row], float]:
    """The benchmark's summary rows (a failure row when it fails) and its wall time."""
    summary = scratch / f"{name}.json"
    print(f"\n=== bench/{name}.py {' '.join(extra_arguments)}", flush=True)
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / f"{name}.py"), "--summary-json", str(summary), *extra_arguments],
        cwd=REPO_ROOT,
    )
    seconds = time.perf_counter() - started
    rows = read_summary(summary) if summary.exists() else []
    if run.returncode != 0 and not rows:
        rows = [Row(BENCHMARKS[name], f"failed (exit {run.returncode})", notes="see its output")]
    elif run.returncode != 0:
        rows[0].notes = f"exit {run.returncode}; " + rows[0].notes
    return rows, seconds


def results_section(rows: list[Row], host: dict[str, str], durations: dict[str, float]) -> str:
    lines = [
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} by `make bench`.",
        "",
        *(f"- {name}: {value}" for name, value in host.items()),
        "- wall time per benchmark: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in durations.items()),
        "",
        markdown_table(rows),
    ]
    return "\n".join(lines)


def soak_section(row: Row, checks: str, host: dict[str, str], seconds: float) -> str:
    extra = row.extra
    bench_args = "--soak" if extra["jobs"] == SOAK_JOBS else f'"--soak --jobs {extra["jobs"]}"'
    lines = [
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} by `make bench BENCH_ARGS={bench_args}` "
        f"({extra['jobs']} jobs, {seconds / 60:.0f} min) on the machine above ({host['CPU']}).",
        "",
        "| tenth | jobs ended | server RSS (MiB) | server CPU in the tenth (s) | jobs/min in the tenth |",
        "| --- | --- | --- | --- | --- |",
    ]
    for tenth, sample in enumerate(extra["series"], 1):
        cpu = f"{sample['cpu_in_tenth']:.1f}" if sample.get("cpu_in_tenth") is not None else "-"
        lines.append(f"| {tenth} | {sample['jobs']} | {sample['rss_mib']:.1f} | {cpu} | {sample['jobs_per_minute']:.0f} |")
    series = extra["series"]
    verdict = "flat" if extra["flat"] else f"grows about {extra['per_100_jobs_mib']:.1f} MiB per 100 jobs"
    if extra.get("second_half_kib_per_job") is not None:
        verdict += f"; over the second half {extra['second_half_kib_per_job']:+.2f} KiB a job"
    lines += [
        "",
        f"RSS from the first tenth to the last: {series[-1]['rss_mib'] - series[0]['rss_mib']:+.1f} MiB "
        f"({extra['growth'] * 100:+.1f} %), {verdict}; peak {extra['peak_mib']:.0f} MiB. "
        f"Throughput over the whole run {extra['jobs_per_minute']:.0f} jobs/min. Checks: {checks}.",
        "",
    ]
    return "\n".join(lines)


def earlier_results(text: str) -> tuple[list[Row], dict[str, float]]:
    """The rows and wall times the results section holds now, so that --only can keep the others."""
    rows, durations = [], {}
    begin, end = text.find(RESULTS_MARKERS[0]), text.find(RESULTS_MARKERS[1])
    for line in text[begin:end].splitlines() if begin >= 0 else []:
        if line.startswith("- wall time per benchmark: "):
            for item in line.split(": ", 1)[1].split(", "):
                name, _, seconds = item.rpartition(" ")[0].rpartition(" ")
                durations[name] = float(seconds)
        elif line.startswith("| ") and not line.startswith(("| benchmark |", "| --- |")):
            # Split at unescaped pipes, so an empty cell ("| |") counts as one.
            cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if len(cells) == 5:
                rows.append(Row(*cells))
    return rows, durations


def merged(earlier: list[Row], fresh: list[Row], names: list[str]) -> list[Row]:
    """The fresh rows in place of the earlier ones of the benchmarks run now, in the usual order."""
    titles = [BENCHMARKS[name] for name in names]
    kept = [row for row in earlier if not row.benchmark.startswith(tuple(titles))]
    order = list(BENCHMARKS.values())
    return sorted(kept + fresh, key=lambda row: next(
        (index for index, title in enumerate(order) if row.benchmark.startswith(title)), len(order)
    ))  # fmt: skip


def rewrite(path: Path, markers: tuple[str, str], section: str) -> None:
    from clipline.generated_docs import replace_between

    text = path.read_bytes().decode("utf-8")
    path.write_bytes(replace_between(text, *markers, "\n" + section + "\n").encode("utf-8"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS),
                        help="run these benchmarks only; the table keeps the other rows it has")  # fmt: skip
    parser.add_argument("--jobs", type=int, help="jobs for the load benchmark (its default: 100)")
    parser.add_argument("--soak", action="store_true", help=f"run only the load benchmark, with --jobs {SOAK_JOBS} unless given, "
                        "and rewrite the soak section")  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help=f"print the table, leave {DOC.name} alone")
    parser.add_argument("--doc", type=Path, default=DOC, help="the Markdown file holding the markers")
    args = parser.parse_args()

    names = ["load"] if args.soak else (args.only or list(BENCHMARKS))
    model = offline_whisper_model()
    rows: list[Row] = []
    durations: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-report-") as scratch:
        for name in names:
            arguments = []
            if name == "load" and (args.jobs or args.soak):
                arguments = ["--jobs", str(args.jobs or SOAK_JOBS)]
            if name == "asr":
                if model is None:
                    rows.append(Row("ASR", "skipped: no model", notes="set CLIPLINE_WHISPER_MODEL to a CTranslate2 model folder"))
                    continue
                arguments = ["--model", model]
            found, durations[name] = run_benchmark(name, arguments, Path(scratch))
            rows += found

    host = machine()
    table = markdown_table(rows)
    print("\n" + "\n".join(f"{name}: {value}" for name, value in host.items()))
    print("\n" + table)
    if not args.no_write:
        if args.soak:
            memory = next((row for row in rows if row.benchmark == "load: server memory"), None)
            throughput = next((row for row in rows if row.benchmark == "load: throughput"), None)
            if memory is None or throughput is None:
                print("the load benchmark gave no memory series; the soak section is left as it was", file=sys.stderr)
                return 1
            rewrite(args.doc, SOAK_MARKERS, soak_section(memory, throughput.notes, host, durations["load"]))
        else:
            if args.only:
                earlier_rows, earlier_durations = earlier_results(args.doc.read_text())
                rows, durations = merged(earlier_rows, rows, names), {**earlier_durations, **durations}
                durations = {name: durations[name] for name in BENCHMARKS if name in durations}
            rewrite(args.doc, RESULTS_MARKERS, results_section(rows, host, durations))
        print(f"wrote {args.doc.relative_to(REPO_ROOT) if args.doc.is_relative_to(REPO_ROOT) else args.doc}")
    return 1 if any(row.figure.startswith("failed") or row.notes.startswith(("exit", "FAILED")) for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
