"""Rank-change diffing: exactly what changed between two published lists (pure: no I/O).

A category's published list is the Top N of its live standings (`contracts.CATEGORIES`,
`published_size`). Between two lists, a territory's change is `entered` (absent before),
`left` (absent after), `up` (a smaller rank) or `down` (a larger rank); a territory whose rank
is the same in both lists did not change, whatever its score did. `apply_changes` is the
inverse: a subscriber holding the previous `top` rebuilds the next one from `changes` alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from services.common.contracts import SCHEMA_VERSION
from services.common.events import with_event_id

ChangeKind = Literal["entered", "left", "up", "down"]


@dataclass(frozen=True, slots=True)
class RankChangeEntry:
    """One territory whose rank in the published list changed (`changes[]` of the event)."""

    id: str
    kind: ChangeKind
    from_rank: int | None
    to_rank: int | None
    old_score: float | None
    new_score: float | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of `obs.rank-changes.v1` `changes[]`."""
        return {
            "id": self.id,
            "kind": self.kind,
            "from_rank": self.from_rank,
            "to_rank": self.to_rank,
            "old_score": self.old_score,
            "new_score": self.new_score,
        }


def _ranks(top: Sequence[str], name: str) -> dict[str, int]:
    ranks = {territory: rank for rank, territory in enumerate(top, start=1)}
    if len(ranks) != len(top):
        raise ValueError(f"{name} repeats a territory")
    return ranks


def diff_tops(
    old_top: Sequence[str],
    new_top: Sequence[str],
    *,
    old_scores: Mapping[str, float | None] | None = None,
    new_scores: Mapping[str, float | None] | None = None,
) -> list[RankChangeEntry]:
    """Every territory whose rank differs between two lists, in the new list's order, then
    the territories that left in their old order.

    `old_scores` are the scores when `old_top` was published, `new_scores` the scores now
    (a territory missing from a mapping gets a null score there).
    """
    old_rank = _ranks(old_top, "old_top")
    new_rank = _ranks(new_top, "new_top")
    old_scores = old_scores or {}
    new_scores = new_scores or {}
    changes: list[RankChangeEntry] = []
    for territory in new_top:
        before, after = old_rank.get(territory), new_rank[territory]
        if before == after:
            continue
        kind: ChangeKind = "entered" if before is None else "up" if after < before else "down"
        changes.append(
            RankChangeEntry(
                territory,
                kind,
                before,
                after,
                old_scores.get(territory) if before is not None else None,
                new_scores.get(territory),
            )
        )
    for territory in old_top:
        if territory not in new_rank:
            changes.append(
                RankChangeEntry(
                    territory,
                    "left",
                    old_rank[territory],
                    None,
                    old_scores.get(territory),
                    new_scores.get(territory),
                )
            )
    return changes


def apply_changes(old_top: Sequence[str], changes: Sequence[Mapping[str, Any]]) -> list[str]:
    """The list after `changes` (the inverse of `diff_tops`); raises ValueError if they do
    not fit `old_top` (a missed event, a wrong rank, a hole or a clash in the new list)."""
    old_rank = _ranks(old_top, "old_top")
    moved = {change["id"] for change in changes}
    placed: dict[int, str] = {}
    size = len(old_top)
    for change in changes:
        territory, before, after = change["id"], change["from_rank"], change["to_rank"]
        if old_rank.get(territory) != before:
            raise ValueError(
                f"{territory}: from_rank {before}, but it was {old_rank.get(territory)}"
            )
        if after is not None:
            if after in placed:
                raise ValueError(f"rank {after} given to {placed[after]} and {territory}")
            placed[after] = territory
        size += (before is None) - (after is None)
    for territory in old_top:
        if territory not in moved:
            rank = old_rank[territory]
            if rank in placed:
                raise ValueError(f"rank {rank} given to {placed[rank]} but {territory} kept it")
            placed[rank] = territory
    if sorted(placed) != list(range(1, size + 1)):
        raise ValueError(f"the changes leave ranks {sorted(placed)} for a list of {size}")
    return [placed[rank] for rank in range(1, size + 1)]


def rank_change_event(
    *,
    category: str,
    seq: int,
    at: str,
    previous_top: Sequence[str],
    top: Sequence[str],
    old_scores: Mapping[str, float | None] | None = None,
    new_scores: Mapping[str, float | None] | None = None,
) -> dict[str, Any] | None:
    """The `obs.rank-changes.v1` event (with its id) from `previous_top` to `top`, or None
    when no territory's rank changed."""
    changes = diff_tops(previous_top, top, old_scores=old_scores, new_scores=new_scores)
    if not changes:
        return None
    return with_event_id(
        {
            "schema_version": SCHEMA_VERSION,
            "category": category,
            "seq": seq,
            "at": at,
            "leader": top[0] if top else None,
            "previous_leader": previous_top[0] if previous_top else None,
            "top": list(top),
            "changes": [change.to_dict() for change in changes],
        }
    )
