"""Logger, Tracer and Metrics: one of each for the whole package.

Powertools reads its own POWERTOOLS_* variables; constructing these does no I/O.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = "clipline"
NAMESPACE = "clipline"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)


class PowertoolsTelemetry:
    """Telemetry as CloudWatch EMF through Powertools.

    Each data point is flushed on its own with ``single_metric``: local mode runs
    many handler invocations at once in one process, and Powertools' shared
    metric set would mix their dimensions and flush one handler's metrics from another.
    """

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        unit = MetricUnit.Seconds if name.endswith("Seconds") else MetricUnit.Count
        with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
            metric.add_dimension(name="service", value=SERVICE)
            for key, dimension_value in dimensions.items():
                metric.add_dimension(name=key, value=dimension_value)
