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
from typing import Final

from services.common.clock import from_epoch
from services.common.contracts import METHODOLOGY_VERSION, PLATFORM_INSTAGRAM, SCHEMA_VERSION
from services.common.events import MetricsSnapshot, with_event_id
from services.common.methodology import Score, SnapshotSummary, score_summary
from services.common.territories import Registry, Territory
from services.common.view.entries import EPOCH_OFFSET, decode_entry, encode_entry, version_epoch
from services.scorer.plan import BatchPlan, plan_batch, version_of
from services.scorer.store import AccountLink, EntryWrite, ScorerStore

ACTIVE_SECONDS = 30 * 86400
# The current view's cutoff while there is no watermark: every entry is ranked (nobody is
# inactive), and the view still records how old its ranked entries are, so that the first
# sweep once a watermark exists finds them.
NO_CUTOFF: Final = -EPOCH_OFFSET


def cutoff_of(watermark: int | None) -> int:
    """The oldest observed_at epoch ranked under this watermark (age <= 30 days)."""
    return NO_CUTOFF if watermark is None else watermark - ACTIVE_SECONDS


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
        mapping = await self.store.accounts.mapping()
        if mapping is not self._mapping_ref:
            by_handle: dict[str, list[str]] = defaultdict(list)
            for territory_id, link in mapping.items():
                if link.handle is not None and territory_id in self.registry:
                    by_handle[link.handle].append(territory_id)
            self._by_handle, self._mapping_ref = dict(by_handle), mapping
        return self._by_handle, mapping

    async def apply_snapshots(
        self, snapshots: Sequence[MetricsSnapshot], *, announce: bool = True
    ) -> BatchOutcome:
        """Apply a batch of valid `obs.metrics.v1` snapshots (any status, any order).

        `announce=False` (a rebuild) leaves `score_events` empty: nobody would send them."""
        outcome = await self.apply_plan(plan_batch(snapshots), announce=announce)
        outcome.ignored = len(snapshots) - outcome.applied
        return outcome

    async def apply_plan(self, plan: BatchPlan, *, announce: bool = True) -> BatchOutcome:
        """Apply what a batch (or a whole log, in a rebuild) reduces to."""
        outcome = BatchOutcome()
        if not plan.newest:
            return outcome
        async with self._lock:
            watermark = await self.store.summaries.advance_watermark(plan.newest)
            outcome.watermark = watermark
            cutoff = cutoff_of(watermark)
            frozen = await self.store.summaries.frozen_months()
            await self.store.summaries.save(plan, frozen)
            by_handle, mapping = await self._territories_by_handle()

            # A summary is scored once per territory, whether it lands in the current view,
            # its month's view or both.
            scored: dict[tuple[str, bytes], Score] = {}

            def entry(territory: Territory, summary: SnapshotSummary) -> EntryWrite:
                version = plan.version(summary)
                score = scored.get((territory.id, version))
                if score is None:
                    score = score_summary(summary, territory.population)
                    scored[(territory.id, version)] = score
                return _entry(territory, summary, version, mapping[territory.id], score)

            current: dict[str, list[EntryWrite]] = defaultdict(list)
            made: dict[str, SnapshotSummary] = {}
            for (_, handle), summary in plan.current.items():
                for tid in by_handle.get(handle, ()):
                    territory = self.registry[tid]
                    current[territory.category].append(entry(territory, summary))
                    made[tid] = summary
            for category, writes in current.items():
                written = await self.store.views.apply_entries(
                    category, None, writes, cutoff=cutoff
                )
                outcome.applied += len(written)
                for tid, status in written if announce else ():
                    summary = made[tid]
                    outcome.score_events.append(
                        self._score_event_of(
                            tid,
                            mapping[tid].handle,
                            summary.observed_at,
                            scored[(tid, plan.version(summary))],
                            status,
                        )
                    )

            monthly: dict[tuple[str, str], list[EntryWrite]] = defaultdict(list)
            for (_, handle, month), summary in plan.monthly.items():
                for tid in by_handle.get(handle, ()):
                    if month in frozen:
                        outcome.frozen_skipped += 1
                        continue
                    territory = self.registry[tid]
                    monthly[(territory.category, month)].append(entry(territory, summary))
            for (category, month), writes in monthly.items():
                written = await self.store.views.apply_entries(category, month, writes, cutoff=None)
                outcome.edition_applied += len(written)

            if watermark is None:
                return outcome  # nobody is inactive, no category has an `as_of` yet
            evicted = await self.store.views.evict_inactive(cutoff, from_epoch(watermark))
            for category, ids in evicted.items() if announce else ():
                entries = await self.store.views.entries(category, None, ids)
                for tid, raw in zip(ids, entries, strict=True):
                    if raw is not None:
                        outcome.score_events.append(self._score_event(tid, raw, "inactive"))
        return outcome

    async def apply_account(
        self, territory_id: str, handle: str | None, simulated: bool
    ) -> list[dict]:
        """Record a territory's account and re-derive its unpublished entries from it."""
        return await self.apply_accounts([(territory_id, handle, simulated)])

    async def apply_accounts(self, changes: Sequence[tuple[str, str | None, bool]]) -> list[dict]:
        """Apply a batch of `obs.accounts.v1` records (the last per territory wins).

        Each changed territory's current and unpublished month entries are re-derived from its
        new account's stored summaries, in bulk: a handful of round trips per batch whatever
        its size. The mapping is recorded last: a crash in between leaves the old mapping, so
        the redelivered records re-derive again (never half applied).
        """
        final = {tid: AccountLink(handle, simulated) for tid, handle, simulated in changes}
        events: list[dict] = []
        async with self._lock:
            mapping = await self.store.accounts.mapping()
            changed = {tid: link for tid, link in final.items() if mapping.get(tid) != link}
            if not changed:
                return events
            if await self.store.summaries.months():  # some `ok` summary exists to derive from
                watermark = await self.store.summaries.watermark()
                events = await self._rederive(changed, cutoff_of(watermark))
            await self.store.accounts.set_accounts(changed)
        return events

    async def _rederive(self, changed: dict[str, AccountLink], cutoff: int) -> list[dict]:
        frozen = await self.store.summaries.frozen_months()
        months = await self.store.summaries.months()
        for category in {self.registry[tid].category for tid in changed}:
            months |= await self.store.views.edition_months(category)
        views: list[str | None] = [None, *sorted(months - frozen)]
        handles = {link.handle for link in changed.values() if link.handle is not None}
        summaries = await self.store.summaries.of_accounts(PLATFORM_INSTAGRAM, handles)
        writes: dict[tuple[str, str | None], list[EntryWrite]] = defaultdict(list)
        removals: dict[tuple[str, str | None], list[str]] = defaultdict(list)
        for tid, link in changed.items():
            territory = self.registry[tid]
            held = summaries.get(link.handle, {}) if link.handle is not None else {}
            for view in views:
                summary = held.get(view)
                if summary is None:
                    removals[(territory.category, view)].append(tid)
                else:
                    write = _entry(territory, summary, version_of(summary), link)
                    writes[(territory.category, view)].append(write)
        events: list[dict] = []
        for (category, view), ids in removals.items():
            removed = await self.store.views.remove_entries(category, view, ids)
            if view is None:
                events += [self._score_event(tid, raw, "inactive") for tid, raw in removed]
        for (category, view), batch in writes.items():
            written = await self.store.views.apply_entries(
                category, view, batch, cutoff=cutoff if view is None else None, force=True
            )
            if view is None:
                by_id = {w.territory_id: w.entry for w in batch}
                events += [self._score_event(tid, by_id[tid], status) for tid, status in written]
        return events

    def _score_event(self, territory_id: str, raw_entry: bytes, status: str) -> dict:
        """The `obs.scores.v1` event of a stored entry written (ranked) or unranked (inactive)."""
        entry = decode_entry(raw_entry)
        score = entry.score(self.registry[territory_id].population)
        return self._score_event_of(
            territory_id, entry.handle, entry.summary.observed_at, score, status
        )

    def _score_event_of(
        self, territory_id: str, handle: str | None, observed_at: str, score: Score, status: str
    ) -> dict:
        territory = self.registry[territory_id]
        return with_event_id(
            {
                "schema_version": SCHEMA_VERSION,
                "id": territory_id,
                "category": territory.category,
                "platform": PLATFORM_INSTAGRAM,
                "handle": handle,
                "observed_at": observed_at,
                "methodology_version": METHODOLOGY_VERSION,
                "status": status,
                "score": score.score,
                "indicators": score.indicators_dict(),
            }
        )


def _entry(
    territory: Territory,
    summary: SnapshotSummary,
    version: bytes,
    link: AccountLink,
    score: Score | None = None,
) -> EntryWrite:
    if score is None:
        score = score_summary(summary, territory.population)
    return EntryWrite(
        territory_id=territory.id,
        version=version,
        epoch=version_epoch(version),
        score=score.score,
        entry=encode_entry(version, link.handle, link.simulated, summary),
    )
