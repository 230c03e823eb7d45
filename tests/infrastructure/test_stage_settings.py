"""Runtime settings a stage passes to its functions through cdk.json's ``settings``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.config import StageConfig
from infra.functions import env_name

from .conftest import Synthesis, stage_config
from .test_template import function_named


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"source_alowlist": "media.example.com"}, "unknown"),
        ({"mode": "local"}, "set by the stack"),
        ({"retention_days": 30}, "set by the stack"),
        ({"data_dir": "/srv/clipline"}, "mean nothing in AWS"),
        ({"key_quota": 5}, "mean nothing in AWS"),
        ({"max_clip_seconds": -5}, "greater than 0"),
        ({"signed_url_ttl_seconds": 30 * 24 * 3600}, "less than or equal"),
    ],
)
def test_a_stage_may_only_pass_runtime_settings_that_exist_mean_something_in_aws_and_are_valid(settings, complaint):
    with pytest.raises(ValidationError, match=complaint):
        StageConfig(settings=settings)


def test_valid_runtime_settings_are_accepted_as_given():
    config = StageConfig(settings={"source_allowlist": "*.example.com", "allow_private_sources": False})
    assert config.settings == {"source_allowlist": "*.example.com", "allow_private_sources": False}


@pytest.mark.slow
def test_every_function_of_a_stage_gets_its_runtime_settings(synthesis: Synthesis):
    # Given the prod stage, whose cdk.json entry shortens signed links and caps clips
    assert stage_config("prod").settings == {"signed_url_ttl_seconds": 900, "max_clip_seconds": 600}
    # Then every function reads them from its environment, as clipline.settings names them
    for name in ("CreateJob", "GetJobResult", "ClipSource", "TranscribeClip"):
        _, function = function_named(synthesis.templates["prod"], "prod", name)
        variables = function["Environment"]["Variables"]
        assert variables[env_name("signed_url_ttl_seconds")] == "900", name
        assert variables[env_name("max_clip_seconds")] == "600", name
    # And a stage that sets none leaves them at the runtime's defaults
    _, dev_clip = function_named(synthesis.templates["dev"], "dev", "ClipSource")
    assert env_name("signed_url_ttl_seconds") not in dev_clip["Environment"]["Variables"]
