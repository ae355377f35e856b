"""The topics the publisher reads and writes (names from the contract, prefixed by settings)."""

from __future__ import annotations

import faust

from services.common.contracts import (
    TOPIC_ACCOUNTS,
    TOPIC_COMMAND_RESULTS,
    TOPIC_COMMANDS,
    TOPIC_DEAD_LINKS,
    TOPIC_EDITIONS,
    TOPIC_METRICS,
    TOPIC_RANK_CHANGES,
    TOPIC_SCORES,
)
from services.common.streams import contract_topic
from services.publisher.app import app, settings


def _topic(name: str) -> faust.TopicT:
    return contract_topic(app, settings, name)


# read
scores_topic = _topic(TOPIC_SCORES)
metrics_topic = _topic(TOPIC_METRICS)
accounts_topic = _topic(TOPIC_ACCOUNTS)
commands_topic = _topic(TOPIC_COMMANDS)
# written
rank_changes_topic = _topic(TOPIC_RANK_CHANGES)
dead_links_topic = _topic(TOPIC_DEAD_LINKS)
editions_topic = _topic(TOPIC_EDITIONS)
command_results_topic = _topic(TOPIC_COMMAND_RESULTS)
scores_dlq = _topic(f"{TOPIC_SCORES}.dlq")
commands_dlq = _topic(f"{TOPIC_COMMANDS}.dlq")

# By contract name, for the components' Sender (accounts: set_account writes them).
WRITTEN: dict[str, faust.TopicT] = {
    TOPIC_RANK_CHANGES: rank_changes_topic,
    TOPIC_DEAD_LINKS: dead_links_topic,
    TOPIC_EDITIONS: editions_topic,
    TOPIC_COMMAND_RESULTS: command_results_topic,
    TOPIC_ACCOUNTS: accounts_topic,
    TOPIC_COMMANDS: commands_topic,
}

# Topics that must exist, with the contract's partition counts, before the worker starts.
REQUIRED = (
    TOPIC_SCORES,
    TOPIC_METRICS,
    TOPIC_ACCOUNTS,
    TOPIC_COMMANDS,
    TOPIC_RANK_CHANGES,
    TOPIC_DEAD_LINKS,
    TOPIC_EDITIONS,
    TOPIC_COMMAND_RESULTS,
    f"{TOPIC_SCORES}.dlq",
    f"{TOPIC_COMMANDS}.dlq",
)
