"""The topics the scorer reads and writes (names from the contract, prefixed by settings)."""

from __future__ import annotations

from services.common.contracts import (
    TOPIC_ACCOUNTS,
    TOPIC_DAY_SUMMARIES,
    TOPIC_METRICS,
    TOPIC_SCORES,
)
from services.common.streams import contract_topic
from services.scorer.app import app, settings

metrics_topic = contract_topic(app, settings, TOPIC_METRICS)
accounts_topic = contract_topic(app, settings, TOPIC_ACCOUNTS)
metrics_dlq = contract_topic(app, settings, f"{TOPIC_METRICS}.dlq")
accounts_dlq = contract_topic(app, settings, f"{TOPIC_ACCOUNTS}.dlq")

# obs.scores.v1 and obs.day-summaries.v1 are written by services/scorer/scores.py and
# day_summaries.py (producers of their own), not faust.
# Topics that must exist, with the contract's partition counts, before the worker starts.
REQUIRED = (
    TOPIC_METRICS,
    TOPIC_ACCOUNTS,
    TOPIC_SCORES,
    TOPIC_DAY_SUMMARIES,
    f"{TOPIC_METRICS}.dlq",
    f"{TOPIC_ACCOUNTS}.dlq",
)
