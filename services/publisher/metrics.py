"""Prometheus metrics of the publisher (served on `OBS_PUBLISHER_METRICS_PORT`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Shared with the other services (services/common/metrics.py), listed here as this service's:
# its series carry its group or service="publisher".
from services.common.metrics import CONSUMER_LAG as CONSUMER_LAG
from services.common.metrics import EVENT_PROCESSING as EVENT_PROCESSING
from services.common.view.client import count_round_trips_as

EVENTS_CONSUMED = Counter(
    "obs_publisher_events_consumed_total", "Records read from the publisher's topics.", ["topic"]
)
INVALID_RECORDS = Counter(
    "obs_publisher_invalid_records_total",
    "Invalid records skipped (obs.metrics.v1 and obs.accounts.v1: the scorer dead-letters them).",
    ["topic", "reason"],
)
DEAD_LETTERS = Counter(
    "obs_publisher_dead_letters_total", "Records sent to a dead-letter topic.", ["topic", "reason"]
)
RANK_CHANGE_EVENTS = Counter(
    "obs_publisher_rank_change_events_total",
    "Events produced to obs.rank-changes.v1.",
    ["category"],
)
RANK_CHANGES = Counter(
    "obs_publisher_rank_changes_total",
    "Territories whose rank in a published list changed, by kind.",
    ["kind"],  # entered | left | up | down
)
RANK_CHANGE_SEQ = Gauge(
    "obs_publisher_rank_change_seq", "Last seq produced per category.", ["category"]
)
DETECTION_DELAY = Histogram(
    "obs_publisher_detection_delay_seconds",
    "From the oldest score event of a batch (its record time) to the delivery of the "
    "rank-change event it caused.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
DEAD_LINK_EVENTS = Counter(
    "obs_publisher_dead_link_events_total",
    "Events produced to obs.dead-links.v1.",
    ["status"],  # dead | ok
)
DEAD_LINKS = Gauge("obs_publisher_dead_links", "Accounts whose link is dead now.")
EDITIONS_PUBLISHED = Counter(
    "obs_publisher_editions_published_total", "Monthly editions published (all categories)."
)
EDITION_PARTS = Counter(
    "obs_publisher_edition_parts_total", "Parts produced to obs.editions.v1.", ["category"]
)
COMMANDS = Counter(
    "obs_publisher_commands_total", "Commands executed, by outcome.", ["command", "status"]
)
REDIS_ERRORS = Counter("obs_publisher_redis_errors_total", "Failed Redis operations (retried).")

ACTIVE = Gauge(
    "obs_publisher_active", "1 while this publisher holds the lease (active), 0 while standby."
)
LEASE_TOKEN = Gauge("obs_publisher_lease_token", "The lease token this publisher holds (0: none).")
RECORDS_PRODUCED = Counter(
    "obs_publisher_records_produced_total",
    "Records produced, by topic (obs.rank-changes.v1, obs.dead-links.v1, obs.editions.v1, "
    "obs.command-results.v1, obs.accounts.v1, obs.commands.v1; dead letters: "
    "obs_publisher_dead_letters_total).",
    ["topic"],
)
REDIS_ROUND_TRIPS = count_round_trips_as("publisher")
