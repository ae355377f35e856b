"""What the scorer's and the publisher's rebuilds share: `obs.metrics.v1` read once, its
partitions split between processes (`observatoire rebuild`, services/rebuild.py).

A rebuild of a generation of the view is made of parts (the scorer's, the publisher's:
`RebuildPart`). Each part prepares its keys from the small topics, folds `obs.metrics.v1`, then
completes. Records are keyed by account, so all of an account's snapshots are in one
partition: `workers` processes (spawned) each read a share of the partitions once, to the end
offsets seen when they start, and give every record, in log order and read once
(`peek_metrics`), to one fold of each part (a part may stop earlier: `metrics_until`). A fold
writes what its share decides (the keys of its accounts) and returns a summary; each part then
completes with the summaries of every share (what spans accounts: territories, indexes,
counts).

The workers start reading at once, while the parts prepare here: a fold writes nothing until
every part has prepared (the scorer's accounts applied, the publisher's frozen months
restored), so the result is the one of preparing first. With one worker the fold runs in this
process, after the preparation. Workers report their progress, their summaries and their
first error to the parent through a queue; a worker that fails or dies stops the rebuild.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from redis.asyncio import Redis

from services.common.contracts import TOPIC_METRICS, TOPICS_BY_NAME
from services.common.kafka.reader import read_topic
from services.common.settings import Settings
from services.common.validation import MetricsPeek, peek_metrics
from services.common.view.client import redis_client
from services.common.view.keys import ViewKeys

Progress = Callable[[str, int], None]  # (topic, records read)


class Fold(Protocol):
    """What one part makes of one share of `obs.metrics.v1`."""

    async def begin(self, partitions: list[int] | None) -> None:
        """Before the share's records (`partitions`: the share's; None: all of them)."""

    def add(
        self,
        raw: bytes | None,
        timestamp_ms: int | None,
        peek: MetricsPeek | None,
        position: tuple[int, int],
    ) -> None:
        """One record (its value, timestamp, first reading and (partition, offset)), in its
        partition's order."""

    async def finish(self) -> Any:
        """Write what the share decides; return a summary (picklable) for `complete`."""


# A module-level function (a spawned worker imports it by name) making a part's fold of a
# generation of the view.
FoldFactory = Callable[[Settings, Redis, ViewKeys], Fold]
# Where a part stops reading obs.metrics.v1: partition -> offset (records from there on are
# left out; a partition not named, or None, is read to the end offsets).
Until = Mapping[int, int] | None


class RebuildPart(Protocol):
    """One service's part of a rebuild."""

    name: str
    fold: FoldFactory
    metrics_until: Until
    progress: Progress | None

    async def prepare(self, redis: Redis) -> None:
        """Build what comes before `obs.metrics.v1` (from the small topics)."""

    async def complete(self, redis: Redis, shares: list[Any]) -> None:
        """Finish with the summaries of every share's fold."""


@dataclass(slots=True)
class RebuildTimes:
    """How long the rebuild took, when each part was done, and the largest worker's memory."""

    seconds: float = 0.0
    # seconds: "<part> prepare" each, "metrics" (from the start until every share is written:
    # the reading overlaps the preparations), "<part> complete" each
    phases: dict[str, float] = field(default_factory=dict)
    done: dict[str, float] = field(default_factory=dict)  # part -> seconds from the start
    largest_rss_mb: float = 0.0


async def rebuild_parts(
    settings: Settings,
    parts: Sequence[RebuildPart],
    *,
    rk: ViewKeys,
    workers: int | None = None,
) -> RebuildTimes:
    """Prepare each part of generation `rk` in order while `workers` processes (default
    `settings.rebuild_workers`) read `obs.metrics.v1` once for all of them, let their folds
    write, then complete each part in order."""
    workers = workers or settings.rebuild_workers
    times = RebuildTimes()
    started = time.perf_counter()

    def phase(name: str, since: float) -> None:
        times.phases[name] = time.perf_counter() - since

    def progress(topic: str, records: int) -> None:
        for part in parts:
            if part.progress:
                part.progress(topic, records)

    folds = [(part.fold, part.metrics_until) for part in parts]
    redis = redis_client(settings)
    try:
        async with MetricsFolds(settings, rk, folds, workers, progress) as run:
            for part in parts:
                since = time.perf_counter()
                await part.prepare(redis)
                phase(f"{part.name} prepare", since)
            run.prepared()
            shares = await run.results()
        phase("metrics", started)
        times.largest_rss_mb = max(share.rss_mb for share in shares)
        for index, part in enumerate(parts):
            since = time.perf_counter()
            await part.complete(redis, [share.summaries[index] for share in shares])
            phase(f"{part.name} complete", since)
            times.done[part.name] = time.perf_counter() - started
    finally:
        await redis.aclose()
    times.seconds = time.perf_counter() - started
    return times


