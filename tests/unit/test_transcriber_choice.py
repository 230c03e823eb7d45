"""CLIPLINE_ASR_PROVIDER picks the provider; building one loads nothing."""

import pytest

from clipline.composition import transcriber_for
from clipline.settings import Settings


@pytest.mark.parametrize(
    ("provider", "class_name", "model_version"),
    [
        ("whisper", "WhisperTranscriber", None),
        ("openai", "OpenAiTranscriber", "openai/whisper-1"),
        ("transcribe", "AmazonTranscribeTranscriber", None),
        ("fake", "FakeTranscriber", "fake-1"),
    ],
)
def test_each_provider_setting_builds_its_transcriber(provider, class_name, model_version):
    transcriber = transcriber_for(Settings(asr_provider=provider, artifacts_bucket="b", aws_region="us-east-1"))
    assert type(transcriber).__name__ == class_name and transcriber.provider == provider
    if model_version:
        assert transcriber.model_version() == model_version


def test_an_unknown_provider_is_refused_by_settings():
    with pytest.raises(ValueError, match="asr_provider"):
        Settings(asr_provider="dictaphone")
