import importlib
import json

from clipline.domain.jobs import STAGE_STATES
from clipline.settings import Settings
from clipline.workflow import (
    ASR_QUEUE_PLACEHOLDER,
    ASR_WORKER_HANDLER,
    TASK_HANDLERS,
    TIMEOUT_SETTINGS,
    placeholders,
    render_definition,
    timeout_substitutions,
)

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/clipline-asr"


def rendered(**settings) -> dict:
    values = {name: f"arn:aws:lambda:us-east-1:123456789012:function:{name}" for name in TASK_HANDLERS}
    timeouts = timeout_substitutions(Settings(job_timeout_seconds=900, **settings))
    return json.loads(render_definition({**values, **timeouts, ASR_QUEUE_PLACEHOLDER: QUEUE_URL}))


def test_every_placeholder_has_a_source():
    assert placeholders() == set(TASK_HANDLERS) | set(TIMEOUT_SETTINGS) | {ASR_QUEUE_PLACEHOLDER}


def path_through(definition: dict, transcribe: bool, burn_subtitles: bool = False) -> list[str]:
    options = {"$.options.transcribe": transcribe, "$.options.burnSubtitles": burn_subtitles}
    order, state = [], definition["StartAt"]
    while state:
        order.append(state)
        current = definition["States"][state]
        if current["Type"] == "Choice":
            (choice,) = current["Choices"]
            taken = options[choice["Variable"]] == choice["BooleanEquals"]
            state = choice["Next"] if taken else current["Default"]
        else:
            state = current.get("Next")
    return order


def test_pipeline_order_is_probe_clip_finalize():
    assert path_through(rendered(), transcribe=False) == [
        "ProbeSource", "ClipSource", "WantsTranscript", "WantsBurnIn", "FinalizeJob",
    ]  # fmt: skip


def test_a_transcript_adds_the_transcribe_state_before_finalize():
    assert path_through(rendered(), transcribe=True) == [
        "ProbeSource", "ClipSource", "WantsTranscript", "Transcribe", "WantsBurnIn", "FinalizeJob",
    ]  # fmt: skip


def test_burn_in_follows_the_transcript_or_the_clip():
    assert path_through(rendered(), transcribe=True, burn_subtitles=True) == [
        "ProbeSource", "ClipSource", "WantsTranscript", "Transcribe", "WantsBurnIn", "BurnIn", "FinalizeJob",
    ]  # fmt: skip
    # The user's own subtitles need no transcript
    assert path_through(rendered(), transcribe=False, burn_subtitles=True) == [
        "ProbeSource", "ClipSource", "WantsTranscript", "WantsBurnIn", "BurnIn", "FinalizeJob",
    ]  # fmt: skip


def test_every_stage_names_a_state_of_the_definition():
    # Job events name states as the execution history does
    assert set(STAGE_STATES.values()) <= set(rendered()["States"])


def test_transcribe_waits_on_the_asr_queue_with_heartbeats():
    state = rendered(asr_heartbeat_seconds=30, asr_timeout_seconds=600)["States"]["Transcribe"]
    assert state["Resource"] == "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    assert state["Parameters"]["QueueUrl"] == QUEUE_URL
    assert state["Parameters"]["MessageBody"]["taskToken.$"] == "$$.Task.Token"
    assert state["HeartbeatSeconds"] == 30
    # The state's limit leaves the provider's own 600 s limit room to fire first with its precise error.
    assert state["TimeoutSeconds"] > 600
    retried = {error for rule in state["Retry"] for error in rule["ErrorEquals"]}
    assert {"TranscriptionUpstreamError", "States.HeartbeatTimeout"} <= retried
    assert "TranscriptionRejectedError" not in retried and "TranscriptionTimeoutError" not in retried


def test_a_silent_worker_fails_the_job_as_a_transcription_timeout():
    states = rendered()["States"]
    timeout_catch = states["Transcribe"]["Catch"][0]
    assert "States.HeartbeatTimeout" in timeout_catch["ErrorEquals"]
    renamed = states[timeout_catch["Next"]]
    assert renamed["Result"]["Error"] == "TranscriptionTimeoutError" and renamed["Next"] == "FailJob"


def test_the_asr_worker_handler_exists():
    assert callable(importlib.import_module(ASR_WORKER_HANDLER).lambda_handler)


def test_global_timeout_comes_from_settings():
    assert rendered()["TimeoutSeconds"] == 900


def test_every_work_task_retries_transient_errors_and_catches_into_fail_job():
    states = rendered()["States"]
    for name in ("ProbeSource", "ClipSource", "BurnIn", "FinalizeJob"):
        state = states[name]
        assert state["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "FailJob"}]
        retried = {error for rule in state["Retry"] for error in rule["ErrorEquals"]}
        assert "Lambda.ServiceException" in retried and "StorageUnavailableError" in retried
        assert isinstance(state["TimeoutSeconds"], int)
    assert states["FailJob"]["Next"] == "JobFailed" and states["JobFailed"]["Type"] == "Fail"


def test_task_handlers_exist():
    for module in TASK_HANDLERS.values():
        assert callable(importlib.import_module(module).lambda_handler)


def test_the_lambda_table_sizes_every_handler_once_within_lambdas_limits():
    from clipline.api.routes import API_ROUTES
    from clipline.workflow import LAMBDA_SIZES, lambda_timeout_seconds

    handlers = [size.handler for size in LAMBDA_SIZES.values()]
    # Every handler module is sized exactly once: the API routes, the tasks, the worker and the two event handlers
    expected = {route.handler for route in API_ROUTES} | set(TASK_HANDLERS.values()) | {ASR_WORKER_HANDLER} | {
        "clipline.handlers.record_execution_end", "clipline.handlers.remove_expired_artifacts",
        "clipline.handlers.deliver_webhook",
    }  # fmt: skip
    assert sorted(handlers) == sorted(expected)
    settings = Settings(_env_file=None)
    for name, size in LAMBDA_SIZES.items():
        timeout = lambda_timeout_seconds(size, settings)
        assert 1 <= timeout <= 900 and 128 <= size.memory_mb <= 10240 and 512 <= size.ephemeral_storage_mb <= 10240, name
        assert callable(importlib.import_module(size.handler).lambda_handler), name
    # A task's Lambda lasts exactly as long as its state waits for it
    assert lambda_timeout_seconds(LAMBDA_SIZES["ClipSource"], settings) == int(
        timeout_substitutions(settings)["ClipTimeoutSeconds"]
    )
