"""The public names of ARCHITECTURE.md in one place: categories, topics, limits, versions.

Grep for these constants rather than spelling the strings out elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SCHEMA_VERSION: Final = 1
METHODOLOGY_VERSION: Final = 1
PLATFORM_INSTAGRAM: Final = "instagram"

# Events more than this far ahead of the producer clock / record timestamp are refused.
FUTURE_TOLERANCE_SECONDS: Final = 5 * 60
# Metrics payloads over this size are invalid.
MAX_METRICS_PAYLOAD_BYTES: Final = 256 * 1024
# Dead-letter records keep at most this much of the offending payload.
DLQ_PAYLOAD_TRUNCATE_BYTES: Final = 4096
# Posts kept per snapshot (the platform pages; we stop at 200).
MAX_RECENT_POSTS: Final = 200


@dataclass(frozen=True, slots=True)
class Category:
    """One of the eight territory categories and the size of its published list."""

    id: str
    label: str
    published_size: int | None  # None: the whole category is published


CATEGORIES: Final[tuple[Category, ...]] = (
    Category("regions", "Régions", None),
    Category("departements", "Départements", 50),
    Category("metropoles", "Métropoles", None),
    Category("communautes-agglomeration", "Communautés d'agglomération et urbaines", 50),
    Category("communautes-communes", "Communautés de communes", 50),
    Category("grandes-villes", "Grandes villes", 20),
    Category("villes-moyennes", "Villes moyennes", 50),
    Category("petites-villes", "Petites villes", 50),
)
CATEGORY_IDS: Final[tuple[str, ...]] = tuple(c.id for c in CATEGORIES)
CATEGORIES_BY_ID: Final[dict[str, Category]] = {c.id: c for c in CATEGORIES}


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic of the contract: partitions, key, retention and cleanup policy."""

    name: str
    partitions: int
    retention_ms: int  # -1: forever
    compacted: bool = False

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"


DAY_MS: Final = 24 * 3600 * 1000
FOREVER: Final = -1

TOPIC_METRICS: Final = "obs.metrics.v1"
TOPIC_ACCOUNTS: Final = "obs.accounts.v1"
TOPIC_SCORES: Final = "obs.scores.v1"
TOPIC_RANK_CHANGES: Final = "obs.rank-changes.v1"
TOPIC_DEAD_LINKS: Final = "obs.dead-links.v1"
TOPIC_EDITIONS: Final = "obs.editions.v1"
TOPIC_COMMANDS: Final = "obs.commands.v1"
TOPIC_COMMAND_RESULTS: Final = "obs.command-results.v1"
# The scorer's record of each account's day summaries (what the daily history is made of), so
# that a rebuild need not re-validate every snapshot: docs/decisions.md §55.
TOPIC_DAY_SUMMARIES: Final = "obs.day-summaries.v1"

TOPICS: Final[tuple[TopicSpec, ...]] = (
    TopicSpec(TOPIC_METRICS, 12, FOREVER),
    TopicSpec(TOPIC_ACCOUNTS, 1, FOREVER, compacted=True),
    TopicSpec(TOPIC_SCORES, 12, 30 * DAY_MS),
    TopicSpec(TOPIC_RANK_CHANGES, 8, FOREVER),
    TopicSpec(TOPIC_DEAD_LINKS, 4, FOREVER),
    TopicSpec(TOPIC_EDITIONS, 1, FOREVER, compacted=True),
    TopicSpec(TOPIC_COMMANDS, 1, FOREVER),
    TopicSpec(TOPIC_COMMAND_RESULTS, 1, FOREVER, compacted=True),
    # partition p holds the summaries of obs.metrics.v1's partition p (keyed by its number)
    TopicSpec(TOPIC_DAY_SUMMARIES, 12, FOREVER),
)
TOPICS_BY_NAME: Final[dict[str, TopicSpec]] = {t.name: t for t in TOPICS}

# Every consumed topic has a dead-letter topic: 1 partition, 30 days.
CONSUMED_TOPICS: Final[tuple[str, ...]] = (
    TOPIC_METRICS,
    TOPIC_ACCOUNTS,
    TOPIC_SCORES,
    TOPIC_COMMANDS,
)
DLQ_TOPICS: Final[tuple[TopicSpec, ...]] = tuple(
    TopicSpec(f"{name}.dlq", 1, 30 * DAY_MS) for name in CONSUMED_TOPICS
)
ALL_TOPICS: Final[tuple[TopicSpec, ...]] = TOPICS + DLQ_TOPICS
ALL_TOPICS_BY_NAME: Final[dict[str, TopicSpec]] = {t.name: t for t in ALL_TOPICS}
