"""Every metric clipline emits: its name, kind, unit, dimensions and meaning.

The one list behind CloudWatch (EMF through Powertools), local mode's ``/metrics``
(Prometheus), docs/metrics.md and the dashboard. A metric that is not here cannot
be emitted: the telemetry refuses unknown names and dimensions, so a typo fails a
test instead of starting a new time series.

Dimension values must stay low-cardinality (codes, reasons, routes, outcomes):
never a job id, key id or URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

NAMESPACE = "clipline"


class MetricKind(StrEnum):
    COUNTER = "counter"
    # A distribution of observations: a Prometheus histogram, CloudWatch percentiles.
    HISTOGRAM = "histogram"
    # Sampled when read, never emitted by code paths (local mode's /metrics only).
    GAUGE = "gauge"


class MetricUnit(StrEnum):
    """CloudWatch unit names, as Powertools' MetricUnit spells them."""

    COUNT = "Count"
    SECONDS = "Seconds"


# Job durations run from a second (a stream copy) to the global timeout.
_JOB_SECONDS_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1800)
# Providers answer in seconds for a short clip and in minutes for a long one.
_ASR_SECONDS_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
# Uploads: a few kilobytes of transcript to a few hundred megabytes of video.
_UPLOAD_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    kind: MetricKind
    unit: MetricUnit
    description: str
    alert: str
    dimensions: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def prometheus_name(self) -> str:
        """``JobDuration`` in Seconds -> ``clipline_job_duration_seconds``; counters get ``_total`` on exposition."""
        base = f"{NAMESPACE}_{snake_case(self.name)}"
        return f"{base}_seconds" if self.unit is MetricUnit.SECONDS and not base.endswith("_seconds") else base

    @property
    def prometheus_labels(self) -> tuple[str, ...]:
        return tuple(snake_case(dimension) for dimension in self.dimensions)


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


CATALOG: tuple[MetricDefinition, ...] = (
    MetricDefinition(
        "JobDuration", MetricKind.HISTOGRAM, MetricUnit.SECONDS,
        "Time from a job's creation to its end, succeeded or failed.",
        "p95 above the usual for your clip lengths; a rising trend means a slow source or a backlog.",
        dimensions=("outcome",), buckets=_JOB_SECONDS_BUCKETS,
    ),
    MetricDefinition(
        "JobsCreated", MetricKind.COUNTER, MetricUnit.COUNT,
        "Jobs accepted by POST /api/jobs (an idempotent replay is not counted again).",
        "A drop to zero during business hours: clients cannot reach the API.",
    ),
    MetricDefinition(
        "JobsSucceeded", MetricKind.COUNTER, MetricUnit.COUNT,
        "Jobs that finished with every artifact stored.",
        "Compare with JobsCreated: a widening gap means jobs are failing or stuck.",
    ),
    MetricDefinition(
        "JobsFailed", MetricKind.COUNTER, MetricUnit.COUNT,
        "Jobs that ended failed, by the error code users see.",
        "INTERNAL_ERROR, STORAGE_FAILURE, JOB_TIMEOUT or CLIP_TIMEOUT above a few per hour; "
        "source errors (SOURCE_*) are the callers' and need no page.",
        dimensions=("errorCode",),
    ),
    MetricDefinition(
        "UploadsCreated", MetricKind.COUNTER, MetricUnit.COUNT,
        "Signed upload links handed out by POST /api/uploads.",
        "None: a count of what callers asked for.",
    ),
    MetricDefinition(
        "JobsCancelled", MetricKind.COUNTER, MetricUnit.COUNT,
        "Jobs their owners cancelled before they ended (DELETE /api/jobs/{id}), by the stage they were in.",
        "None: a count of what callers asked for. A rise in one stage may mean it is slow enough to give up on.",
        dimensions=("stage",),
    ),
    MetricDefinition(
        "JobsDeleted", MetricKind.COUNTER, MetricUnit.COUNT,
        "Ended jobs whose artifacts their owners deleted before they expired (DELETE /api/jobs/{id}).",
        "None: a count of what callers asked for.",
    ),
    MetricDefinition(
        "WebhookDeliveries", MetricKind.COUNTER, MetricUnit.COUNT,
        "Webhook attempts by outcome: delivered (2xx), retrying, stopped (410) or failed (the schedule ran out).",
        "failed above zero: a receiver never answered 2xx for a whole schedule; its messages are dead-lettered.",
        dimensions=("outcome",),
    ),
    MetricDefinition(
        "WebhookLatency", MetricKind.HISTOGRAM, MetricUnit.SECONDS,
        "Seconds from a job's end to its webhook's delivery, retries included (a redelivery counts from the same end).",
        "p99 above a minute: receivers are failing first attempts, or the delivery workers are behind.",
        buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
    ),
    MetricDefinition(
        "WebhookRedeliveries", MetricKind.COUNTER, MetricUnit.COUNT,
        "Redeliveries asked for through POST /api/jobs/{id}/webhook/redeliver.",
        "None: a count of what callers asked for.",
    ),
    MetricDefinition(
        "ProcessedClipSeconds", MetricKind.COUNTER, MetricUnit.SECONDS,
        "Seconds of media cut into clips: the service's unit of work.",
        "None; it is for capacity planning and cost.",
    ),
    MetricDefinition(
        "FfmpegFallback", MetricKind.COUNTER, MetricUnit.COUNT,
        "Clips that could not be cut the fast way and were re-encoded whole, by reason.",
        "A jump in one reason after a deploy or for one source family; each fallback costs a full encode.",
        dimensions=("reason",),
    ),
    MetricDefinition(
        "AsrLatency", MetricKind.HISTOGRAM, MetricUnit.SECONDS,
        "Time the speech-recognition provider took for one clip (cache hits are not provider calls).",
        "p95 near the ASR timeout: jobs are about to fail with TIMEOUT.",
        dimensions=("provider",), buckets=_ASR_SECONDS_BUCKETS,
    ),
    MetricDefinition(
        "AsrTranscriptions", MetricKind.COUNTER, MetricUnit.COUNT,
        "Transcription stages that ended, by status: succeeded, or the error code in lower case "
        "(timeout, upstream_failure, validation_failed, ...).",
        "status=timeout or upstream_failure above a few per hour: the provider is slow or down.",
        dimensions=("status",),
    ),
    MetricDefinition(
        "AsrCacheHits", MetricKind.COUNTER, MetricUnit.COUNT,
        "Transcriptions served from an earlier transcript of the same audio and model version.",
        "None; the hit rate (hits / (hits + misses)) shows what de-duplication saves.",
    ),
    MetricDefinition(
        "AsrCacheMisses", MetricKind.COUNTER, MetricUnit.COUNT,
        "Transcriptions that had to call the provider.",
        "None.",
    ),
    MetricDefinition(
        "AsrHeartbeatFailures", MetricKind.COUNTER, MetricUnit.COUNT,
        "Worker heartbeats that could not be sent (the state machine or the job store did not answer); "
        "a heartbeat refused because the task was abandoned stops the work instead and is not counted.",
        "Sustained non-zero: workers are losing their tasks and transcriptions will time out.",
    ),
    MetricDefinition(
        "StorageUploadLatency", MetricKind.HISTOGRAM, MetricUnit.SECONDS,
        "Time to store one artifact, retries included.",
        "p99 above a few seconds: the store is throttling or retrying.",
        buckets=_UPLOAD_SECONDS_BUCKETS,
    ),
    MetricDefinition(
        "AsrQueueDepth", MetricKind.GAUGE, MetricUnit.COUNT,
        "Messages waiting in the ASR queue. In AWS use SQS's ApproximateNumberOfMessagesVisible "
        "for the queue instead; local mode samples the same attribute when /metrics is read.",
        "Growing for more than a few minutes: workers cannot keep up.",
    ),
    MetricDefinition(
        "ApiRequests", MetricKind.COUNTER, MetricUnit.COUNT,
        "API requests answered, by route template and status class (2xx, 4xx, 5xx).",
        "statusClass=5xx above 1 % of requests.",
        dimensions=("route", "statusClass"),
    ),
    MetricDefinition(
        "RateLimitRefusals", MetricKind.COUNTER, MetricUnit.COUNT,
        "Requests refused with 429 by the throttle or the quota.",
        "A sudden rise: a client is looping, or a plan's limits are too low for real use.",
    ),
    MetricDefinition(
        "ExpiredObjectsDeleted", MetricKind.COUNTER, MetricUnit.COUNT,
        "Stored objects deleted because the job or transcript that owned them expired, by kind.",
        "None; zero for days while jobs expire means cleanup is not running.",
        dimensions=("kind",),
    ),
)  # fmt: skip

