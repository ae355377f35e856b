"""Dead links: each account's link status from its snapshots, and each territory's from its
account (the API's `link_status`).

A thin shell around the pure state machine (services/common/dead_links.py). Per batch of
`obs.metrics.v1` snapshots: read the touched accounts' states, apply the snapshots in log
order, produce the `obs.dead-links.v1` events and await them, then write the territories'
statuses, the dead-links index with each account's transitions (its last 50, kept for the
territory's Atom feed), and last the account states. A crash anywhere in between replays
the batch from the old states: the same events again (same content, so the same `event_id`:
consumers drop duplicates by id) and the same writes (a transition recorded twice is kept
once).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence

import orjson

from services.common.commands.sender import Sender
from services.common.contracts import TOPIC_DEAD_LINKS
from services.common.dead_links import (
    LinkState,
    LinkTransition,
    SnapshotStatus,
    apply_snapshots,
    dead_link_event,
)
from services.common.events import AccountRecord, MetricsSnapshot
from services.common.territories import Registry
from services.common.view.values import DeadLink
from services.publisher import metrics as m
from services.publisher.store import PublisherStore

Account = tuple[str, str]  # (platform, handle)


def account_key(platform: str, handle: str) -> str:
    """`platform:handle`, the key of obs.metrics.v1 and obs.dead-links.v1."""
    return f"{platform}:{handle}"


def dead_link_entry(
    platform: str, handle: str, state: LinkState, territories: Iterable[str]
) -> bytes:
    """The dead-links index entry of a dead account."""
    return DeadLink(platform, handle, state.since, sorted(territories)).encode()


class LinkTracker:
    """Link status of accounts and territories."""

    def __init__(self, store: PublisherStore, send: Sender, registry: Registry) -> None:
        self.store = store
        self.send = send
        self.registry = registry
        self._handles: dict[str, str] = {}  # territory id -> handle
        self._territories: dict[str, set[str]] = defaultdict(set)  # handle -> territory ids
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """Load the account mapping the publisher has applied so far."""
        self._handles, self._territories = {}, defaultdict(set)
        for territory_id, handle in (await self.store.links.handles()).items():
            if territory_id in self.registry:
                self._remember(territory_id, handle)
        m.DEAD_LINKS.set(await self.store.links.dead_link_count())

    def _remember(self, territory_id: str, handle: str | None) -> None:
        old = self._handles.pop(territory_id, None)
        if old is not None:
            self._territories[old].discard(territory_id)
        if handle is not None:
            self._handles[territory_id] = handle
            self._territories[handle].add(territory_id)

    def territories_of(self, handle: str) -> list[str]:
        return sorted(self._territories.get(handle, ()))

    async def apply_snapshots(self, snapshots: Sequence[MetricsSnapshot]) -> list[dict]:
        """Apply a batch of valid snapshots; returns the dead-link events produced."""
        per_account: dict[Account, list[tuple[str, str, SnapshotStatus]]] = defaultdict(list)
        for snap in snapshots:
            per_account[(snap.platform, snap.handle)].append(
                (snap.observed_at, snap.event_id, snap.status)
            )
        events: list[dict] = []
        async with self._lock:
            states = await self.store.links.states(per_account)
            changed: dict[Account, LinkState] = {}
            territory_status: dict[str, dict[str, str | None]] = defaultdict(dict)
            dead_links: dict[str, bytes | None] = {}
            recorded: dict[Account, list[LinkTransition]] = {}
            for account, snaps in per_account.items():
                platform, handle = account
                old = states[account]
                new, transitions = apply_snapshots(old, snaps)
                if new == old:
                    continue
                changed[account] = new
                if transitions:
                    recorded[account] = transitions
                territories = self.territories_of(handle)
                if new.status != old.status:
                    for tid in territories:
                        territory_status[self.registry[tid].category][tid] = new.status
                for transition in transitions:
                    events.append(
                        dead_link_event(
                            platform=platform,
                            handle=handle,
                            transition=transition,
                            territories=territories,
                        )
                    )
                if new.status == "dead" and (old.status != "dead" or new.since != old.since):
                    dead_links[account_key(*account)] = dead_link_entry(
                        platform, handle, new, territories
                    )
                elif old.status == "dead" and new.status != "dead":
                    dead_links[account_key(*account)] = None
            if events:
                await self.store.fence.check_still_active()
            for event in events:  # one at a time: an account's events keep their order
                await self.send(
                    TOPIC_DEAD_LINKS,
                    account_key(event["platform"], event["handle"]).encode(),
                    orjson.dumps(event),
                )
            if changed:
                await self.store.links.save(
                    territory_status=territory_status,
                    dead_links=dead_links,
                    states=changed,
                    transitions=recorded,
                )
        for event in events:
            m.DEAD_LINK_EVENTS.labels(event["status"]).inc()
        if dead_links:
            m.DEAD_LINKS.set(await self.store.links.dead_link_count())
        return events

    async def apply_account(self, record: AccountRecord) -> bool:
        """A territory's account changed: its link status becomes the new account's."""
        territory_id, new = record.id, record.handle
        if territory_id not in self.registry:
            return False
        async with self._lock:
            old = self._handles.get(territory_id)
            if old == new:
                return False
            platform = record.platform
            accounts = [(platform, h) for h in (old, new) if h is not None]
            states = await self.store.links.states(accounts)
            status = None if new is None else states[(platform, new)].status
            dead_links: dict[str, bytes | None] = {}
            for handle in (old, new):
                if handle is None or states[(platform, handle)].status != "dead":
                    continue
                territories = set(self._territories.get(handle, ())) - {territory_id}
                if handle == new:
                    territories.add(territory_id)
                dead_links[account_key(platform, handle)] = dead_link_entry(
                    platform, handle, states[(platform, handle)], territories
                )
            category = self.registry[territory_id].category
            await self.store.links.save(
                territory_status={category: {territory_id: status}},
                dead_links=dead_links,
                states={},
            )
            await self.store.links.set_handle(territory_id, new)
            self._remember(territory_id, new)
        return True
