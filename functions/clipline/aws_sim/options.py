"""The command-line options of ``clipline serve --aws-sim``; light to import, like the rest of the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path


def _setting(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (a clipline.settings field), got {text!r}")
    return name.strip(), value


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--stage", default="dev", help="the cdk.json stage to deploy (default: dev)")
    group.add_argument(
        "--endpoint-port", type=int, default=0, help="port of the simulated AWS services (default: a free one)"
    )
    group.add_argument(
        "--console-port", type=int, default=0, help="port of the console's simulated CloudFront site (default: a free one)"
    )
    group.add_argument(
        "--app-dir", type=Path, default=Path("."), help="the folder holding cdk.json (default: the current one)"
    )
    group.add_argument("--assembly", type=Path, help="deploy this cloud assembly (cdk.out) instead of synthesizing")
    group.add_argument(
        "--setting",
        type=_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a runtime setting for every function, as a stage's `settings` in cdk.json (repeatable)",
    )
    group.add_argument("--work-dir", type=Path, help="where the functions' code, sandboxes and logs go")
    group.add_argument(
        "--ttl-interval", type=float, default=5.0, help="seconds between the simulated DynamoDB TTL's sweeps"
    )
    group.add_argument(
        "--transcribe-model",
        help="faster-whisper model (a name, or a CTranslate2 folder) the simulated Amazon Transcribe transcribes with",
    )
    group.add_argument(
        "--ttl-delay",
        type=float,
        default=0.0,
        help="seconds an item outlives its expiry before TTL deletes it (AWS: up to a few days)",
    )
