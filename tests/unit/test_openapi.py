"""The OpenAPI document: generated from the resolver, committed fresh, and agreeing with the routes and models."""

import json
from pathlib import Path

import pytest
from jsonschema import Draft4Validator
from pydantic import ValidationError

from clipline.api.openapi import api_gateway_model, main, openapi_document, render
from clipline.api.routes import API_ROUTES
from clipline.api.schemas import CreateJobBody
from clipline.domain import errors

COMMITTED = Path(__file__).parents[2] / "docs" / "openapi.json"


def test_the_committed_document_is_the_generated_one():
    assert COMMITTED.read_text(encoding="utf-8") == render(openapi_document()), (
        "docs/openapi.json is stale: run python -m clipline.api.openapi docs/openapi.json"
    )


def test_check_fails_on_a_stale_file_and_writing_makes_it_fresh(tmp_path, capsys):
    stale = tmp_path / "openapi.json"
    stale.write_text(COMMITTED.read_text(encoding="utf-8").replace('"clipline"', '"clipline-old"', 1))
    assert main([str(stale), "--check"]) == 1
    assert "stale" in capsys.readouterr().err
    assert main([str(stale)]) == 0 and main([str(stale), "--check"]) == 0


def test_the_document_has_exactly_the_routes_api_gateway_deploys():
    # The document is drawn from the resolver's routes, so this holds the resolver and the
    # deployed resources to the same paths, parameter names included.
    documented = {(method.upper(), path) for path, ops in openapi_document()["paths"].items() for method in ops}
    assert documented == {(route.method, route.resource) for route in API_ROUTES}


def test_every_operation_needs_the_api_key_and_documents_its_errors_in_the_envelope():
    document = openapi_document()
    assert document["security"] == [{"apiKey": []}]
    assert document["components"]["securitySchemes"]["apiKey"] == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "security" not in operation, f"{method} {path} overrides the key requirement"
            assert {"403", "429", "500", "503"} <= set(operation["responses"]), f"{method} {path}"
            for status, response in operation["responses"].items():
                if status == "204":
                    assert "content" not in response, f"{method} {path} documents a body on its 204"
                    assert "x-correlation-id" in response["headers"], f"{method} {path} {status}"
                    continue
                schema = response["content"]["application/json"]["schema"]
                if int(status) >= 400:
                    assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, f"{method} {path} {status}"
                assert "x-correlation-id" in response["headers"], f"{method} {path} {status}"
            assert any(p["name"] == "x-correlation-id" for p in operation["parameters"])


def test_error_responses_name_the_codes_they_carry_with_their_statuses():
    responses = openapi_document()["paths"]["/api/jobs/{id}/result"]["get"]["responses"]
    assert "JOB_NOT_FOUND" in responses["404"]["description"]
    assert "JOB_NOT_READY" in responses["409"]["description"] and "JOB_FAILED" in responses["409"]["description"]
    assert "RESULT_EXPIRED" in responses["410"]["description"]
    assert "Retry-After" in responses["409"]["headers"] and "Retry-After" in responses["429"]["headers"]
    created = openapi_document()["paths"]["/api/jobs"]["post"]["responses"]
    assert {"Location", "Retry-After"} <= set(created["202"]["headers"])
    assert errors.InvalidTimeRangeError.code in created["400"]["description"]
    assert errors.IdempotencyKeyReusedError.code in created["409"]["description"]
    # Powertools' own validation error shape is not ours, and is not documented
    assert "HTTPValidationError" not in json.dumps(openapi_document())


