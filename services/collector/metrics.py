"""Prometheus metrics of the collector (served on `OBS_COLLECTOR_METRICS_PORT`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SNAPSHOTS_PRODUCED = Counter(
    "obs_collector_snapshots_produced_total",
    "Snapshots confirmed by the broker.",
    ["source", "status"],
)
ACCOUNTS_REGISTERED = Counter(
    "obs_collector_accounts_registered_total", "Account records produced.", ["source"]
)
LAST_OBSERVED = Gauge(
    "obs_collector_last_observed_seconds", "Event time of the newest snapshot produced (epoch)."
)
