"""Turn validated snapshots and account changes into standings writes and score events.

The thin shell of the scorer: the methodology is pure (services.common.methodology), the
compare-and-set is Redis-side (services.common.view.scripts.scorer); this module decides which
territory entries a batch touches and which score events it announces.

Any number of workers may run these steps at once, interleaved in any way (several scorer
processes in one group, a rebalance handing the same records to two of them, a worker killed
anywhere and its records redelivered), and the view still converges to what `replay --batch`
computes. The facts it rests on, each one atomic on one Redis Cluster slot:

- a territory's account link lives in its category's slot with the offset of the
  `obs.accounts.v1` record that set it; an older record never replaces it (SET_LINKS);
- an entry is written only if its territory's link, at that instant, is the entry's own, and
  only if it is newer than the stored entry (APPLY_ENTRIES, on the same slot);
- a link changes in the same script that removes the territory's entries from the current view
  and every unpublished month (SET_LINKS);
- summaries are saved per account and month by compare-and-set, so an account's stored
  summary only ever becomes newer (ACCOUNT_CAS).

And the order of the steps on each side:

- metrics: (a) save the summaries, then (b) read who uses each handle (the global mapping,
  `obs:{meta}:accounts`: its version counter is read after the save, the cached copy used only
  when current), then (c) write the entries, each link-checked;
- accounts: (1) set the global mapping (conditional on the offset, the version bumped), then
  (2) set the category links, removing the old account's entries, then (3) read the new
  account's summaries, then (4) write the entries, link-checked.

Take a territory T whose last record (offset v) maps it to handle H, and S the newest `ok`
summary of H for some view. Let t1 be when the global mapping first holds v for T and t2 when
T's link first holds v; after t2 nothing removes T's entries again (only a newer record could)
and only entries of H pass the link check. Some attempt of v completes steps (3) and (4)
(offsets are committed only after a batch is applied), and its (3) starts after t2 > t1. Some
attempt of S's batch completes (a)-(c).

- If its (b) came after t1, it saw T -> H and wrote S to T at (c): after t2 the write lands
  and stays (nothing newer exists for H); before t2, (a) < (c) < t2 < (3), so (3) read S and
  (4) wrote it.
- If its (b) came before t1, then (a) < (b) < t1 < (3): (3) read S and (4) wrote it.

Per key, Redis is linearizable, so "before" on the version counter (b vs 1) and on the summary
bucket (a vs 3) compose into real time, across slots and nodes. Either way T's entry ends at S.
A territory whose last record unmaps it has its entries removed at t2, and nothing can write
one afterwards (no entry carries the empty link). Two workers replaying the same records
change nothing the newest record did not set. Inactivity: a sweep records its cutoff in the
category's meta, and a current entry is ranked only if at least the greater of its writer's
cutoff and that one, so a writer with an older watermark cannot rank what a newer sweep
unranked; and the sweep of the batch that advanced the watermark last unranks every entry
older than its cutoff that was written before it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from services.common.clock import from_epoch
from services.common.contracts import (
    CATEGORY_IDS,
    METHODOLOGY_VERSION,
    PLATFORM_INSTAGRAM,
    SCHEMA_VERSION,
)
from services.common.events import MetricsSnapshot, with_event_id
from services.common.history import (
    FoldedAccount,
    Window,
    day_of_epoch,
    encode_point,
    encode_raw_summary,
    fold_account,
    fold_raws,
    ordinals,
    territory_series,
)
from services.common.methodology import Score, SnapshotSummary, score_summary, score_value
from services.common.territories import Registry, Territory
from services.common.view.entries import EPOCH_OFFSET, decode_entry, encode_entry, version_epoch
from services.scorer.plan import BatchPlan, plan_batch, version_of
from services.scorer.store import AccountLink, EntryWrite, PointWrite, ScorerStore
from services.scorer.store.history import SeriesWrite

ACTIVE_SECONDS = 30 * 86400
# (territory id, handle or None, simulated, version: the record's offset in obs.accounts.v1)
AccountChange = tuple[str, str | None, bool, int]
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
    snapshots_applied: int = 0  # distinct snapshots written to at least one current entry
    edition_applied: int = 0
    ignored: int = 0  # snapshots that changed nothing (stale, duplicate, unmapped, status)
    watermark: int | None = None
    frozen_skipped: int = 0
    history_applied: int = 0  # daily history points written


class StandingsUpdater:
    """Applies batches of snapshots and account changes to the standings views."""

    def __init__(self, store: ScorerStore, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self._by_handle: dict[str, list[str]] = {}
        self._ordinals = {
            category: ordinals([t.id for t in registry.by_category(category)])
            for category in CATEGORY_IDS
        }
        self._mapping_ref: object = None

    async def _territories_by_handle(self) -> tuple[dict[str, list[str]], dict[str, AccountLink]]:
        """Which territories use each handle: the global mapping, as of now (its version
        counter is read on every call; the cached copy is used only when it is current)."""
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
        # Not `len - applied`: an account shared by several territories writes several entries.
        outcome.ignored = len(snapshots) - outcome.snapshots_applied
        return outcome

    async def apply_plan(self, plan: BatchPlan, *, announce: bool = True) -> BatchOutcome:
        """Apply what a batch (or a whole log, in a rebuild) reduces to."""
        outcome = BatchOutcome()
        if not plan.newest:
            return outcome
        watermark = await self.store.summaries.advance_watermark(plan.newest)
        outcome.watermark = watermark
        cutoff = cutoff_of(watermark)
        frozen = await self.store.summaries.frozen_months()
        # Save first, then read who uses each handle: an account change that this read misses
        # reads these summaries itself (the module docstring's argument).
        await self.store.summaries.save(plan, frozen)
        window = Window.of(None if watermark is None else day_of_epoch(watermark)[0])
        days = _account_days(plan, window)
        await self.store.history.save_accounts(
            {account: d.folded.series for account, d in days.items()}, window
        )
        by_handle, mapping = await self._territories_by_handle()

        # A summary is scored once per territory, whether it lands in the current view,
        # its month's view or both.
        scored: dict[tuple[str, bytes], Score] = {}

        def score_of(territory: Territory, summary: SnapshotSummary) -> Score:
            version = plan.version(summary)
            score = scored.get((territory.id, version))
            if score is None:
                score = score_summary(summary, territory.population)
                scored[(territory.id, version)] = score
            return score

        def entry(territory: Territory, summary: SnapshotSummary) -> EntryWrite:
            score = score_of(territory, summary)
            return _entry(territory, summary, plan.version(summary), mapping[territory.id], score)

        current: dict[str, list[EntryWrite]] = defaultdict(list)
        made: dict[str, SnapshotSummary] = {}
        landed: set[str] = set()  # event ids of the summaries written
        for (_, handle), summary in plan.current.items():
            for tid in by_handle.get(handle, ()):
                territory = self.registry[tid]
                current[territory.category].append(entry(territory, summary))
                made[tid] = summary
        for category, writes in current.items():
            written = await self.store.views.apply_entries(category, None, writes, cutoff=cutoff)
            outcome.applied += len(written)
            landed.update(made[tid].event_id for tid, _ in written)
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

        outcome.snapshots_applied = len(landed)
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

        # Each territory's series, from its account's folded points and the territory's
        # scores of those it keeps (a rebuild's plan holds every day of every account): a
        # day's score lives on only in its point's bytes, not in `scored` (millions of Score
        # objects held would make the garbage collector walk them again and again).
        history: dict[str, list[SeriesWrite]] = defaultdict(list)
        for (_, handle), account in days.items():
            for tid in by_handle.get(handle, ()):
                territory = self.registry[tid]
                score = _day_scores(scored, account, territory)
                points = territory_series(account.raws, account.folded, score)
                history[territory.category].append(
                    SeriesWrite(
                        tid,
                        self._ordinals[territory.category][tid],
                        mapping[tid].encode(),
                        points,
                    )
                )
        for category, series in history.items():
            outcome.history_applied += await self.store.history.apply_series(
                category, series, window
            )

        if watermark is None:
            return outcome  # nobody is inactive, no category has an `as_of` yet
        await self.store.history.trim(CATEGORY_IDS, window)
        evicted = await self.store.views.evict_inactive(cutoff, from_epoch(watermark))
        for category, ids in evicted.items() if announce else ():
            entries = await self.store.views.entries(category, None, ids)
            for tid, raw in zip(ids, entries, strict=True):
                if raw is not None:
                    outcome.score_events.append(self._score_event(tid, raw, "inactive"))
        return outcome

    async def apply_account(
        self, territory_id: str, handle: str | None, simulated: bool, *, version: int
    ) -> list[dict]:
        """Record a territory's account (from the record at offset `version`) and re-derive
        its unpublished entries from it."""
        return await self.apply_accounts([(territory_id, handle, simulated, version)])

    async def apply_accounts(self, changes: Sequence[AccountChange]) -> list[dict]:
        """Apply a batch of `obs.accounts.v1` records, each with its offset as its version
        (per territory the newest version wins, whatever the order the records arrive in).

        In this order (the module docstring says why it converges): the global mapping, which
        the metrics path reads to know which territories use a handle; then, per category,
        the links that entries are checked against, removing in the same script the entries
        of every territory whose account changed; then the new accounts' summaries are read
        and written, through the same link-checked compare-and-set as the metrics path.
        Every step is idempotent, so a crash anywhere is repaired by the redelivery.
        """
        final: dict[str, tuple[AccountLink, int]] = {}
        for tid, handle, simulated, version in changes:
            held = final.get(tid)
            if held is None or held[1] < version:
                final[tid] = (AccountLink(handle, simulated), version)
        if not final:
            return []
        await self.store.accounts.set_accounts(final)
        by_category: dict[str, dict[str, tuple[AccountLink, int]]] = defaultdict(dict)
        for tid, change in final.items():
            by_category[self.registry[tid].category][tid] = change
        removed: dict[str, bytes] = {}
        for done in await asyncio.gather(
            *(self.store.views.set_links(c, links) for c, links in by_category.items())
        ):
            removed.update(done)
        watermark = await self.store.summaries.watermark()
        links = {tid: link for tid, (link, _) in final.items()}
        events = await self._rederive(links, removed, cutoff_of(watermark))
        window = Window.of(None if watermark is None else day_of_epoch(watermark)[0])
        await self._rederive_history(links, window)
        return events

    async def _rederive_history(self, links: dict[str, AccountLink], window: Window) -> None:
        """Each territory's daily history from its account's stored points (read now, after
        its link is recorded): a history derived from another account is emptied first, so a
        territory's history is always its current account's, as a rebuild finds it."""
        handles = {link.handle for link in links.values() if link.handle is not None}
        raws = await self.store.history.of_accounts(PLATFORM_INSTAGRAM, handles)
        writes: dict[str, list[PointWrite]] = defaultdict(list)
        resets: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for tid, link in links.items():
            territory = self.registry[tid]
            ordinal = self._ordinals[territory.category][tid]
            resets[territory.category].append((tid, ordinal))
            for raw in fold_raws(raws.get(link.handle or "", ()), window):
                point = raw.point(territory.population)
                writes[territory.category].append(
                    PointWrite(tid, ordinal, encode_point(point), raw.day, link.encode())
                )
        for category, territories in resets.items():
            await self.store.history.reset_all(category, territories)
        for category, points in writes.items():
            await self.store.history.apply(category, points, window)

    async def _rederive(
        self, links: dict[str, AccountLink], removed: dict[str, bytes], cutoff: int
    ) -> list[dict]:
        """Write each territory's entries from its account's stored summaries (read now,
        after its link is recorded); announce what was written, and what was removed and not
        written again."""
        frozen = await self.store.summaries.frozen_months()
        handles = {link.handle for link in links.values() if link.handle is not None}
        summaries = await self.store.summaries.of_accounts(PLATFORM_INSTAGRAM, handles)
        writes: dict[tuple[str, str | None], list[EntryWrite]] = defaultdict(list)
        for tid, link in links.items():
            if link.handle is None:
                continue
            territory = self.registry[tid]
            for view, summary in summaries.get(link.handle, {}).items():
                if view is None or view not in frozen:
                    write = _entry(territory, summary, version_of(summary), link)
                    writes[(territory.category, view)].append(write)
        events: list[dict] = []
        rewritten: set[str] = set()
        for (category, view), batch in writes.items():
            written = await self.store.views.apply_entries(
                category, view, batch, cutoff=cutoff if view is None else None
            )
            if view is None:
                by_id = {w.territory_id: w.entry for w in batch}
                events += [self._score_event(tid, by_id[tid], status) for tid, status in written]
                rewritten.update(tid for tid, _ in written)
        events += [
            self._score_event(tid, raw, "inactive")
            for tid, raw in removed.items()
            if tid not in rewritten
        ]
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


@dataclass(frozen=True, slots=True)
class _AccountDays:
    """An account's daily points in a plan: the summaries, their versions and their points
    (`encode_raw`), in one order, and the points folded under the window."""

    summaries: list[SnapshotSummary]
    versions: list[bytes]
    raws: list[bytes]
    folded: FoldedAccount


def _day_scores(
    scored: dict[tuple[str, bytes], Score], account: _AccountDays, territory: Territory
) -> Callable[[int], float]:
    """A territory's score of each of its account's day summaries (those scored for its
    entries are not scored again)."""
    tid, population = territory.id, territory.population
    summaries, versions = account.summaries, account.versions

    def score(i: int) -> float:
        held = scored.get((tid, versions[i]))
        return score_value(summaries[i], population) if held is None else held.score

    return score


def _account_days(plan: BatchPlan, window: Window) -> dict[tuple[str, str], _AccountDays]:
    """Each account's daily points in a plan (the day's last second's snapshots)."""
    out: dict[tuple[str, str], tuple[list[SnapshotSummary], list[bytes], list[bytes]]] = {}
    version = plan.version
    for (platform, handle, _), same in plan.daily.items():
        held = out.get((platform, handle))
        if held is None:
            held = out[(platform, handle)] = ([], [], [])
        summaries, versions, raws = held
        summaries += same
        for summary in same:
            ver = version(summary)
            versions.append(ver)
            raws.append(encode_raw_summary(summary, version_epoch(ver)))
    return {
        account: _AccountDays(summaries, versions, raws, fold_account(raws, window))
        for account, (summaries, versions, raws) in out.items()
    }


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
        link=link.encode(),
    )
