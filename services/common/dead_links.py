"""The link-status state machine of an account (pure: no I/O).

ARCHITECTURE.md: link status follows an account's snapshots in `observed_at` order, counting
each distinct event once: `suspect` after one `not_found`, `dead` after two consecutive
(`error` snapshots are skipped, never counted), `ok` on the next `ok`; `since` is the
`observed_at` of the first `not_found` of the run.

Each state remembers the position (`observed_at`, then `event_id`, the scorer's order) of the
last snapshot it counted. A snapshot at or before that position changes nothing: a redelivered
`not_found` counts once, and a late snapshot older than the judgement already made cannot
rewrite it (the present status is what the newest snapshots say).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from services.common.contracts import SCHEMA_VERSION
from services.common.events import with_event_id

LinkStatus = Literal["ok", "suspect", "dead"]
SnapshotStatus = Literal["ok", "not_found", "error"]
LINK_STATUSES: Final = ("ok", "suspect", "dead")
# Transitions kept per account (the publisher's store, a rebuild's fold; the territory's feed).
TRANSITIONS_KEPT: Final = 50


@dataclass(frozen=True, slots=True)
class LinkState:
    """An account's judged link: status (None before any counted snapshot), run start, position."""

    status: LinkStatus | None = None
    since: str | None = None  # observed_at of the first not_found of the current run
    position: str | None = None  # "<observed_at>|<event_id>" of the last counted snapshot

    def to_json(self) -> bytes:
        return orjson.dumps({"status": self.status, "since": self.since, "position": self.position})

    @classmethod
    def from_json(cls, raw: bytes | str) -> LinkState:
        data = orjson.loads(raw)
        return cls(status=data["status"], since=data["since"], position=data["position"])


@dataclass(frozen=True, slots=True)
class LinkTransition:
    """A change to or from `dead`: what `obs.dead-links.v1` announces (`status`, `since`), and
    `at`, the `observed_at` of the snapshot that made it (the second `not_found` of a run, or
    the `ok` that ends one): event time, so that a rebuild finds the same."""

    status: Literal["dead", "ok"]
    since: str
    at: str

    def to_json(self) -> bytes:
        return orjson.dumps({"at": self.at, "since": self.since, "status": self.status})

    @classmethod
    def from_json(cls, raw: bytes | str) -> LinkTransition:
        data = orjson.loads(raw)
        return cls(status=data["status"], since=data["since"], at=data["at"])


def position_of(observed_at: str, event_id: str) -> str:
    """The order of snapshots: observed_at (fixed-width UTC text), then event_id."""
    return f"{observed_at}|{event_id}"


def apply_snapshot(
    state: LinkState, *, observed_at: str, event_id: str, status: SnapshotStatus
) -> tuple[LinkState, LinkTransition | None]:
    """The state after one snapshot, and the transition to announce (None when none)."""
    if status == "error":
        return state, None  # transient: skipped, never counted
    position = position_of(observed_at, event_id)
    if state.position is not None and position <= state.position:
        return state, None  # a redelivery, or older than what was already judged
    if status == "ok":
        dead = state.status == "dead"
        transition = LinkTransition("ok", observed_at, observed_at) if dead else None
        return LinkState("ok", None, position), transition
    if state.status == "suspect":
        since = state.since or observed_at
        return LinkState("dead", since, position), LinkTransition("dead", since, observed_at)
    if state.status == "dead":
        return LinkState("dead", state.since, position), None
    return LinkState("suspect", observed_at, position), None


def apply_snapshots(
    state: LinkState, snapshots: Iterable[tuple[str, str, SnapshotStatus]]
) -> tuple[LinkState, list[LinkTransition]]:
    """Apply (observed_at, event_id, status) snapshots of one account in the order given.

    Consumers pass them in log order: an account's snapshots share a partition (key
    `platform:handle`), so live processing and a rebuild see the same order and reach the
    same state whatever their batches.
    """
    transitions: list[LinkTransition] = []
    for observed_at, event_id, status in snapshots:
        state, transition = apply_snapshot(
            state, observed_at=observed_at, event_id=event_id, status=status
        )
        if transition is not None:
            transitions.append(transition)
    return state, transitions


def dead_link_event(
    *, platform: str, handle: str, transition: LinkTransition, territories: Iterable[str]
) -> dict[str, Any]:
    """The `obs.dead-links.v1` event (with its id) announcing a transition."""
    return with_event_id(
        {
            "schema_version": SCHEMA_VERSION,
            "platform": platform,
            "handle": handle,
            "status": transition.status,
            "since": transition.since,
            "territories": sorted(set(territories)),
        }
    )
