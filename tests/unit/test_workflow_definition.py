import importlib
import json

from clipline.settings import Settings
from clipline.workflow import TASK_HANDLERS, placeholders, render_definition, timeout_substitutions


def rendered() -> dict:
    values = {name: f"arn:aws:lambda:us-east-1:123456789012:function:{name}" for name in TASK_HANDLERS}
    return json.loads(render_definition({**values, **timeout_substitutions(Settings(job_timeout_seconds=900))}))


def test_every_placeholder_has_a_source():
    assert placeholders() == set(TASK_HANDLERS) | {"JobTimeoutSeconds", "ProbeTimeoutSeconds", "ClipTimeoutSeconds"}


def test_pipeline_order_is_probe_clip_finalize():
    definition = rendered()
    order, state = [], definition["StartAt"]
    while state:
        order.append(state)
        state = definition["States"][state].get("Next")
    assert order == ["ProbeSource", "ClipSource", "FinalizeJob"]


def test_global_timeout_comes_from_settings():
    assert rendered()["TimeoutSeconds"] == 900


def test_every_work_task_retries_transient_errors_and_catches_into_fail_job():
    states = rendered()["States"]
    for name in ("ProbeSource", "ClipSource", "FinalizeJob"):
        state = states[name]
        assert state["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "FailJob"}]
        retried = {error for rule in state["Retry"] for error in rule["ErrorEquals"]}
        assert "Lambda.ServiceException" in retried and "StorageUnavailableError" in retried
        assert isinstance(state["TimeoutSeconds"], int)
    assert states["FailJob"]["Next"] == "JobFailed" and states["JobFailed"]["Type"] == "Fail"


def test_task_handlers_exist():
    for module in TASK_HANDLERS.values():
        assert callable(importlib.import_module(module).lambda_handler)
