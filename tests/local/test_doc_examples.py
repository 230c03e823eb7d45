"""docs/api.md runs: every curl example against a live local service, with its documented status asserted.

One service for the module. The jobs the examples name (``$JOB_ID``,
``$RUNNING_JOB_ID``, ...) are prepared first; then every example runs once, in
the document's order, with bash and the real curl, so an example may rely on an
earlier one (an Idempotency-Key replay) even when a single case is selected.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clipline.api.errors import HTTP_STATUS_BY_CODE, http_status_for
from clipline.api.routes import API_ROUTES
from clipline.domain import errors
from tests.doc_examples import examples_in, live_service, problems, requests_in

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
EXAMPLES = examples_in(API_DOC.read_text(encoding="utf-8"))
MIN_EXAMPLES = 30

# Routes the local gateway answers besides API_ROUTES; in AWS, S3 serves the artifacts.
GATEWAY_ROUTES = {
    ("GET", "/health"): re.compile(r"^/health$"),
    ("GET", "/metrics"): re.compile(r"^/metrics$"),
    ("GET", "/openapi.json"): re.compile(r"^/openapi\.json$"),
    ("GET", "/artifacts/{key}"): re.compile(r"^/artifacts/.+$"),
}


@pytest.fixture(scope="module")
def live(tmp_path_factory, media_dir):
    with live_service(tmp_path_factory.mktemp("doc-examples"), media_dir / "long.mp4", EXAMPLES) as running:
        yield running


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=[example.id for example in EXAMPLES])
def test_the_example_answers_as_documented(live, example):
    # Given the variables the example reads
    assert example.variables <= set(live.env), f"line {example.line}: no value for {example.variables - set(live.env)}"
    # When it ran against the live service
    outcome = live.outcomes[example.id]
    # Then the last response has the documented status, headers and error code
    assert not problems(example, outcome), f"line {example.line}: {problems(example, outcome)}\n{outcome.script}"


@pytest.mark.slow
def test_an_idempotent_replay_names_the_first_job(live):
    # Given the Idempotency section's accepted requests, all sent with one key
    accepted = [e for e in EXAMPLES if e.heading == "Idempotency" and e.documented.status == 202]
    assert len(accepted) >= 2
    # Then the replay answered with the job the first request created
    locations = {live.outcomes[example.id].response.headers.get("location") for example in accepted}
    assert len(locations) == 1 and None not in locations, locations


def test_the_document_has_its_examples():
    ids = [example.id for example in EXAMPLES]
    assert len(ids) >= MIN_EXAMPLES
    assert len(set(ids)) == len(ids)


@pytest.mark.slow
def test_every_route_has_an_example(live):
    # Given every route the API and the local gateway answer
    patterns = {
        **{(route.method, route.resource): _resource_pattern(route.resource) for route in API_ROUTES},
        **GATEWAY_ROUTES,
    }
    # When the examples' requests are matched to them
    shown = set()
    for example in EXAMPLES:
        for method, url in requests_in(example.script, live.env):
            path = re.sub(r"^https?://[^/]+", "", url).split("?", 1)[0]
            shown |= {route for route, pattern in patterns.items() if route[0] == method and pattern.match(path)}
    # Then each has at least one
    assert set(patterns) - shown == set()


def _resource_pattern(resource: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(resource)) + "$")


def _error_table() -> dict[str, str]:
    """code -> its HTTP cell, from the table under '## Errors'."""
    section = API_DOC.read_text(encoding="utf-8").split("\n## Errors", 1)[1].split("\n## ", 1)[0]
    table: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not line.startswith("|"):
            continue
        for code in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
            table[code] = cells[1]
    return table


def test_every_error_code_is_in_the_table_with_its_status():
    table = _error_table()
    # Every code a clipline error carries has a row
    assert errors.all_error_codes() - set(table) == set()
    for code, cell in table.items():
        assert code in errors.all_error_codes(), f"{code} is not a clipline error code"
        statuses = [int(status) for status in re.findall(r"\b\d{3}\b", cell)]
        words = set(re.findall(r"[a-z]+", cell))
        assert statuses or words & {"job", "internal"}, f"{code}: {cell!r} names no status"
        # A status the table gives is the one the API answers with
        assert all(status == http_status_for(code) for status in statuses), f"{code}: {cell!r}"
        # Codes the API never returns are not given a status of their own
        if "internal" in words:
            assert code not in HTTP_STATUS_BY_CODE, code
