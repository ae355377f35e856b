"""Prometheus metrics every service shares, labelled by service (or consumer group).

Each service's own `metrics.py` names the ones it exports (so a reader, and the deployment
tests, find every metric of a service in one module); they are declared once, here, because
two declarations of one name would collide in the process's registry.

- `obs_consumer_lag_records{group, topic, partition}`: records of a partition the group has not
  committed yet (services/common/kafka/lag.py sets it).
- `obs_event_processing_seconds{service, topic}`: from a record's Kafka timestamp to the end of
  its processing.
- `obs_redis_round_trips_total{service}`: commands and pipelines sent to Redis
  (services/common/view/client.py counts them).

`topic` is the broker-side name (the contract name, after `OBS_TOPIC_PREFIX` when one is set),
as in `obs_scorer_dead_letters_total`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

CONSUMER_LAG = Gauge(
    "obs_consumer_lag_records",
    "Records of a partition the consumer group has not committed yet: end offset (high "
    "watermark) minus the committed offset, for the partitions this process is assigned "
    "(refreshed every few seconds). Exact on Apache Kafka; on the local Tansu broker exact "
    "only for topics written one record per batch (not obs.scores.v1).",
    ["group", "topic", "partition"],
)
EVENT_PROCESSING = Histogram(
    "obs_event_processing_seconds",
    "From a record's Kafka timestamp (LogAppendTime on Kafka) to the end of its processing "
    "(scorer: its batch applied; publisher: the record handled).",
    ["service", "topic"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
REDIS_ROUND_TRIPS = Counter(
    "obs_redis_round_trips_total",
    "Round trips to Redis (a command, or a pipeline executed), by the service that made them.",
    ["service"],
)


def observe_processing(service: str, events: Iterable[Any]) -> None:
    """Observe, for each consumed faust event, the time from its record timestamp to now
    (0 for a timestamp in the future: a producer's clock ahead of ours)."""
    now = time.time()
    children: dict[str, Any] = {}  # a batch comes from one topic: one lookup per batch
    for event in events:
        message = event.message
        if message.timestamp is None:
            continue
        child = children.get(message.topic)
        if child is None:
            child = children[message.topic] = EVENT_PROCESSING.labels(service, message.topic)
        child.observe(max(0.0, now - message.timestamp))
