"""Prometheus metrics of the API (served on the API's own `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.common.view.client import count_round_trips_as

REQUESTS = Counter(
    "obs_api_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "obs_api_request_seconds",
    "Time to answer a request (event streams excluded).",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
RATE_LIMITED = Counter("obs_api_rate_limited_total", "Requests refused by the rate limit.")
STREAMS = Gauge("obs_api_event_streams", "Server-Sent Events streams open now.")
STREAM_EVENTS = Counter(
    "obs_api_stream_events_total", "Rank-change events sent on event streams.", ["category"]
)
OPERATOR_ACTIONS = Counter(
    "obs_api_operator_actions_total",
    "Operator actions by outcome (accepted, unauthorized, disabled, invalid, unavailable).",
    ["action", "outcome"],
)
VIEW_READS = Counter(
    "obs_api_view_reads_total",
    "Redis reads of live standings, and how many re-rendered their body (coalesced requests "
    "share a read; an unchanged reply reuses its body).",
    ["rendered"],
)
CONNECTIONS_OPEN = Gauge("obs_api_connections_open", "HTTP connections open now (this process).")
CONNECTIONS_CLOSED = Counter(
    "obs_api_connections_closed_total",
    "Connections the server closed by guard (total_cap, address_cap, request_timeout, "
    "stalled_reader).",
    ["reason"],
)
REDIS_ERRORS = Counter(
    "obs_api_redis_errors_total",
    "Redis round trips that failed (connection refused or lost, timeout, error reply): the "
    "request answered 503, or the stream poll or readiness check tries again.",
)
# Shared with the other services (services/common/metrics.py): service="api".
REDIS_ROUND_TRIPS = count_round_trips_as("api", REDIS_ERRORS)
