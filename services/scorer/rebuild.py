"""Rebuild the scorer's part of the derived view from the topics (`observatoire rebuild`).

Reads `obs.accounts.v1` then `obs.metrics.v1` from the beginning to the end offsets seen at the
start, with a bulk consumer, and applies them through the same validation, pure scoring and
Redis compare-and-set code as the live scorer (StandingsUpdater). Because every write is
idempotent and order-independent, the result equals what live processing produced. Account
records carry their offsets as versions, as in live processing, so the category links it
writes are the ones live processing holds.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from services.common.clock import from_epoch
from services.common.contracts import CATEGORY_IDS, TOPIC_ACCOUNTS, TOPIC_DAY_SUMMARIES
from services.common.history import Window, day_of_epoch
from services.common.kafka.reader import read_topic
from services.common.rebuild import FoldFactory, Until, rebuild_parts
from services.common.settings import Settings
from services.common.territories import Registry, load_registry
from services.common.validation import (
    MetricsPeek,
    Rejection,
    validate_account,
    validate_day_summaries,
)
from services.common.view.keys import ViewKeys
from services.scorer.day_summaries import Coverage, summaries_of
from services.scorer.reduce import LogReducer
from services.scorer.standings import ACTIVE_SECONDS, AccountChange, StandingsUpdater
from services.scorer.store import ScorerStore

log = logging.getLogger("rebuild")


@dataclass(slots=True)
class RebuildReport:
    """What a rebuild read, applied and rejected, and how long it took."""

    accounts: int = 0
    metrics: int = 0  # snapshot records read
    unexamined: int = 0  # of which superseded by a valid newer one: never validated
    covered: int = 0  # of which their day's points were read from obs.day-summaries.v1
    day_summaries: int = 0  # obs.day-summaries.v1 records used
    day_summaries_refused: dict[str, int] = field(default_factory=dict)  # not used, by reason
    rejected: dict[str, int] = field(default_factory=dict)
    largest_rss_mb: float = 0.0  # peak resident memory of the process(es) reading the metrics
    seconds: float = 0.0

    def reject(self, rejection: Rejection) -> None:
        self.rejected[rejection.reason] = self.rejected.get(rejection.reason, 0) + 1


async def rebuild(
    settings: Settings,
    *,
    registry: Registry | None = None,
    progress: Callable[[str, int], None] | None = None,
    workers: int | None = None,
    rk: ViewKeys,
) -> RebuildReport:
    """Build the scorer's part of a generation of the view (prepared by the caller:
    services/rebuild.py) from `obs.accounts.v1` and `obs.metrics.v1`, alone (`observatoire
    rebuild` builds it with the publisher's, reading the metrics once for both).

    The accounts are applied first, here; then `workers` processes (default
    `settings.rebuild_workers`) each read a share of the metrics topic's partitions and apply
    it (services/common/rebuild.py). That is safe because a record's key is its account, so
    one account's snapshots, and the entries of the territories using it, are all in one
    process; and because every write is a compare-and-set whose result does not depend on the
    order of the batches. A last inactivity sweep at the final watermark leaves every category
    as a single reader would.
    """
    part = ScorerRebuild(settings, rk, registry=registry, progress=progress)
    times = await rebuild_parts(settings, [part], rk=rk, workers=workers)
    part.report.largest_rss_mb = times.largest_rss_mb
    part.report.seconds = times.seconds
    return part.report


class ScorerRebuild:
    """The scorer's part of a rebuild (services/common/rebuild.py `RebuildPart`)."""

    name = "scorer"
    metrics_until: Until = None  # every record up to the end offsets

    def __init__(
        self,
        settings: Settings,
        rk: ViewKeys,
        *,
        registry: Registry | None = None,
        progress: Callable[[str, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.rk = rk
        self.registry = registry or load_registry()
        self.progress = progress
        self.report = RebuildReport()
        self.fold: FoldFactory = metrics_fold

    async def prepare(self, redis: Redis) -> None:
        """Apply `obs.accounts.v1` (to its end offsets)."""
        updater = StandingsUpdater(ScorerStore(redis, self.rk), self.registry)
        async for changes in _account_changes(
            self.settings, self.registry, self.report, self.progress
        ):
            await updater.apply_accounts(changes)
            self.report.accounts += len(changes)

    async def complete(self, redis: Redis, shares: list[dict[str, Any]]) -> None:
        """Count what the shares read, then sweep the inactive and trim the history's rank
        indexes at the final watermark."""
        for share in shares:
            self.report.metrics += share["metrics"]
            self.report.unexamined += share["unexamined"]
            self.report.covered += share["covered"]
            self.report.day_summaries += share["day_summaries"]
            for reason, count in share["day_summaries_refused"].items():
                refused = self.report.day_summaries_refused
                refused[reason] = refused.get(reason, 0) + count
            for reason, count in share["rejected"].items():
                self.report.rejected[reason] = self.report.rejected.get(reason, 0) + count
        store = ScorerStore(redis, self.rk)
        watermark = await store.summaries.watermark()
        if watermark is not None:
            await store.views.evict_inactive(watermark - ACTIVE_SECONDS, from_epoch(watermark))
            # The daily history's rank indexes that left the window at the final watermark.
            await store.history.trim(CATEGORY_IDS, Window.of(day_of_epoch(watermark)[0]))


async def _account_changes(
    settings: Settings,
    registry: Registry,
    report: RebuildReport,
    progress: Callable[[str, int], None] | None,
) -> AsyncIterator[list[AccountChange]]:
    """`obs.accounts.v1` from the beginning, chunk by chunk: the valid records of known
    territories with their offsets (the versions live processing gives them too)."""
    async for chunk in read_topic(settings, TOPIC_ACCOUNTS):
        changes: list[AccountChange] = []
        for record in chunk:
            result = validate_account(record.value, record.timestamp)
            if isinstance(result, Rejection):
                report.reject(result)
            elif result.id not in registry:
                report.reject(Rejection("unknown_territory", result.id))
            else:
                changes.append((result.id, result.handle, result.simulated, record.offset))
        yield changes
        if progress:
            progress(TOPIC_ACCOUNTS, len(chunk))


class MetricsFold:
    """One share of obs.metrics.v1, reduced as it is read and applied at once.

    The log is reduced on the live path's own validation and reduction (services/scorer/
    reduce.py): the day's last-second valid summaries per account and Paris day (the daily
    history), the newest per account and per (account, month); a record older than a valid one
    of its key is never validated. The day winners the live scorer recorded in
    obs.day-summaries.v1 (services/scorer/day_summaries.py) are read first, and a record they
    cover, if `ok`, is not validated (services/scorer/reduce.py says why). The plan is then
    applied at once through the live path's compare-and-set writes. The result is what
    applying the log batch by batch gives (the writes do not depend on the batches), for one
    write per key instead of one per snapshot."""

    def __init__(self, settings: Settings, redis: Redis, rk: ViewKeys) -> None:
        self.settings = settings
        self.updater = StandingsUpdater(ScorerStore(redis, rk), load_registry())
        self.share = RebuildReport()
        self.reducer = LogReducer(self.share.reject)
        self.coverage = Coverage()
        self.covered = 0

    async def begin(self, partitions: list[int] | None) -> None:
        """Read the share's recorded day summaries (unless OBS_REBUILD_DAY_SUMMARIES=false)."""
        if not self.settings.rebuild_day_summaries:
            return
        refused = self.share.day_summaries_refused
        async for chunk in read_topic(self.settings, TOPIC_DAY_SUMMARIES, partitions=partitions):
            for record in chunk:
                result = validate_day_summaries(record.value, record.timestamp)
                if isinstance(result, Rejection):
                    refused[result.reason] = refused.get(result.reason, 0) + 1
                    continue
                try:
                    summaries = summaries_of(result)
                except ValueError:
                    refused["summary"] = refused.get("summary", 0) + 1
                    continue
                if result.partition != record.partition:
                    refused["partition"] = refused.get("partition", 0) + 1
                    continue
                for platform, handle, summary in summaries:
                    self.reducer.plan.add_day_summary(platform, handle, summary)
                self.coverage.add(result.partition, result.first_offset, result.last_offset)
                self.share.day_summaries += 1

    def add(
        self,
        raw: bytes | None,
        timestamp_ms: int | None,
        peek: MetricsPeek | None,
        position: tuple[int, int],
    ) -> None:
        covered = self.coverage.covers(*position)
        self.covered += covered
        self.reducer.add(raw, timestamp_ms, peek, covered=covered)

    async def finish(self) -> dict[str, Any]:
        plan = self.reducer.finish()
        await self.updater.apply_plan(plan, announce=False)
        return {
            "metrics": self.reducer.read,
            "unexamined": self.reducer.skipped,
            "covered": self.covered,
            "day_summaries": self.share.day_summaries,
            "day_summaries_refused": self.share.day_summaries_refused,
            "rejected": self.share.rejected,
        }


def metrics_fold(settings: Settings, redis: Redis, rk: ViewKeys) -> MetricsFold:
    """The scorer's fold of a share of obs.metrics.v1 (`FoldFactory`)."""
    return MetricsFold(settings, redis, rk)
