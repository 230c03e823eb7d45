"""Local mode's ``GET /metrics``: the catalog's metrics in Prometheus text format.

Filled by the same telemetry calls that print EMF (this is their mirror), so no
metric is written twice. Names follow Prometheus conventions mechanically from
the catalog (``JobDuration`` -> ``clipline_job_duration_seconds``, dimension
``errorCode`` -> label ``error_code``); docs/metrics.md lists both spellings.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..metric_catalog import CATALOG, MetricDefinition, MetricKind, snake_case

QUEUE_DEPTH_METRIC = "AsrQueueDepth"


class PrometheusMetrics:
    """A private registry with one collector per catalog metric."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, queue_depth: Callable[[], float]) -> None:
        """``queue_depth`` reads the ASR queue's visible messages; it is called on each scrape."""
        self._registry = CollectorRegistry()
        self._collectors: dict[str, Counter | Histogram] = {}
        for definition in CATALOG:
            if definition.kind is MetricKind.GAUGE:
                if definition.name != QUEUE_DEPTH_METRIC:
                    raise ValueError(f"no local source for the gauge {definition.name}")
                Gauge(definition.prometheus_name, definition.description, registry=self._registry).set_function(
                    queue_depth
                )
            elif definition.kind is MetricKind.HISTOGRAM:
                self._collectors[definition.name] = Histogram(
                    definition.prometheus_name,
                    definition.description,
                    definition.prometheus_labels,
                    buckets=definition.buckets,
                    registry=self._registry,
                )
            else:
                self._collectors[definition.name] = Counter(
                    definition.prometheus_name, definition.description, definition.prometheus_labels, registry=self._registry
                )

    def record(self, definition: MetricDefinition, value: float, dimensions: dict[str, str]) -> None:
        collector = self._collectors[definition.name]
        if dimensions:
            collector = collector.labels(**{snake_case(name): label for name, label in dimensions.items()})
        if isinstance(collector, Histogram):
            collector.observe(value)
        else:
            collector.inc(value)

    def exposition(self) -> bytes:
        return generate_latest(self._registry)
