"""The openssl line docs/api.md gives for checking a webhook signature by hand computes the signature clipline sends."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from clipline.domain.use_cases.webhooks import signed_headers
from clipline.domain.webhooks import new_secret

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _openssl_line() -> str:
    blocks = re.findall(r"```sh\n(.*?)```", API_DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    (line,) = [block.strip() for block in blocks if "openssl dgst" in block]
    return line


def test_the_documented_openssl_line_prints_the_signature_after_v1(tmp_path):
    # Given an event as clipline signs it, with a body holding what a shell could mangle
    secret = new_secret()
    body = b'{"data":{"id":"0b3c","note":"a \\"quoted\\" $HOME and 100%"},"type":"job.succeeded"}'
    headers = signed_headers(secret, "msg_2f1e", 1764882311, body)
    (tmp_path / "body.json").write_bytes(body)
    # When the documented line runs with the headers and the secret in the variables it names
    env = {"PATH": os.environ["PATH"], "WEBHOOK_ID": "msg_2f1e", "WEBHOOK_TIMESTAMP": "1764882311", "SECRET": secret}
    printed = subprocess.run(
        ["bash", "-c", _openssl_line()], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30, check=True
    ).stdout.strip()
    # Then it printed the part of webhook-signature after "v1,"
    assert headers["webhook-signature"] == f"v1,{printed}"
