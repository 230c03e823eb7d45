"""The metric catalog: well-formed, and the docs show exactly it."""

import re
from pathlib import Path

from clipline.metric_catalog import CATALOG, MetricKind, MetricUnit, with_fresh_table

DOCS = Path(__file__).parents[2] / "docs" / "metrics.md"
_CAMEL = re.compile(r"^[A-Z][A-Za-z]+$")
_PROMETHEUS = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def test_names_and_dimensions_are_well_formed_and_unique():
    assert len({d.name for d in CATALOG}) == len(CATALOG)
    assert len({d.prometheus_name for d in CATALOG}) == len(CATALOG)
    for definition in CATALOG:
        assert _CAMEL.match(definition.name), definition.name
        assert _PROMETHEUS.match(definition.prometheus_name), definition.prometheus_name
        assert all(re.fullmatch(r"[a-z][A-Za-z]*", d) for d in definition.dimensions), definition.dimensions
        assert definition.description and definition.alert


def test_histograms_are_durations_with_increasing_buckets():
    for definition in CATALOG:
        if definition.kind is MetricKind.HISTOGRAM:
            assert definition.unit is MetricUnit.SECONDS
            assert list(definition.buckets) == sorted(set(definition.buckets)) and definition.buckets
        else:
            assert not definition.buckets


def test_prometheus_names_follow_the_conventions():
    names = {d.name: d.prometheus_name for d in CATALOG}
    assert names["JobDuration"] == "clipline_job_duration_seconds"
    assert names["ProcessedClipSeconds"] == "clipline_processed_clip_seconds"
    assert names["JobsFailed"] == "clipline_jobs_failed"


def test_docs_metrics_table_is_fresh():
    document = DOCS.read_text()
    assert document == with_fresh_table(document), (
        "docs/metrics.md is stale: run `python -m clipline.metric_catalog docs/metrics.md`"
    )
