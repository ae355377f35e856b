"""Turn validated snapshots and account changes into standings writes and score events.

The thin shell of the scorer: the methodology is pure (services.common.methodology), the
compare-and-set is Redis-side (services.scorer.lua); this module decides which territory
entries a batch touches and which score events it announces.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.common.clock import from_epoch
from services.common.contracts import METHODOLOGY_VERSION, PLATFORM_INSTAGRAM, SCHEMA_VERSION
from services.common.events import MetricsSnapshot, with_event_id
from services.common.methodology import SnapshotSummary, score_summary
from services.common.standings_entry import decode_entry, encode_entry
from services.common.territories import Registry, Territory
from services.scorer.plan import plan_batch, version_of
from services.scorer.store import AccountLink, EntryWrite, ScorerStore

ACTIVE_SECONDS = 30 * 86400


@dataclass(slots=True)
class BatchOutcome:
    """What one batch did: events for `obs.scores.v1` and counters for metrics."""

    score_events: list[dict] = field(default_factory=list)
    applied: int = 0  # current entries written
    edition_applied: int = 0
    ignored: int = 0  # snapshots that changed nothing (stale, duplicate, unmapped, status)
    watermark: int | None = None
    frozen_skipped: int = 0


class StandingsUpdater:
    """Applies batches of snapshots and account changes to the standings views."""

    def __init__(self, store: ScorerStore, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        # One worker applies one thing at a time: account re-derivations and metric batches
        # both read-then-write the same entries.
        self._lock = asyncio.Lock()
        self._by_handle: dict[str, list[str]] = {}
        self._mapping_ref: object = None

    async def _territories_by_handle(self) -> tuple[dict[str, list[str]], dict[str, AccountLink]]:
        mapping = await self.store.mapping()
        if mapping is not self._mapping_ref:
            by_handle: dict[str, list[str]] = defaultdict(list)
            for territory_id, link in mapping.items():
                if link.handle is not None and territory_id in self.registry:
                    by_handle[link.handle].append(territory_id)
            self._by_handle, self._mapping_ref = dict(by_handle), mapping
        return self._by_handle, mapping

    async def apply_snapshots(self, snapshots: Sequence[MetricsSnapshot]) -> BatchOutcome:
        """Apply a batch of valid `obs.metrics.v1` snapshots (any status, any order)."""
        outcome = BatchOutcome()
        plan = plan_batch(snapshots)
        if plan.newest_epoch is None:
            return outcome
        async with self._lock:
            watermark = await self.store.advance_watermark(plan.newest_epoch)
            outcome.watermark = watermark
            cutoff = watermark - ACTIVE_SECONDS
            await self.store.save_summaries(plan)
            by_handle, mapping = await self._territories_by_handle()
            frozen = await self.store.frozen_months()

            current: dict[str, list[EntryWrite]] = defaultdict(list)
            for (_, handle), summary in plan.current.items():
                for tid in by_handle.get(handle, ()):
                    territory = self.registry[tid]
                    current[territory.category].append(
                        _entry(territory, summary, plan.version(summary), mapping[tid])
                    )
            for category, writes in current.items():
                written = await self.store.apply_entries(category, None, writes, cutoff=cutoff)
                outcome.applied += len(written)
                by_id = {w.territory_id: w.entry for w in writes}
                for tid, status in written:
                    outcome.score_events.append(self._score_event(tid, by_id[tid], status))

            monthly: dict[tuple[str, str], list[EntryWrite]] = defaultdict(list)
            for (_, handle, month), summary in plan.monthly.items():
                for tid in by_handle.get(handle, ()):
                    if month in frozen:
                        outcome.frozen_skipped += 1
                        continue
                    territory = self.registry[tid]
                    monthly[(territory.category, month)].append(
                        _entry(territory, summary, plan.version(summary), mapping[tid])
                    )
            for (category, month), writes in monthly.items():
                written = await self.store.apply_entries(category, month, writes, cutoff=None)
                outcome.edition_applied += len(written)

            evicted = await self.store.evict_inactive(cutoff, from_epoch(watermark))
            for category, ids in evicted.items():
                entries = await self.store.entries(category, None, ids)
                for tid, raw in zip(ids, entries, strict=True):
                    if raw is not None:
                        outcome.score_events.append(self._score_event(tid, raw, "inactive"))
        outcome.ignored = len(snapshots) - outcome.applied
        return outcome

    async def apply_account(
        self, territory_id: str, handle: str | None, simulated: bool
    ) -> list[dict]:
        """Record a territory's account and re-derive its unpublished entries from it."""
        return await self.apply_accounts([(territory_id, handle, simulated)])

    async def apply_accounts(self, changes: Sequence[tuple[str, str | None, bool]]) -> list[dict]:
        """Apply account records in order, under one lock (a batch of `obs.accounts.v1`)."""
        events: list[dict] = []
        async with self._lock:
            if await self.store.watermark() is None:
                # Nothing scored yet (a first start, a rebuild): no entry to re-derive.
                await self.store.set_accounts(
                    {tid: AccountLink(handle, simulated) for tid, handle, simulated in changes}
                )
                return events
            for territory_id, handle, simulated in changes:
                link = AccountLink(handle=handle, simulated=simulated)
                if (await self.store.mapping()).get(territory_id) == link:
                    continue
                # Re-derive first, record the mapping last: a crash in between leaves the old
                # mapping, so the redelivered record re-derives again (never half applied).
                events += await self._rederive(self.registry[territory_id], link)
                await self.store.set_account(territory_id, link)
        return events

    async def _rederive(self, territory: Territory, link: AccountLink) -> list[dict]:
        category = territory.category
        events: list[dict] = []
        watermark = await self.store.watermark()
        cutoff = None if watermark is None else watermark - ACTIVE_SECONDS
        frozen = await self.store.frozen_months()
        months = await self.store.edition_months(category) | await self.store.months()
        for month in [None, *sorted(months - frozen)]:
            summary = (
                None
                if link.handle is None
                else await self.store.summary(PLATFORM_INSTAGRAM, link.handle, month)
            )
            if summary is None:
                removed = await self.store.remove_entries(category, month, [territory.id])
                if month is None:
                    for tid, raw in removed:
                        events.append(self._score_event(tid, raw, "inactive"))
                continue
            write = _entry(territory, summary, version_of(summary), link)
            written = await self.store.apply_entries(
                category, month, [write], cutoff=cutoff if month is None else None, force=True
            )
            if month is None:
                for tid, status in written:
                    events.append(self._score_event(tid, write.entry, status))
        return events

    def _score_event(self, territory_id: str, raw_entry: bytes, status: str) -> dict:
        """The `obs.scores.v1` event of an entry written (ranked) or unranked (inactive)."""
        territory = self.registry[territory_id]
        entry = decode_entry(raw_entry)
        score = entry.score(territory.population)
        return with_event_id(
            {
                "schema_version": SCHEMA_VERSION,
                "id": territory_id,
                "category": territory.category,
                "platform": PLATFORM_INSTAGRAM,
                "handle": entry.handle,
                "observed_at": entry.summary.observed_at,
                "methodology_version": METHODOLOGY_VERSION,
                "status": status,
                "score": score.score,
                "indicators": score.indicators_dict(),
            }
        )


def _entry(
    territory: Territory, summary: SnapshotSummary, version: str, link: AccountLink
) -> EntryWrite:
    return EntryWrite(
        territory_id=territory.id,
        version=version,
        epoch=int(version.split(":", 1)[0]),
        score=score_summary(summary, territory.population).score,
        entry=encode_entry(version, link.handle, link.simulated, summary),
    )
