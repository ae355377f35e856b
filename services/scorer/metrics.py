"""Prometheus metrics of the scorer (served on `OBS_SCORER_METRICS_PORT`)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Shared with the other services (services/common/metrics.py), listed here as this service's:
# its series carry its group or service="scorer".
from services.common.metrics import CONSUMER_LAG as CONSUMER_LAG
from services.common.metrics import EVENT_PROCESSING as EVENT_PROCESSING
from services.common.view.client import count_round_trips_as

EVENTS_CONSUMED = Counter(
    "obs_scorer_events_consumed_total", "Records read from the scorer's topics.", ["topic"]
)
SNAPSHOTS_APPLIED = Counter(
    "obs_scorer_entries_applied_total",
    "Territory entries written to a standings view.",
    ["view"],  # current | edition
)
SNAPSHOTS_IGNORED = Counter(
    "obs_scorer_snapshots_ignored_total",
    "Valid snapshots that changed no current entry (stale, duplicate, unmapped or not ok).",
)
DEAD_LETTERS = Counter(
    "obs_scorer_dead_letters_total", "Records sent to a dead-letter topic.", ["topic", "reason"]
)
BATCH_SIZE = Histogram(
    "obs_scorer_batch_size",
    "Records per applied batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
)
APPLY_SECONDS = Histogram(
    "obs_scorer_apply_seconds",
    "Time to apply one batch to Redis.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class WatermarkGauges(Collector):
    """`obs_scorer_watermark_seconds` and `obs_scorer_freshness_seconds` (wall clock minus the
    watermark, computed at each scrape), both absent while there is no watermark (fewer than
    K accounts observed): a zero would read as "fresh" or as 1970."""

    def __init__(self) -> None:
        self.watermark: int | None = None

    def set(self, watermark: int | None) -> None:
        if watermark is not None:
            self.watermark = watermark

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(_WATERMARK, _WATERMARK_HELP)
        yield GaugeMetricFamily(_FRESHNESS, _FRESHNESS_HELP)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        watermark = self.watermark
        if watermark is None:
            return
        yield GaugeMetricFamily(_WATERMARK, _WATERMARK_HELP, value=watermark)
        yield GaugeMetricFamily(_FRESHNESS, _FRESHNESS_HELP, value=time.time() - watermark)


_WATERMARK = "obs_scorer_watermark_seconds"
_WATERMARK_HELP = "The watermark: the K-th newest account's observed_at (epoch seconds)."
_FRESHNESS = "obs_scorer_freshness_seconds"
_FRESHNESS_HELP = "Wall clock minus the watermark (seconds)."


WATERMARK = WatermarkGauges()
REGISTRY.register(WATERMARK)
REDIS_ERRORS = Counter("obs_scorer_redis_errors_total", "Failed Redis operations (retried).")
SCORE_EVENTS = Counter(
    "obs_scorer_score_events_total", "Events produced to obs.scores.v1.", ["status"]
)
REPLICA_WAIT_TIMEOUTS = Counter(
    "obs_scorer_replica_wait_timeouts_total",
    "WAITs that timed out before OBS_REDIS_WAIT_REPLICAS replicas of a master acknowledged a "
    "batch's writes (sent again; the batch is not committed meanwhile).",
)
RECORDS_PRODUCED = Counter(
    "obs_scorer_records_produced_total",
    "Records produced, by topic (obs.scores.v1, obs.day-summaries.v1; dead letters: "
    "obs_scorer_dead_letters_total).",
    ["topic"],
)
REDIS_ROUND_TRIPS = count_round_trips_as("scorer")
