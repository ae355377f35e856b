"""Rebuild the publisher's part of the derived view from the topics (`observatoire rebuild`).

Into a new generation of the view (services/cli/rebuild.py prepares it):
- published editions (and the frozen months) from `obs.editions.v1`, the published lists,
  their `seq` and last 1,000 events from `obs.rank-changes.v1`, command results from
  `obs.command-results.v1` (services/publisher/recovery.py, from the beginning);
- link status from `obs.accounts.v1` (which territory uses which handle) and `obs.metrics.v1`
  (each account's snapshots in log order), through the same pure state machine as the live
  publisher (services/common/dead_links.py): the same states, whatever the batches. The
  partitions of `obs.metrics.v1` are shared between processes (services/common/rebuild.py),
  an account's snapshots being all in one partition: each process folds its accounts' link
  states and writes them with each account's last link transitions (the same walk finds them,
  services/publisher/link_reduce.py); the territories' statuses, the dead-links index and the
  handles are written here from every share's states.

A live publisher holds meanwhile (services/publisher/hold.py): link status is read up to
where it stopped applying records, and it resumes on the new generation from there.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.dead_links import LinkState
from services.common.kafka.reader import read_account_records
from services.common.rebuild import FoldFactory, Until, rebuild_parts
from services.common.settings import Settings
from services.common.territories import Registry, load_registry
from services.common.validation import MetricsPeek, Rejection
from services.common.view.keys import ViewKeys
from services.publisher.link_reduce import LinkReducer
from services.publisher.links import account_key, dead_link_entry
from services.publisher.recovery import RecoveryReport, restore_from_topics
from services.publisher.store import PublisherStore

log = logging.getLogger("rebuild.publisher")

Account = tuple[str, str]  # (platform, handle)


@dataclass(slots=True)
class PublisherRebuildReport:
    """What the publisher's rebuild read and restored."""

    recovery: RecoveryReport = field(default_factory=RecoveryReport)
    accounts: int = 0
    snapshots: int = 0
    links: dict[str, int] = field(default_factory=dict)  # status -> accounts
    rejected: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def reject(self, rejection: Rejection) -> None:
        self.rejected[rejection.reason] = self.rejected.get(rejection.reason, 0) + 1

    def summary(self) -> str:
        seqs = sum(1 for s in self.recovery.seq.values() if s)
        return (
            f"publisher: {len(self.recovery.editions)} published editions, rank changes of "
            f"{seqs} categories, {self.recovery.command_results} command results, link status "
            f"of {sum(self.links.values())} accounts ({self.links.get('dead', 0)} dead) "
            f"from {self.accounts} account records and {self.snapshots} snapshots "
            f"in {self.seconds:.1f} s"
        )


async def rebuild_publisher(
    settings: Settings,
    *,
    registry: Registry | None = None,
    progress: Callable[[str, int], None] | None = None,
    workers: int | None = None,
    rk: ViewKeys,
    until: Mapping[str, Mapping[int, int]] | None = None,
) -> PublisherRebuildReport:
    """Build the publisher's part of a generation of the view (prepared by the caller) from
    the topics, alone (`observatoire rebuild` builds it with the scorer's, reading the metrics
    once for both). `until` stops the inputs of link status (`obs.accounts.v1`,
    `obs.metrics.v1`: topic -> partition -> offset) where a held live publisher stopped
    applying them (services/publisher/hold.py); its own topics are read to their ends.
    `workers` processes (default `settings.rebuild_workers`) share obs.metrics.v1's
    partitions."""
    part = PublisherRebuild(settings, rk, registry=registry, progress=progress, until=until)
    times = await rebuild_parts(settings, [part], rk=rk, workers=workers)
    part.report.seconds = times.seconds
    return part.report


