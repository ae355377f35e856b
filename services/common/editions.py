"""Monthly edition rules (pure: no I/O): may a month be published, its movement and streaks,
its parts, and which editions a log of parts holds.

ARCHITECTURE.md ("Editions"): edition `YYYY-MM` can be published once the watermark is at
least the month's end plus a grace delay, and only after the previous month unless that month
has no data at all; a month without any data is refused; publishing freezes the whole month
(every category at once) and records `movement` (places gained against the previous published
edition's full ranking, null when absent there), `streak` (consecutive published editions at
#1, 0 when not #1) and each entry's handle and link status. Our reading of "the previous month
first" (docs/publisher.md): editions are published in month order, months without data are
skipped, so every earlier month with data must be published before a later one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from services.common.clock import edition_bounds, format_timestamp, parse_edition, parse_timestamp
from services.common.contracts import CATEGORY_IDS, METHODOLOGY_VERSION, SCHEMA_VERSION
from services.common.events import with_event_id
from services.common.watermark import NO_WATERMARK_REASON

PART_SIZE: Final = 1000
ALREADY_PUBLISHED: Final = "already published"  # the start of a `done` result's reason


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a `publish_edition` command, and why."""

    action: Literal["publish", "already_published", "refuse"]
    reason: str


def publishable_at(edition: str, grace_hours: float) -> datetime:
    """The watermark from which a month may be published: its end plus the grace delay."""
    return edition_bounds(edition)[1] + timedelta(hours=grace_hours)


def publication_decision(
    edition: str,
    *,
    watermark: str | None,
    grace_hours: float,
    published: Mapping[str, str],
    months_with_data: Collection[str],
) -> Decision:
    """Whether `edition` may be published now.

    `published` maps published months to their `published_at`; `months_with_data` holds every
    month in which some territory has an `ok` snapshot (in any category).
    """
    try:
        parse_edition(edition)
    except ValueError as error:
        return Decision("refuse", str(error))
    if edition in published:
        return Decision("already_published", f"{ALREADY_PUBLISHED} at {published[edition]}")
    ready_at = publishable_at(edition, grace_hours)
    if watermark is None:
        return Decision(
            "refuse", f"edition {edition} cannot be published yet: {NO_WATERMARK_REASON}"
        )
    if parse_timestamp(watermark) < ready_at:
        return Decision(
            "refuse",
            f"edition {edition} cannot be published yet: the watermark {watermark} is before "
            f"the month's end plus the grace delay of {grace_hours:g} h "
            f"({format_timestamp(ready_at)})",
        )
    if edition not in months_with_data:
        return Decision(
            "refuse",
            f"edition {edition} has no data: no territory has an ok snapshot observed in "
            "that month",
        )
    earlier = sorted(m for m in months_with_data if m < edition and m not in published)
    if earlier:
        more = f" (then {', '.join(earlier[1:4])}{'…' if len(earlier) > 4 else ''})"
        return Decision(
            "refuse",
            f"edition {earlier[0]} must be published first{more if len(earlier) > 1 else ''}: "
            "editions are published in month order (months without data are skipped)",
        )
    return Decision("publish", f"edition {edition} is publishable")


def auto_publish_due(edition: str, *, delay_hours: float, grace_hours: float) -> datetime:
    """When (in event time) automatic publication requests a month: its end plus the larger
    of the automatic delay and the grace delay."""
    return edition_bounds(edition)[1] + timedelta(hours=max(delay_hours, grace_hours))


def auto_publish_candidate(
    *,
    watermark: str | None,
    delay_hours: float,
    grace_hours: float,
    published: Collection[str],
    months_with_data: Collection[str],
) -> str | None:
    """The month automatic publication should request now, if any: the oldest unpublished
    month with data, once the watermark has passed its due time."""
    if watermark is None:
        return None
    pending = sorted(m for m in months_with_data if m not in published)
    if not pending:
        return None
    due = auto_publish_due(pending[0], delay_hours=delay_hours, grace_hours=grace_hours)
    return pending[0] if parse_timestamp(watermark) >= due else None


# --- standings of an edition ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreviousEdition:
    """What a new edition needs from the previous published one of the same category."""

    ranks: Mapping[str, int]  # territory id -> rank
    leader_streak: int = 0  # the streak of its #1

    @property
    def leader(self) -> str | None:
        return next((tid for tid, rank in self.ranks.items() if rank == 1), None)


