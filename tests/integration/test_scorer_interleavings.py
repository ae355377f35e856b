"""Several scorer workers interleaved step by step: the view still equals `replay --batch`.

Each worker is a real `StandingsUpdater` on a real redis-server, with its own caches, as a
scorer process has. Every Redis round trip (a command, or a pipeline) waits for its turn, and
hypothesis picks which waiting worker goes next, so the test explores the interleavings of
metrics batches and account changes that several processes in one group can produce: a
worker holding an old mapping, a re-derivation reading summaries just before a save, two
workers handed the same account records by a rebalance, an older record landing after a newer
one. Hypothesis may also kill a worker at any step; its work is then redelivered to a fresh
worker (new caches), as Kafka redelivers uncommitted records. Once every piece of work has
completed, the standings must equal services/common/reference.py's, key by key, and every
stored entry must carry its territory's final account.

A pipeline is one step here (its commands are not interleaved with others'): the scorer's
pipelines are reads, or writes each atomic on its own, none of which the convergence argument
(services/scorer/standings.py) needs to be adjacent.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis as sync_redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from services.common.contracts import CATEGORY_IDS
from services.common.events import MetricsSnapshot, build_account_record, build_metrics_event
from services.common.localstack import RedisServer
from services.common.reference import compute_standings
from services.common.territories import Registry, load_registry
from services.common.view.entries import decode_entry
from services.common.view.keys import ViewKeys
from services.common.view.scripts import all_scripts
from services.scorer.standings import StandingsUpdater
from services.scorer.store import ScorerStore
from tests.services import standings_from_redis

rk = ViewKeys(0)  # the generation a fresh view starts in

TERRITORIES = ("dep-32", "dep-33", "dep-31", "reg-76")  # two categories, two slots
HANDLES = ("compte_a", "compte_b", "compte_c")  # three accounts: a watermark exists
START = datetime(2021, 5, 20, 6, 0, tzinfo=UTC)  # snapshots span May, June and July
NOW_MS = int((START + timedelta(days=90)).timestamp() * 1000)
DATABASE = 11

_actor: contextvars.ContextVar[int] = contextvars.ContextVar("actor")


class Killed(Exception):
    """The worker is killed before this round trip."""


class Scheduler:
    """Lets one coroutine run at a time, up to its next Redis round trip; the test chooses
    which waiting round trip goes next, and whether its worker is killed instead. (A worker may
    have several round trips waiting at once: it runs some concurrently.)"""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[None]] = {}  # step -> its go-ahead
        self.busy = 0  # round trips released and not yet answered
        self.idle = asyncio.Event()
        self._steps = 0

    async def turn(self) -> bool:
        """Wait for this round trip's turn (False: not a worker's, no turn needed)."""
        if _actor.get(None) is None:
            return False
        future = asyncio.get_running_loop().create_future()
        self._steps += 1
        self.waiting[self._steps] = future
        await future
        return True

    def answered(self) -> None:
        self.busy -= 1
        if not self.busy:
            self.idle.set()

    def release(self, step: int, *, kill: bool) -> None:
        future = self.waiting.pop(step)
        if kill:
            future.set_exception(Killed())
        else:
            self.busy += 1
            self.idle.clear()
            future.set_result(None)

    async def settle(self) -> None:
        """Wait until the round trip released is answered and every coroutine has run on to
        its next round trip or its end (pure computation: a few passes of the loop)."""
        while self.busy:
            await self.idle.wait()
        for _ in range(QUIET_PASSES):
            await asyncio.sleep(0)


QUIET_PASSES = 50
_scheduler: contextvars.ContextVar[Scheduler] = contextvars.ContextVar("scheduler")


class GatedPipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        scheduler = _scheduler.get()
        gated = bool(self.command_stack) and await scheduler.turn()
        try:
            return await super().execute(raise_on_error)
        finally:
            if gated:
                scheduler.answered()


class GatedRedis(Redis):
    """A client whose every round trip waits for the scheduler."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        scheduler = _scheduler.get()
        gated = await scheduler.turn()
        try:
            return await super().execute_command(*args, **options)
        finally:
            if gated:
                scheduler.answered()

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return GatedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


@dataclass
class Work:
    """One piece of consumed input: a metrics batch or a batch of account records."""

    snapshots: list[MetricsSnapshot] = field(default_factory=list)
    accounts: list[tuple[str, str | None, bool, int]] = field(default_factory=list)

    async def apply(self, updater: StandingsUpdater) -> None:
        if self.snapshots:
            outcome = await updater.apply_snapshots(self.snapshots)
            assert 0 <= outcome.ignored <= len(self.snapshots)
        else:
            await updater.apply_accounts(self.accounts)