class PublisherRebuild:
    """The publisher's part of a rebuild (services/common/rebuild.py `RebuildPart`)."""

    name = "publisher"

    def __init__(
        self,
        settings: Settings,
        rk: ViewKeys,
        *,
        registry: Registry | None = None,
        progress: Callable[[str, int], None] | None = None,
        until: Mapping[str, Mapping[int, int]] | None = None,
    ) -> None:
        self.settings = settings
        self.rk = rk
        self.registry = registry or load_registry()
        self.progress = progress
        self.report = PublisherRebuildReport()
        self.fold: FoldFactory = link_fold
        self.until = until or {}
        self.metrics_until: Until = self.until.get(TOPIC_METRICS)
        self._handles: dict[str, tuple[str, str | None]] = {}  # territory -> (platform, handle)

    async def prepare(self, redis: Redis) -> None:
        """Restore the facts of the publisher's own topics; read the handles."""
        self.report.recovery = await restore_from_topics(
            self.settings, redis, self.rk, from_start=True
        )
        accounts = read_account_records(
            self.settings,
            self.registry,
            self.report.reject,
            self.progress,
            until=self.until.get(TOPIC_ACCOUNTS),
        )
        async for records in accounts:
            for record in records:
                self._handles[record.id] = (record.platform, record.handle)
            self.report.accounts += len(records)

    async def complete(self, redis: Redis, shares: list[dict[str, Any]]) -> None:
        """The territories' statuses, the dead-links index and the handles, from every
        share's account states (which the shares wrote)."""
        judged: dict[Account, LinkState] = {}
        for share in shares:
            self.report.snapshots += share["snapshots"]
            for reason, count in share["rejected"].items():
                self.report.rejected[reason] = self.report.rejected.get(reason, 0) + count
            judged.update(
                ((platform, handle), LinkState(status, since, position))
                for platform, handle, status, since, position in share["states"]
            )
        territories: dict[Account, list[str]] = defaultdict(list)
        statuses: dict[str, dict[str, str | None]] = defaultdict(dict)
        store = PublisherStore(redis, self.rk)
        await store.links.set_handles(
            {tid: handle for tid, (_, handle) in self._handles.items() if handle is not None}
        )
        for territory_id, (platform, handle) in sorted(self._handles.items()):
            if handle is None:
                continue
            territories[(platform, handle)].append(territory_id)
            if (platform, handle) in judged:
                category = self.registry[territory_id].category
                statuses[category][territory_id] = judged[(platform, handle)].status
        dead = {
            account_key(*account): dead_link_entry(*account, state, territories.get(account, []))
            for account, state in judged.items()
            if state.status == "dead"
        }
        await store.links.save(territory_status=statuses, dead_links=dead, states={})
        for state in judged.values():
            assert state.status is not None
            self.report.links[state.status] = self.report.links.get(state.status, 0) + 1


class LinkFold:
    """One share of obs.metrics.v1 folded into its accounts' link states and transitions,
    written at once.

    Every snapshot counts for link status in log order; only those that can change an
    account's state or announce a transition are validated
    (services/publisher/link_reduce.py)."""

    def __init__(self, settings: Settings, redis: Redis, rk: ViewKeys) -> None:
        self.store = PublisherStore(redis, rk)
        self.share = PublisherRebuildReport()
        self.reducer = LinkReducer(self.share.reject)

    async def begin(self, partitions: list[int] | None) -> None:
        """Nothing to read first."""

    def add(
        self,
        raw: bytes | None,
        timestamp_ms: int | None,
        peek: MetricsPeek | None,
        position: tuple[int, int],
    ) -> None:
        self.reducer.add(raw, timestamp_ms, peek)

    async def finish(self) -> dict[str, Any]:
        judged = {
            account: state
            for account, state in self.reducer.finish().items()
            if state.status is not None
        }
        await self.store.links.save(territory_status={}, dead_links={}, states=judged)
        await self.store.links.record_transitions(self.reducer.transitions())
        return {
            "snapshots": self.reducer.read,
            "rejected": self.share.rejected,
            "states": [
                (platform, handle, state.status, state.since, state.position)
                for (platform, handle), state in judged.items()
            ],
        }


def link_fold(settings: Settings, redis: Redis, rk: ViewKeys) -> LinkFold:
    """The publisher's fold of a share of obs.metrics.v1 (`FoldFactory`)."""
    return LinkFold(settings, redis, rk)