@dataclass(frozen=True, slots=True)
class RankedEntry:
    """One ranked territory of a frozen month, in rank order, as the scorer stored it."""

    id: str
    entry: Mapping[str, Any]  # score, observed_at, handle, indicators (from the stored entry)
    link_status: str | None


def edition_standings(
    ranked: Sequence[RankedEntry], previous: PreviousEdition | None
) -> list[dict[str, Any]]:
    """The `standings` entries of a category's edition (rank order), with movement and streak."""
    standings: list[dict[str, Any]] = []
    leader = previous.leader if previous is not None else None
    for rank, item in enumerate(ranked, start=1):
        before = previous.ranks.get(item.id) if previous is not None else None
        if rank != 1:
            streak = 0
        elif previous is not None and leader == item.id:
            streak = previous.leader_streak + 1
        else:
            streak = 1
        standings.append(
            {
                "rank": rank,
                "id": item.id,
                "score": item.entry["score"],
                "observed_at": item.entry["observed_at"],
                "movement": None if before is None else before - rank,
                "streak": streak,
                "handle": item.entry["handle"],
                "link_status": item.link_status,
                "indicators": item.entry["indicators"],
            }
        )
    return standings


def split_parts(standings: Sequence[Any], size: int = PART_SIZE) -> list[list[Any]]:
    """Consecutive parts of at most `size` entries; an empty ranking is one empty part."""
    if size < 1:
        raise ValueError("a part holds at least one entry")
    return [list(standings[i : i + size]) for i in range(0, len(standings), size)] or [[]]


def edition_parts(
    *,
    category: str,
    edition: str,
    published_at: str,
    standings: Sequence[Mapping[str, Any]],
    part_size: int = PART_SIZE,
) -> list[dict[str, Any]]:
    """The `obs.editions.v1` events (with ids) of one category's edition, parts from 1."""
    chunks = split_parts(standings, part_size)
    return [
        with_event_id(
            {
                "schema_version": SCHEMA_VERSION,
                "category": category,
                "edition": edition,
                "part": number,
                "parts": len(chunks),
                "published_at": published_at,
                "methodology_version": METHODOLOGY_VERSION,
                "standings": [dict(entry) for entry in chunk],
            }
        )
        for number, chunk in enumerate(chunks, start=1)
    ]


# --- reading editions back from the log -------------------------------------------------------


@dataclass(slots=True)
class LoggedEditions:
    """What a log of `obs.editions.v1` parts holds."""

    # month -> category -> (published_at, full standings), only for months whose 8 categories
    # are complete (every part 1..parts, one published_at)
    published: dict[str, dict[str, tuple[str, list[dict[str, Any]]]]] = field(default_factory=dict)
    # months with at least one part: they were frozen (freezing comes before the first part)
    frozen: set[str] = field(default_factory=set)


def logged_editions(parts: Iterable[Mapping[str, Any]]) -> LoggedEditions:
    """Assemble parts read in log order (later records of a key replace earlier ones)."""
    latest: dict[tuple[str, str, int], Mapping[str, Any]] = {}
    for part in parts:
        latest[(part["edition"], part["category"], part["part"])] = part
    by_category: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for (edition, category, _), part in latest.items():
        by_category.setdefault((edition, category), []).append(part)
    result = LoggedEditions(frozen={edition for edition, _, _ in latest})
    complete: dict[str, dict[str, tuple[str, list[dict[str, Any]]]]] = {}
    for (edition, category), found in by_category.items():
        published_at = max(p["published_at"] for p in found)
        current = sorted(
            (p for p in found if p["published_at"] == published_at), key=lambda p: p["part"]
        )
        parts_count = current[0]["parts"]
        if [p["part"] for p in current] != list(range(1, parts_count + 1)) or any(
            p["parts"] != parts_count for p in current
        ):
            continue
        standings = [dict(entry) for p in current for entry in p["standings"]]
        complete.setdefault(edition, {})[category] = (published_at, standings)
    for edition, categories in complete.items():
        stamps = {published_at for published_at, _ in categories.values()}
        if set(categories) == set(CATEGORY_IDS) and len(stamps) == 1:
            result.published[edition] = categories
    return result
