"""The Grafana dashboard queries what the services export, the way each metric's type allows.

Every obs_* name in a panel's query must be a series some service's metrics module exports
(counters as `_total`, histograms as `_bucket`/`_sum`/`_count`), every label it groups or
filters by must belong to a metric of that query, `rate()` and its kin read only counters and
histogram parts, `histogram_quantile()` only buckets. The panels an operator needs to follow
the alerts are there: consumer lag per group and topic, processing latency, event streams,
dead letters by reason of both consumers, Redis round trips and every service's Redis errors.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboard.json"
# The services' metrics modules (services/common/metrics.py declares the shared metrics; each
# service lists those it exports in its own module).
SERVICES = sorted(
    path.parent.name
    for path in (ROOT / "services").glob("*/metrics.py")
    if path.parent.name != "common"
)

METRIC_NAME = re.compile(r"\b(?:obs_[a-z0-9_]+|up)\b(?!\s*\()")
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
}
# Labels of series made by Prometheus itself, not by the services' metrics.
PROMETHEUS_LABELS = {"le", "instance", "job"}
# The functions that read a counter's (or a histogram part's) increase.
RATE_FUNCTIONS = ("rate", "irate", "increase")


class Series:
    """One series name a service exports: its metric's type and label names."""

    def __init__(self, kind: str, labels: set[str]) -> None:
        self.kind = kind
        self.labels = labels


def _collectors(module: Any) -> Iterator[Any]:
    for value in vars(module).values():
        if isinstance(value, MetricWrapperBase):
            yield value
        elif not isinstance(value, type) and callable(getattr(value, "describe", None)):
            yield value  # a custom collector (e.g. the scorer's watermark gauges)


def _exported() -> dict[str, Series]:
    series: dict[str, Series] = {}
    for service in SERVICES:
        module = importlib.import_module(f"services.{service}.metrics")
        for collector in _collectors(module):
            # Private but long-stable attribute of prometheus_client: the label names.
            labels = set(getattr(collector, "_labelnames", ()))
            for family in collector.describe():
                for suffix in SUFFIXES[family.type]:
                    series[family.name + suffix] = Series(family.type, labels)
    series["up"] = Series("gauge", set())
    return series


EXPORTED = _exported()


def _panels() -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return [panel for panel in panels if panel["type"] != "row"]


def _queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in _panels()
        for target in panel.get("targets", [])
    ]


def _labels_used(expr: str) -> set[str]:
    labels: set[str] = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels |= {label.strip() for label in group.split(",") if label.strip()}
    for selector in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", selector))
    return labels


def _queried(pattern: str) -> list[str]:
    return [expr for _, expr in _queries() if re.search(pattern, expr)]


def test_the_exported_metrics_are_found() -> None:
    # The collector itself: services' own metrics and the shared ones they list.
    assert {"api", "collector", "publisher", "scorer"} <= set(SERVICES)
    assert EXPORTED["obs_scorer_entries_applied_total"].kind == "counter"
    assert EXPORTED["obs_scorer_freshness_seconds"].kind == "gauge"
    assert EXPORTED["obs_api_request_seconds_bucket"].labels == {"route"}


@pytest.mark.parametrize("panel", _panels(), ids=lambda panel: panel["title"])
def test_every_panel_queries_something(panel: dict[str, Any]) -> None:
    exprs = [target.get("expr", "") for target in panel.get("targets", [])]
    assert exprs and all(METRIC_NAME.search(expr) for expr in exprs), panel["title"]


@pytest.mark.parametrize(("title", "expr"), _queries(), ids=[t for t, _ in _queries()])
def test_every_query_names_exported_series_and_their_labels(title: str, expr: str) -> None:
    names = set(METRIC_NAME.findall(expr))
    unknown = names - set(EXPORTED)
    assert not unknown, f"{title!r} queries series no service exports: {sorted(unknown)}"
    labels = set().union(*(EXPORTED[name].labels for name in names)) | PROMETHEUS_LABELS
    assert _labels_used(expr) <= labels, f"{title!r} uses labels its metrics do not have"


@pytest.mark.parametrize(("title", "expr"), _queries(), ids=[t for t, _ in _queries()])
def test_every_query_reads_each_metric_as_its_type_allows(title: str, expr: str) -> None:
    functions = "|".join(RATE_FUNCTIONS)
    for name in re.findall(rf"\b(?:{functions})\s*\(\s*([a-z0-9_:]+)", expr):
        if name not in EXPORTED:
            continue  # reported by the test above
        kind = EXPORTED[name].kind
        assert kind in ("counter", "histogram", "summary") and not name.endswith("_created"), (
            f"{title!r}: rate() of {name}, a {kind}"
        )
    if "histogram_quantile" in expr:
        names = set(METRIC_NAME.findall(expr))
        assert names and all(name.endswith("_bucket") for name in names), title
        assert re.search(r"\bby\s*\([^)]*\ble\b", expr), f"{title!r}: quantile without `le`"


def test_the_panels_an_operator_needs_for_the_alerts_are_there() -> None:
    lag = _queried(r"\bobs_consumer_lag_records\b")
    assert any(re.search(r"by \(group, topic\)", expr) for expr in lag), "lag per group/topic"
    latency = _queried(r"\bobs_event_processing_seconds_bucket\b")
    assert {"0.5", "0.99"} <= {
        match for expr in latency for match in re.findall(r"histogram_quantile\(([0-9.]+)", expr)
    }, "processing latency p50 and p99"
    assert _queried(r"\bobs_api_event_streams\b"), "event streams open"
    for consumer in ("scorer", "publisher"):
        dead = _queried(rf"\bobs_{consumer}_dead_letters_total\b")
        assert any("reason" in _labels_used(expr) for expr in dead), f"{consumer} dead letters"
    assert _queried(r"\bobs_redis_round_trips_total\b"), "Redis round trips"
    redis_errors = {name for name in EXPORTED if re.fullmatch(r"obs_\w+_redis_errors_total", name)}
    assert len(redis_errors) >= 2
    for name in redis_errors:
        assert _queried(rf"\b{name}\b"), f"no panel shows {name}"


def test_the_panels_do_not_overlap_and_fit_the_grid() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]
