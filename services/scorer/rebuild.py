"""Rebuild the scorer's part of the derived view from the topics (`observatoire rebuild`).

Reads `obs.accounts.v1` then `obs.metrics.v1` from the beginning to the end offsets seen at the
start, with a bulk consumer, and applies them through the same validation, pure scoring and
Redis compare-and-set code as the live scorer (StandingsUpdater). Because every write is
idempotent and order-independent, the result equals what live processing produced. Account
records carry their offsets as versions, as in live processing, so the category links it
writes are the ones live processing holds.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import queue
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.clock import from_epoch
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS, TOPICS_BY_NAME
from services.common.kafka.reader import read_topic
from services.common.settings import Settings
from services.common.territories import Registry, load_registry
from services.common.validation import Rejection, validate_account
from services.common.view.client import redis_client
from services.common.view.keys import ViewKeys
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
    services/cli/rebuild.py) from `obs.accounts.v1` and `obs.metrics.v1`.

    The accounts are applied first, here; then `workers` processes (default
    `settings.rebuild_workers`) each read a share of the metrics topic's partitions and apply
    it. That is safe because a record's key is its account, so one account's snapshots, and
    the entries of the territories using it, are all in one process; and because every write
    is a compare-and-set whose result does not depend on the order of the batches. A last
    inactivity sweep at the final watermark leaves every category as a single reader would.
    """
    report = RebuildReport()
    started = time.perf_counter()
    registry = registry or load_registry()
    workers = workers or settings.rebuild_workers
    redis = redis_client(settings)
    try:
        store = ScorerStore(redis, rk)
        updater = StandingsUpdater(store, registry)
        async for changes in _account_changes(settings, registry, report, progress):
            await updater.apply_accounts(changes)
            report.accounts += len(changes)
        if workers <= 1:
            await _apply_metrics(settings, updater, report, None, progress)
            report.largest_rss_mb = _peak_rss_mb()
        else:
            await _apply_metrics_in_processes(settings, rk, workers, report, progress)
        watermark = await store.summaries.watermark()
        if watermark is not None:
            await store.views.evict_inactive(watermark - ACTIVE_SECONDS, from_epoch(watermark))
    finally:
        await redis.aclose()
    report.seconds = time.perf_counter() - started
    return report


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


async def _apply_metrics(
    settings: Settings,
    updater: StandingsUpdater,
    report: RebuildReport,
    partitions: list[int] | None,
    progress: Callable[[str, int], None] | None,
) -> None:
    """Read (some partitions of) obs.metrics.v1 to its end offsets and apply it.

    The log is reduced as it is read (services/scorer/reduce.py, on the live path's own
    validation and reduction): only the newest valid summary per account and per (account,
    month) is kept, and a record older than a valid one of its account and month is never
    validated. The plan is then applied at once through the live path's compare-and-set
    writes. The result is what applying the log batch by batch gives (the writes do not depend
    on the batches), for one write per account and month instead of one per snapshot."""
    reducer = LogReducer(report.reject)
    async for chunk in read_topic(settings, TOPIC_METRICS, partitions=partitions):
        for record in chunk:
            reducer.add(record.value, record.timestamp)
        if progress:
            progress(TOPIC_METRICS, len(chunk))
    plan = reducer.finish()
    report.metrics += reducer.read
    report.unexamined += reducer.skipped
    await updater.apply_plan(plan, announce=False)


async def _apply_metrics_in_processes(
    settings: Settings,
    rk: ViewKeys,
    workers: int,
    report: RebuildReport,
    progress: Callable[[str, int], None] | None,
) -> None:
    numbers = list(range(TOPICS_BY_NAME[TOPIC_METRICS].partitions))
    shares = [numbers[i::workers] for i in range(min(workers, len(numbers)))]
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    processes = [
        context.Process(
            target=_metrics_worker,
            args=(settings, rk.generation, share, messages),
            name=f"rebuild-metrics-{i}",
            daemon=True,
        )
        for i, share in enumerate(shares)
    ]
    for process in processes:
        process.start()
    running = len(processes)
    try:
        while running:
            try:
                kind, value = await asyncio.to_thread(messages.get, True, 1.0)
            except queue.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(
                        f"rebuild worker {dead[0].name} exited with status {dead[0].exitcode}"
                    ) from None
                continue
            if kind == "progress":
                if progress:
                    progress(TOPIC_METRICS, value)
            elif kind == "done":
                running -= 1
                report.metrics += value["metrics"]
                report.unexamined += value["unexamined"]
                report.largest_rss_mb = max(report.largest_rss_mb, value["rss_mb"])
                for reason, count in value["rejected"].items():
                    report.rejected[reason] = report.rejected.get(reason, 0) + count
            else:
                raise RuntimeError(f"rebuild worker failed: {value}")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(10)


def _metrics_worker(
    settings: Settings, generation: int, partitions: list[int], messages: Any
) -> None:
    """One rebuild process: its partitions of obs.metrics.v1 through the scorer's own code."""
    try:
        asyncio.run(_metrics_share(settings, ViewKeys(generation), partitions, messages))
    except BaseException as exc:  # reported to the parent, which stops the rebuild
        messages.put(("error", f"{type(exc).__name__}: {exc}"))
        raise


async def _metrics_share(
    settings: Settings, rk: ViewKeys, partitions: list[int], messages: Any
) -> None:
    redis = redis_client(settings)
    try:
        updater = StandingsUpdater(ScorerStore(redis, rk), load_registry())
        share = RebuildReport()
        await _apply_metrics(
            settings, updater, share, partitions, lambda _, n: messages.put(("progress", n))
        )
    finally:
        await redis.aclose()
    messages.put(
        (
            "done",
            {
                "metrics": share.metrics,
                "unexamined": share.unexamined,
                "rejected": share.rejected,
                "rss_mb": _peak_rss_mb(),
            },
        )
    )


def _peak_rss_mb() -> float:
    """This process's peak resident memory, in MiB: `VmHWM` (not getrusage's ru_maxrss,
    which a spawned process inherits from its parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