async def _interleave(
    url: str, registry: Registry, queues: list[list[Work]], draw: Callable[[int], int]
) -> int:
    """Run one worker per queue, interleaved by `draw`; returns how many workers were killed.
    A killed worker's unfinished piece of work goes to a fresh worker (its redelivery)."""
    scheduler = Scheduler()
    _scheduler.set(scheduler)
    client = GatedRedis.from_url(url)
    tasks: dict[int, asyncio.Task[None]] = {}
    killed = 0

    async def worker(actor: int, queue: list[Work]) -> None:
        _actor.set(actor)
        updater = StandingsUpdater(ScorerStore(client, ViewKeys(0)), registry)
        for index, work in enumerate(queue):
            try:
                await work.apply(updater)
            except Killed:
                start(queue[index:])  # redelivered from the uncommitted piece on
                return

    def start(queue: list[Work]) -> None:
        actor = len(tasks)
        tasks[actor] = asyncio.get_running_loop().create_task(worker(actor, queue))

    try:
        for script in all_scripts():  # loaded now, so that no run has extra round trips
            await client.script_load(script.source)
        for queue in queues:
            start(queue)
        await scheduler.settle()
        while scheduler.waiting:
            ready = sorted(scheduler.waiting)
            choice = draw(2 * len(ready) + 4)  # the last four: no kill (kills stay rarer)
            kill = choice < len(ready) and killed < 3
            step = ready[choice % len(ready)] if choice < 2 * len(ready) else ready[0]
            killed += kill
            scheduler.release(step, kill=kill)
            await scheduler.settle()
        for task in tasks.values():
            task.result()  # any other failure is the test's
    finally:
        for task in tasks.values():
            task.cancel()
        await client.aclose()
    return killed


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[dict], list[dict]]:
    """Snapshots, and account records in offset order."""
    n_snapshots = draw(st.integers(3, 14))
    metrics = []
    for _ in range(n_snapshots):
        handle = draw(st.sampled_from(HANDLES))
        observed = START + timedelta(days=draw(st.integers(0, 55)), hours=draw(st.integers(0, 3)))
        status = draw(st.sampled_from(["ok", "ok", "ok", "error"]))
        counts = (
            {"followers": draw(st.integers(0, 50_000)), "follows": 100, "media_count": 10}
            if status == "ok"
            else {}
        )
        metrics.append(
            build_metrics_event(
                handle=handle, observed_at=observed, status=status, source="sim", **counts
            )
        )
    # Every territory first gets an account, then switches, unmappings and switch-backs.
    initial = [(tid, draw(st.sampled_from(HANDLES))) for tid in TERRITORIES]
    later = draw(
        st.lists(
            st.tuples(st.sampled_from(TERRITORIES), st.sampled_from((*HANDLES, None))),
            min_size=1,
            max_size=8,
        )
    )
    accounts = [
        build_account_record(territory_id=tid, handle=handle, changed_at=START)
        for tid, handle in [*initial, *later]
    ]
    return metrics, accounts


def _split(draw: st.DrawFn, items: list, most: int) -> list[list]:
    """Consecutive batches (as a consumer reads them)."""
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(items) - 1)), max_size=most - 1)))
    bounds = [0, *[c for c in cuts if c < len(items)], len(items)]
    return [items[a:b] for a, b in itertools.pairwise(bounds) if items[a:b]]


@pytest.fixture(scope="module")
def url(redis_server: RedisServer) -> str:
    return f"{redis_server.url.rsplit('/', 1)[0]}/{DATABASE}"


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_interleaving_of_workers_converges_to_the_batch_standings(url: str, data: Any):
    registry = load_registry()
    metrics, accounts = data.draw(scenarios())
    snapshots = [MetricsSnapshot.model_validate(event) for event in metrics]
    changes = [
        (record["id"], record["handle"], record["simulated"], offset)
        for offset, record in enumerate(accounts)
    ]
    work = [Work(snapshots=batch) for batch in _split(data.draw, snapshots, 4)]
    work += [Work(accounts=batch) for batch in _split(data.draw, changes, 4)]
    # Deal the work to two or three workers, in any order; a rebalance may hand a piece to two.
    n_workers = data.draw(st.integers(2, 3))
    order = data.draw(st.permutations(range(len(work))))
    queues: list[list[Work]] = [[] for _ in range(n_workers)]
    for index in order:
        queues[data.draw(st.integers(0, n_workers - 1))].append(work[index])
    for index in data.draw(st.lists(st.sampled_from(range(len(work))), max_size=2)):
        queues[data.draw(st.integers(0, n_workers - 1))].append(work[index])

    client = sync_redis.Redis.from_url(url)
    client.flushdb()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(
            _interleave(url, registry, queues, lambda n: data.draw(st.integers(0, n - 1)))
        )
    finally:
        loop.close()

    expected = compute_standings(
        [orjson.dumps(event) for event in metrics],
        account_lines=[orjson.dumps(record) for record in accounts],
        now_ms=NOW_MS,
        bundled=(),
    )
    current, editions = standings_from_redis(url)
    assert current == expected.current
    assert editions == expected.editions
    final = {record["id"]: record["handle"] for record in accounts}
    assert _stored_handles(client) <= {(tid, final[tid]) for tid in final if final[tid]}
    client.close()


def _stored_handles(client: sync_redis.Redis) -> set[tuple[str, str | None]]:
    """(territory, handle) of every entry stored in any standings view."""
    found = set()
    for category in CATEGORY_IDS:
        months = [m.decode() for m in client.smembers(rk.edition_months_key(category))]
        for edition in [None, *months]:
            entries = client.hgetall(rk.entry_key(rk.view_prefix(category, edition)))
            found |= {(tid.decode(), decode_entry(raw).handle) for tid, raw in entries.items()}
    return found