VALID_BODIES = [
    {"sourceUrl": "https://example.com/a.mp4", "start": 1, "end": 2},
    {"sourceUrl": "https://example.com/a.mp4", "start": "00:01:00", "end": 70.5, "transcribe": True, "language": "en"},
    {"sourceUrl": "https://example.com/a.mp4", "start": "60", "end": 61, "subtitleStyle": {"outlineWidth": 2}},
    {
        "sourceUrl": "https://example.com/a.mp4", "start": 0, "end": 5, "accuracy": "keyframe", "burnSubtitles": True,
        "retentionSeconds": 60, "subtitleStyle": {"position": "top", "primaryColour": "#FFFF00", "fontSize": 40},
        "subtitles": {"srt": "1\n00:00:00,500 --> 00:00:02,000\nHello\n"},
    },
    {"sourceKey": "uploads/" + "a" * 32 + "/a.mp4", "start": 1, "end": 2},
]  # fmt: skip
INVALID_BODIES = [
    {"start": 1, "end": 2},
    # A URL or an upload, never both
    {"sourceUrl": "https://example.com/a.mp4", "sourceKey": "uploads/" + "a" * 32 + "/a.mp4", "start": 1, "end": 2},
    {"sourceUrl": None, "sourceKey": "uploads/" + "a" * 32 + "/a.mp4", "start": 1, "end": 2},
    {"sourceUrl": "https://example.com/a.mp4", "start": 1},
    {"sourceUrl": "https://example.com/a.mp4", "start": 1, "end": 2, "colour": "red"},
    {"sourceUrl": "https://example.com/a.mp4", "start": 1, "end": 2, "language": "EN"},
    {"sourceUrl": "https://example.com/a.mp4", "start": 1, "end": 2, "retentionSeconds": 0},
    {"sourceUrl": "https://example.com/a.mp4", "start": 1, "end": 2, "accuracy": "fast"},
    {"sourceUrl": "https://example.com/a.mp4", "start": 1, "end": 2, "subtitleStyle": {"fontSize": 5}},
    {"sourceUrl": "https://example.com/a.mp4", "start": 1, "end": 2, "subtitles": {"srt": "x", "format": "ass"}},
    {"sourceUrl": "https://example.com/" + "a" * 2048, "start": 1, "end": 2},
    {"sourceUrl": "https://example.com/a.mp4", "start": "0:" * 20, "end": 2},
    {"sourceUrl": "https://example.com/a.mp4", "start": [1], "end": 2},
    # What a lax parser would coerce, and the schema refuses
    {"sourceUrl": "https://example.com/a.mp4", "start": True, "end": 2},
    {"sourceUrl": "https://example.com/a.mp4", "start": 1, "end": 2, "transcribe": "true"},
    {"sourceUrl": "https://example.com/a.mp4", "start": 1, "end": 2, "transcribe": 1},
    {"sourceUrl": "https://example.com/a.mp4", "start": 1, "end": 2, "retentionSeconds": "60"},
    {"sourceUrl": "https://example.com/a.mp4", "start": 1, "end": 2, "retentionSeconds": 60.0},
    {"sourceUrl": "https://example.com/a.mp4", "start": 1, "end": 2, "subtitleStyle": {"fontSize": 54.0}},
    {"sourceUrl": "https://example.com/a.mp4", "start": 1, "end": 2, "subtitleStyle": {"outlineWidth": "3"}},
]


# With the expected verdict beside each body: True == 1 in Python, so membership cannot tell them apart.
@pytest.mark.parametrize(("body", "valid"), [(b, True) for b in VALID_BODIES] + [(b, False) for b in INVALID_BODIES])
def test_the_api_gateway_model_accepts_exactly_what_the_resolver_model_accepts(body, valid):
    model = api_gateway_model()
    Draft4Validator.check_schema(model)
    try:
        CreateJobBody.model_validate(body)
        accepted = True
    except ValidationError:
        accepted = False
    assert Draft4Validator(model).is_valid(body) == accepted == valid


def test_the_api_gateway_model_is_self_contained_draft_4():
    text = json.dumps(api_gateway_model())
    assert '"$ref"' not in text and '"$defs"' not in text and '"const"' not in text
    assert api_gateway_model()["$schema"] == "http://json-schema.org/draft-04/schema#"
