"""Sections of the docs that code writes: between two marker lines, rewritten on demand and checked fresh by tests.

Each generator (the settings reference, the metric table, the state diagram)
supplies its markers and a function that renders the section; this module
finds the section and gives each one the same command line:
``python -m <module> FILE`` rewrites it, ``--check`` exits 1 when it is stale.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


class MarkerError(ValueError):
    """The file does not have exactly one begin marker line followed by one end marker line."""


def replace_between(text: str, begin: str, end: str, section: str) -> str:
    """``text`` with the lines between the marker lines replaced by ``section``; everything else kept byte for byte.

    A marker counts only as a whole line, so prose that quotes one is left alone.

    Raises:
        MarkerError: not exactly one begin line followed by one end line.
    """
    lines = text.splitlines(keepends=True)
    begins = [number for number, line in enumerate(lines) if line.strip() == begin]
    ends = [number for number, line in enumerate(lines) if line.strip() == end]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise MarkerError(
            f"expected one line {begin} followed by one line {end}; found {len(begins)} and {len(ends)}"
        )
    return "".join(lines[: begins[0] + 1]) + section + "".join(lines[ends[0] :])


def regenerate(
    argv: Sequence[str] | None, *, prog: str, what: str, fresh: Callable[[str], str]
) -> int:
    """The command line of a generated section: rewrite FILE with ``fresh(text)``, or with --check report staleness.

    Returns 0 when the file is (now) fresh, 1 when --check finds it stale, 2 when its markers are wrong.
    """
    parser = argparse.ArgumentParser(prog=prog, description=f"Write {what} into a Markdown file.")
    parser.add_argument("file", type=Path, help="the Markdown file holding the markers")
    parser.add_argument("--check", action="store_true", help=f"change nothing; exit 1 if {what} is stale")
    args = parser.parse_args(argv)
    try:
        # Bytes, not text mode: newline translation would rewrite CRLF outside the section.
        text = args.file.read_bytes().decode("utf-8")
        updated = fresh(text)
    except (OSError, UnicodeDecodeError, MarkerError) as error:
        print(f"{args.file}: {error}", file=sys.stderr)
        return 2
    if args.check:
        if updated != text:
            print(f"{args.file}: {what} is stale; regenerate it with `{prog} {args.file}`", file=sys.stderr)
            return 1
        return 0
    if updated != text:
        args.file.write_bytes(updated.encode("utf-8"))
    return 0
