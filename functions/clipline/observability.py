"""Logger, Tracer and Metrics: one of each for the whole package.

Powertools reads its own POWERTOOLS_* variables; constructing these does no I/O.

Local mode runs many Lambda invocations at once in one process, on threads of the
gateway, the engine and the ASR workers. Powertools' ``append_keys`` and
``inject_lambda_context`` keep their keys on the shared logger, where one
invocation would overwrite another's job id; every key here is therefore a
thread-local (context-variable) key, which in a real Lambda, one invocation per
process, behaves the same.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Protocol

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities import jmespath_utils

from .metric_catalog import NAMESPACE, MetricDefinition, MetricKind, definition_of

SERVICE = "clipline"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)

_cold_start = True
_cold_start_lock = threading.Lock()


def _is_cold_start() -> bool:
    global _cold_start
    with _cold_start_lock:
        cold, _cold_start = _cold_start, False
    return cold


def log_context(**keys: Any) -> None:
    """Add keys (``jobId``, ``asrJobId``, ``stage``...) to every later log line of this invocation."""
    logger.thread_safe_append_keys(**{name: value for name, value in keys.items() if value is not None})


def lambda_logging(
    *, correlation_id_path: str | None = None, stage: str | None = None
) -> Callable[[Callable[[Any, Any], Any]], Callable[[Any, Any], Any]]:
    """Decorate a Lambda handler: start its log keys afresh, with the Lambda context and correlation id.

    ``correlation_id_path`` is a JMESPath into the event, as in Powertools'
    ``inject_lambda_context``; API handlers set the id themselves from the request.
    """

    def decorate(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        @functools.wraps(handler)
        def logged_handler(event: Any, context: Any) -> Any:
            logger.thread_safe_clear_keys()
            log_context(
                functionName=getattr(context, "function_name", None),
                functionRequestId=getattr(context, "aws_request_id", None),
                coldStart=_is_cold_start(),
                stage=stage,
                correlationId=jmespath_utils.query(envelope=correlation_id_path, data=event)
                if correlation_id_path
                else None,
            )
            try:
                return handler(event, context)
            finally:
                logger.thread_safe_clear_keys()

        return logged_handler

    return decorate


class MetricsMirror(Protocol):
    """A second sink for every data point: local mode's Prometheus registry."""

    def record(self, definition: MetricDefinition, value: float, dimensions: dict[str, str]) -> None:
        ...


class PowertoolsTelemetry:
    """Telemetry as CloudWatch EMF through Powertools, mirrored to ``mirror`` when given.

    Each data point is flushed on its own with ``single_metric``: local mode runs
    many handler invocations at once in one process, and Powertools' shared
    metric set would mix their dimensions and flush one handler's metrics from another.
    Names, kinds and dimensions are checked against the metric catalog.
    """

    def __init__(self, mirror: MetricsMirror | None = None) -> None:
        self._mirror = mirror

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        self._emit(MetricKind.COUNTER, name, value, dimensions)

    def observe(self, name: str, value: float, **dimensions: str) -> None:
        self._emit(MetricKind.HISTOGRAM, name, value, dimensions)

    def _emit(self, kind: MetricKind, name: str, value: float, dimensions: dict[str, str]) -> None:
        definition = definition_of(name, kind, dimensions)
        # single_metric prints even when POWERTOOLS_METRICS_DISABLED is set; the mirror is fed regardless.
        if not is_metrics_disabled():
            with single_metric(
                name=name, unit=MetricUnit(definition.unit.value), value=value, namespace=NAMESPACE
            ) as metric:
                metric.add_dimension(name="service", value=SERVICE)
                for key, dimension_value in dimensions.items():
                    metric.add_dimension(name=key, value=dimension_value)
        if self._mirror is not None:
            self._mirror.record(definition, value, dimensions)