@dataclass(frozen=True, slots=True)
class ShareResult:
    """One share's fold summaries (one per part, in order) and its process's peak memory."""

    summaries: list[Any]
    rss_mb: float


class MetricsFolds:
    """`obs.metrics.v1` read once through a fold of each factory (each up to its `Until`),
    writing generation `rk`: in `workers` spawned processes sharing the partitions, started on
    entering (they read, and write once `prepared` is called); with one worker, here, in
    `results`."""

    def __init__(
        self,
        settings: Settings,
        rk: ViewKeys,
        folds: Sequence[tuple[FoldFactory, Until]],
        workers: int,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.generation = rk.generation
        self.folds = [(factory, None if until is None else dict(until)) for factory, until in folds]
        self.progress = progress
        numbers = list(range(TOPICS_BY_NAME[TOPIC_METRICS].partitions))
        self.shares = [numbers[i::workers] for i in range(min(workers, len(numbers)))]
        self._processes: list[Any] = []
        self._prepared: Any = None  # a multiprocessing Event, with worker processes
        self._messages: Any = None  # their queue to this process

    async def __aenter__(self) -> MetricsFolds:
        if len(self.shares) > 1:
            context = multiprocessing.get_context("spawn")
            self._prepared = context.Event()
            self._messages = context.Queue()
            self._processes = [
                context.Process(
                    target=_worker,
                    args=(
                        self.settings,
                        self.generation,
                        self.folds,
                        share,
                        self._prepared,
                        self._messages,
                    ),
                    name=f"rebuild-metrics-{i}",
                    daemon=True,
                )
                for i, share in enumerate(self.shares)
            ]
            for process in self._processes:
                process.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
            process.join(10)

    def prepared(self) -> None:
        """Every part has prepared its keys: the folds may write."""
        if self._prepared is not None:
            self._prepared.set()

    async def results(self) -> list[ShareResult]:
        """Each share's result, once every share is read, folded and written."""
        if not self._processes:
            return [
                await _fold_share(
                    self.settings, self.generation, self.folds, None, self.progress, None
                )
            ]
        results: list[ShareResult] = []
        while len(results) < len(self._processes):
            try:
                kind, value = await asyncio.to_thread(self._messages.get, True, 1.0)
            except queue.Empty:
                dead = [p for p in self._processes if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(
                        f"rebuild worker {dead[0].name} exited with status {dead[0].exitcode}"
                    ) from None
                continue
            if kind == "progress":
                if self.progress:
                    self.progress(TOPIC_METRICS, value)
            elif kind == "done":
                results.append(value)
            else:
                raise RuntimeError(f"rebuild worker failed: {value}")
        return results


def _worker(
    settings: Settings,
    generation: int,
    folds: list[tuple[FoldFactory, dict[int, int] | None]],
    partitions: list[int],
    prepared: Any,
    messages: Any,
) -> None:
    """One rebuild process: its partitions of obs.metrics.v1 through every part's fold."""
    try:
        result = asyncio.run(
            _fold_share(
                settings,
                generation,
                folds,
                partitions,
                lambda _, n: messages.put(("progress", n)),
                lambda: asyncio.to_thread(prepared.wait),
            )
        )
    except BaseException as exc:  # reported to the parent, which stops the rebuild
        messages.put(("error", f"{type(exc).__name__}: {exc}"))
        raise
    messages.put(("done", result))


async def _fold_share(
    settings: Settings,
    generation: int,
    factories: Sequence[tuple[FoldFactory, dict[int, int] | None]],
    partitions: list[int] | None,
    progress: Progress | None,
    prepared: Callable[[], Awaitable[Any]] | None,
) -> ShareResult:
    """Read (some partitions of) obs.metrics.v1 to its end offsets through the folds; once
    the parts are `prepared`, let the folds write."""
    redis = redis_client(settings)
    rk = ViewKeys(generation)
    try:
        folds = [factory(settings, redis, rk) for factory, _ in factories]
        for fold in folds:
            await fold.begin(partitions)
        adds = [(fold.add, until) for fold, (_, until) in zip(folds, factories, strict=True)]
        async for chunk in read_topic(settings, TOPIC_METRICS, partitions=partitions):
            for record in chunk:
                raw = record.value
                peek = None if raw is None else peek_metrics(raw)
                position = (record.partition, record.offset)
                for add, until in adds:
                    if until is None or record.offset < until.get(
                        record.partition, record.offset + 1
                    ):
                        add(raw, record.timestamp, peek, position)
            if progress:
                progress(TOPIC_METRICS, len(chunk))
        if prepared is not None:
            await prepared()
        summaries = [await fold.finish() for fold in folds]
    finally:
        await redis.aclose()
    return ShareResult(summaries, peak_rss_mb())


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MiB: `VmHWM` (not getrusage's ru_maxrss,
    which a spawned process inherits from its parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
