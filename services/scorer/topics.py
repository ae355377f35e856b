"""The topics the scorer reads and writes (names from the contract, prefixed by settings)."""

from __future__ import annotations

from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS, TOPIC_SCORES
from services.common.streams import contract_topic
from services.scorer.app import app, settings

metrics_topic = contract_topic(app, settings, TOPIC_METRICS)
accounts_topic = contract_topic(app, settings, TOPIC_ACCOUNTS)
metrics_dlq = contract_topic(app, settings, f"{TOPIC_METRICS}.dlq")
accounts_dlq = contract_topic(app, settings, f"{TOPIC_ACCOUNTS}.dlq")

# obs.scores.v1 is written by services/scorer/scores.py (a producer of its own), not faust.
# Topics that must exist, with the contract's partition counts, before the worker starts.
REQUIRED = (
    TOPIC_METRICS,
    TOPIC_ACCOUNTS,
    TOPIC_SCORES,
    f"{TOPIC_METRICS}.dlq",
    f"{TOPIC_ACCOUNTS}.dlq",
)
