"""The topics the scorer reads and writes (names from the contract, prefixed by settings)."""

from __future__ import annotations

import faust

from services.common.contracts import (
    ALL_TOPICS_BY_NAME,
    TOPIC_ACCOUNTS,
    TOPIC_METRICS,
    TOPIC_SCORES,
)
from services.scorer.app import app, settings


def _topic(name: str) -> faust.TopicT:
    return app.topic(
        settings.topic(name),
        key_serializer="raw",
        value_serializer="raw",
        partitions=ALL_TOPICS_BY_NAME[name].partitions,
        internal=False,
    )


metrics_topic = _topic(TOPIC_METRICS)
accounts_topic = _topic(TOPIC_ACCOUNTS)
scores_topic = _topic(TOPIC_SCORES)
metrics_dlq = _topic(f"{TOPIC_METRICS}.dlq")
accounts_dlq = _topic(f"{TOPIC_ACCOUNTS}.dlq")

# Topics that must exist, with the contract's partition counts, before the worker starts.
REQUIRED = (
    TOPIC_METRICS,
    TOPIC_ACCOUNTS,
    TOPIC_SCORES,
    f"{TOPIC_METRICS}.dlq",
    f"{TOPIC_ACCOUNTS}.dlq",
)
