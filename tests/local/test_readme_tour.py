"""The README's five-minute tour runs: each curl example against a live local service, as in docs/api.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doc_examples import examples_in, live_service, problems

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLES = examples_in(README.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def live(tmp_path_factory, media_dir):
    with live_service(tmp_path_factory.mktemp("readme-tour"), media_dir / "long.mp4", EXAMPLES) as running:
        yield running


def test_the_tour_shows_each_step_a_newcomer_takes():
    requests = " ".join(example.script for example in EXAMPLES)
    for step in ("-X POST http://127.0.0.1:8080/api/jobs", "/api/jobs/$JOB_ID", "/api/jobs/$JOB_ID/result",
                 '"$CLIP_URL"', "/api/uploads", '"$UPLOAD_URL"', "/openapi.json", "/metrics"):  # fmt: skip
        assert step in requests, step


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=[example.id for example in EXAMPLES])
def test_the_tour_example_answers_as_shown(live, example):
    assert example.variables <= set(live.env), f"line {example.line}: no value for {example.variables - set(live.env)}"
    outcome = live.outcomes[example.id]
    assert not problems(example, outcome), f"line {example.line}: {problems(example, outcome)}\n{outcome.script}"
