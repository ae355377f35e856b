"""Rebuild the publisher's part of the derived view from the topics (`observatoire rebuild`).

Into a new generation of the view (services/cli/rebuild.py prepares it):
- published editions (and the frozen months) from `obs.editions.v1`, the published lists,
  their `seq` and last 1,000 events from `obs.rank-changes.v1`, command results from
  `obs.command-results.v1` (services/publisher/recovery.py, from the beginning);
- link status from `obs.accounts.v1` (which territory uses which handle) and `obs.metrics.v1`
  (each account's snapshots in log order), through the same pure state machine as the live
  publisher (services/common/dead_links.py): the same states, whatever the batches.

A live publisher holds meanwhile (services/publisher/hold.py): link status is read up to
where it stopped applying records, and it resumes on the new generation from there.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.kafka.reader import TopicReader, read_account_records
from services.common.settings import Settings
from services.common.territories import Registry, load_registry
from services.common.validation import Rejection
from services.common.view.client import redis_client
from services.common.view.keys import ViewKeys
from services.publisher.link_reduce import LinkReducer
from services.publisher.links import account_key, dead_link_entry
from services.publisher.recovery import RecoveryReport, restore_from_topics
from services.publisher.store import PublisherStore

log = logging.getLogger("rebuild.publisher")


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
    rk: ViewKeys,
    until: Mapping[str, Mapping[int, int]] | None = None,
) -> PublisherRebuildReport:
    """Build the publisher's part of a generation of the view (prepared by the caller) from
    the topics. `until` stops the inputs of link status (`obs.accounts.v1`,
    `obs.metrics.v1`: topic -> partition -> offset) where a held live publisher stopped
    applying them (services/publisher/hold.py); its own topics are read to their ends."""
    report = PublisherRebuildReport()
    started = time.perf_counter()
    registry = registry or load_registry()
    redis = redis_client(settings)
    try:
        report.recovery = await restore_from_topics(settings, redis, rk, from_start=True)
        await _rebuild_links(
            settings, PublisherStore(redis, rk), registry, report, progress, until or {}
        )
    finally:
        await redis.aclose()
    report.seconds = time.perf_counter() - started
    return report


async def _rebuild_links(
    settings: Settings,
    store: PublisherStore,
    registry: Registry,
    report: PublisherRebuildReport,
    progress: Callable[[str, int], None] | None,
    until: Mapping[str, Mapping[int, int]],
) -> None:
    handles: dict[str, tuple[str, str | None]] = {}  # territory -> (platform, handle)
    accounts = read_account_records(
        settings, registry, report.reject, progress, until=until.get(TOPIC_ACCOUNTS)
    )
    async for records in accounts:
        for record in records:
            handles[record.id] = (record.platform, record.handle)
        report.accounts += len(records)
    # Every snapshot counts for link status in log order; only those that can change an
    # account's state are validated (services/publisher/link_reduce.py).
    reducer = LinkReducer(report.reject)
    async with TopicReader(settings, TOPIC_METRICS, until=until.get(TOPIC_METRICS)) as reader:
        async for chunk in reader:
            for record in chunk:
                reducer.add(record.value, record.timestamp)
            if progress:
                progress(TOPIC_METRICS, len(chunk))
    states = reducer.finish()
    report.snapshots += reducer.read
    territories: dict[tuple[str, str], list[str]] = defaultdict(list)
    statuses: dict[str, dict[str, str | None]] = defaultdict(dict)
    await store.links.set_handles(
        {tid: handle for tid, (_, handle) in handles.items() if handle is not None}
    )
    for territory_id, (platform, handle) in sorted(handles.items()):
        if handle is None:
            continue
        territories[(platform, handle)].append(territory_id)
        status = states[(platform, handle)].status if (platform, handle) in states else None
        if status is not None:
            statuses[registry[territory_id].category][territory_id] = status
    judged = {account: state for account, state in states.items() if state.status is not None}
    dead = {
        account_key(*account): dead_link_entry(*account, state, territories.get(account, []))
        for account, state in judged.items()
        if state.status == "dead"
    }
    await store.links.save(territory_status=statuses, dead_links=dead, states=judged)
    for state in judged.values():
        assert state.status is not None
        report.links[state.status] = report.links.get(state.status, 0) + 1
