"""Prometheus metrics of the collector (served on `OBS_COLLECTOR_METRICS_PORT`).

Graph tokens are labelled by their 1-based position in `OBS_GRAPH_TOKENS` (`token="2"`),
never by value.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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

# --- Graph API ---------------------------------------------------------------------------
GRAPH_CALLS = Counter(
    "obs_collector_graph_calls_total",
    "Graph API calls by outcome (ok, not_found, throttled, http_429, server_error, timeout, "
    "transport_error, malformed, invalid_token, other_error).",
    ["outcome"],
)
GRAPH_BUDGET_USED = Gauge(
    "obs_collector_graph_budget_used",
    "Calls counted in the token's current sliding window (granted, in flight or answered).",
    ["token"],
)
GRAPH_BUDGET_REMAINING = Gauge(
    "obs_collector_graph_budget_remaining",
    "Calls the token may still make in its current sliding window.",
    ["token"],
)
GRAPH_USAGE_PERCENT = Gauge(
    "obs_collector_graph_usage_percent",
    "Highest usage percentage the platform last reported for the token (usage headers).",
    ["token"],
)
GRAPH_TOKEN_VALID = Gauge(
    "obs_collector_graph_token_valid", "1 while the token is accepted, 0 once rejected.", ["token"]
)
GRAPH_TOKEN_REJECTED = Counter(
    "obs_collector_graph_token_rejected_total",
    "Calls the platform refused because the token is invalid (code 190).",
    ["token"],
)
FETCH_SECONDS = Histogram(
    "obs_collector_fetch_seconds",
    "Time to observe one account (every page, retry and budget wait included).",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600),
)
ACCOUNTS_SCHEDULED = Gauge(
    "obs_collector_accounts_scheduled", "Accounts the Graph collector observes."
)
ACCOUNTS_DUE = Gauge(
    "obs_collector_accounts_due", "Accounts due for an observation and not yet observed."
)

# --- CSV ---------------------------------------------------------------------------------
CSV_ROWS = Counter(
    "obs_collector_csv_rows_total", "CSV rows read, by result (imported, skipped).", ["result"]
)

# --- Spool -------------------------------------------------------------------------------
SPOOL_RECORDS = Gauge(
    "obs_collector_spool_records", "Records spooled on disk, not yet confirmed by the broker."
)
SPOOL_BYTES = Gauge("obs_collector_spool_bytes", "Bytes of the spooled records.")
SPOOL_OLDEST_AGE = Gauge(
    "obs_collector_spool_oldest_age_seconds",
    "Seconds since the oldest record still spooled was written (0 when empty).",
)
SPOOL_LIMIT_BYTES = Gauge(
    "obs_collector_spool_limit_bytes", "Spool bound: collection pauses above it."
)
BROKER_AVAILABLE = Gauge(
    "obs_collector_broker_available", "1 while the last delivery attempt succeeded, else 0."
)