METRICS: dict[str, MetricDefinition] = {definition.name: definition for definition in CATALOG}


def definition_of(name: str, kind: MetricKind, dimensions: dict[str, str]) -> MetricDefinition:
    """The catalog entry for ``name``, checked against how it is being emitted.

    Raises:
        ValueError: ``name`` is not in the catalog, is of another kind, or the
            dimensions are not exactly its own.
    """
    definition = METRICS.get(name)
    if definition is None:
        raise ValueError(f"metric {name!r} is not in the catalog")
    if definition.kind is not kind:
        raise ValueError(f"metric {name} is a {definition.kind.value}, not a {kind.value}")
    if set(dimensions) != set(definition.dimensions):
        raise ValueError(f"metric {name} takes dimensions {definition.dimensions}, got {tuple(dimensions)}")
    return definition


TABLE_START = "<!-- metric table: generated by `python -m clipline.metric_catalog docs/metrics.md` -->"
TABLE_END = "<!-- end of metric table -->"


def markdown_table() -> str:
    """The catalog as the Markdown table docs/metrics.md carries between its markers."""
    rows = [
        "| metric (CloudWatch) | Prometheus (local mode) | kind | unit | dimensions | what it means | alert on |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for definition in CATALOG:
        dimensions = ", ".join(f"`{name}`" for name in definition.dimensions) or "none"
        rows.append(
            f"| `{definition.name}` | `{definition.prometheus_name}` | {definition.kind.value} | "
            f"{definition.unit.value} | {dimensions} | {definition.description} | {definition.alert} |"
        )
    return "\n".join(rows) + "\n"


def with_fresh_table(document: str) -> str:
    """``document`` with the text between the table markers replaced by the current catalog.

    Raises:
        MarkerError: not exactly one start marker line followed by one end marker line.
    """
    from .generated_docs import replace_between

    return replace_between(document, TABLE_START, TABLE_END, markdown_table())


if __name__ == "__main__":
    import sys

    from .generated_docs import regenerate

    sys.exit(regenerate(None, prog="python -m clipline.metric_catalog", what="the metric table", fresh=with_fresh_table))
