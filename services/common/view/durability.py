"""Replicated before committed: a batch's Redis writes are on N replicas of every master before
the batch's offsets are committed or a record derived from them is produced.

Redis replicates asynchronously: a master killed right after it acknowledged writes may fail
over to a replica that never received them, and a consumer that had already committed the
offsets of the records behind those writes has lost them from the view for good. `WAIT n t`
blocks until n replicas acknowledge the replication offset of the *connection's* last write
(redis.io/commands/wait), and redis-py hands out any free connection of a pool. So, on each
master, on one connection: a small write (a marker key, whose offset is the master's current
replication offset and so covers every earlier write of every client), then WAIT on that same
connection, both in one pipeline. On a cluster the marker's key is in a slot the master owns
(found from the client's slot map), and the pipeline goes to that master's `ClusterNode`.

A WAIT on the master serving a slot now says nothing of writes acknowledged by the one that
served it before a failover, and redis-py follows a failover silently (it refreshes its slot map
and retries the command). So a check also counts the client's slot-map changes (redis-py
announces every refresh and every MOVED-driven change, `AsyncAfterSlotsCacheRefreshEvent`): if
the map changed since the unit of work began, the check raises `ReplicationUncertain`, a Redis
error, and the caller's retry applies the batch again (its writes are idempotent) on the
masters of now. A unit begins at `begin()` (the tasks it creates share it), or else at the
previous check of the same asyncio task (a long-lived agent: its batches are sequential).
Changes a client saw before its first check (a MOVED while a new cluster settles, say) cannot
be dated: the first check of each unit then raises once, conservatively. A marker whose master
fails, or whose slot moved or is being migrated (MOVED, ASK), fails the check (a Redis error:
the batch is retried) and makes the next one read the slot map afresh.

With `redis_wait_replicas = 0` a check does nothing, without a round trip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.crc import key_slot
from redis.event import AsyncAfterSlotsCacheRefreshEvent, AsyncEventListenerInterface
from redis.exceptions import RedisClusterException, RedisError

from services.common.settings import Settings

MARKER = "obs:wait:{%d}"  # the marker a check writes on each master (hash tag: the number)
_MARKER_SEARCH = 1 << 20  # candidate markers tried per slot map (a master owns >= 1 slot)


class ReplicationUncertain(RedisError):
    """The slot map changed since this unit of work's previous check: its writes may have gone
    to a master that has since been replaced. Apply the batch again."""


@dataclass(slots=True)
class _Unit:
    """What a unit of work's check compares with: the slot-map changes counted at its start."""

    watch: _Watch | None
    changes: int


class _Watch:
    """The replication state of one client: its slot-map changes, the markers, the checks."""

    def __init__(self, client: Redis | RedisCluster) -> None:
        self.client = client
        self.cluster = isinstance(client, RedisCluster)
        self.changes = 0  # slot-map changes counted since this watch began
        # What a unit without a baseline compares with: 0 if no change can have preceded the
        # watch, 1 if the client's first slot map is still to come (its first refresh is not
        # a change), -1 if a change may have preceded it (every such unit checks once more).
        self.initial = 0
        self.stale = False  # a marker's master failed: refresh the slot map before the next
        self.targets: list[tuple[ClusterNode | None, str]] = []
        self.targets_at: int | None = None  # the change count the targets were found at
        self.lock = asyncio.Lock()
        self.started = 0  # checks started (numbered), and the number of the last that succeeded
        self.completed = 0
        if isinstance(client, RedisCluster):
            manager = client.nodes_manager
            epoch = getattr(manager, "_epoch", 0)
            if epoch == 0:
                self.initial = 1
            elif epoch > 1 or client.reinitialize_counter or getattr(client, "_initialize", False):
                self.initial = -1
            # redis-py's own ClusterPubSub listens to the nodes manager's dispatcher this way.
            manager._event_dispatcher.register_listeners(
                {AsyncAfterSlotsCacheRefreshEvent: [_SlotMapListener(self)]}
            )

    async def current_targets(self) -> list[tuple[ClusterNode | None, str]]:
        """Each master with its marker key (a plain client: one master, node None)."""
        if not isinstance(self.client, RedisCluster):
            return [(None, MARKER % 0)]
        if self.stale:
            await self.client.nodes_manager.initialize()
            self.stale = False
        else:
            await self.client.initialize()  # a no-op once the slot map is known
        if self.targets_at != self.changes:
            self.targets = _markers(self.client.nodes_manager.slots_cache)
            self.targets_at = self.changes
        return self.targets


class _SlotMapListener(AsyncEventListenerInterface):
    def __init__(self, watch: _Watch) -> None:
        self.watch = watch

    async def listen(self, event: object) -> None:
        self.watch.changes += 1


def _markers(slots: dict[int, list[ClusterNode]]) -> list[tuple[ClusterNode | None, str]]:
    """One marker key per master of the slot map, in a slot that master owns."""
    masters = {nodes[0].name: nodes[0] for nodes in slots.values() if nodes}
    found: dict[str, str] = {}
    for number in range(_MARKER_SEARCH):
        key = MARKER % number
        owners = slots.get(key_slot(key.encode()))
        if owners and owners[0].name in masters and owners[0].name not in found:
            found[owners[0].name] = key
            if len(found) == len(masters):
                break
    if len(found) < len(masters):
        raise RedisClusterException(f"no marker key found for {sorted(set(masters) - set(found))}")
    return [(masters[name], key) for name, key in sorted(found.items())]


class Replication:
    """Makes sure every write this process made so far is on `redis_wait_replicas` replicas
    of every master it may have written, before a batch is committed (`ensure`)."""

    def __init__(
        self,
        settings: Settings,
        timeouts: Counter | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.replicas = settings.redis_wait_replicas
        self.timeout_ms = settings.redis_wait_timeout_ms
        self.timeouts = timeouts
        self.log = log or logging.getLogger(__name__)
        self._watch: _Watch | None = None
        self._unit: ContextVar[_Unit | None] = ContextVar(f"replication-{id(self)}", default=None)
        self._behind_since: float | None = None  # a wait fell short: since when (one warning)

    def begin(self) -> None:
        """A unit of work starts in this context (tasks it creates share it): its check will
        compare the slot map with the one of now."""
        if self.replicas:
            watch = self._watch
            self._unit.set(_Unit(watch, 0 if watch is None else watch.changes))

    async def ensure(self, client: Redis | RedisCluster) -> None:
        """Return once every earlier write is on enough replicas of every master; retry WAIT
        as long as it falls short. A Redis error propagates (`ReplicationUncertain` when the
        slot map changed since this unit's previous check): apply the batch again."""
        if not self.replicas:
            return
        watch = self._watch
        if watch is None or watch.client is not client:
            watch = self._watch = _Watch(client)
        await watch.current_targets()  # the client's first slot map, or a refresh, first
        self._unchanged(watch)
        ticket = watch.started
        async with watch.lock:
            # A check that started after this call and succeeded covers this call's writes.
            if watch.completed <= ticket:
                watch.started += 1
                number = watch.started
                if await self._wait(watch):
                    watch.completed = number
        self._unchanged(watch)

    def _unchanged(self, watch: _Watch) -> None:
        """Raise `ReplicationUncertain` if the slot map changed since this unit's baseline (the
        baseline moves to now: the batch applied again is judged from here)."""
        unit = self._unit.get()
        if unit is None:
            unit = _Unit(watch, watch.initial)
            self._unit.set(unit)
        elif unit.watch is not watch:  # begun before this client was first checked
            unit.watch, unit.changes = watch, watch.initial
        if unit.changes != watch.changes:
            unit.changes = watch.changes
            raise ReplicationUncertain(
                "the Redis Cluster slot map changed since this batch's writes began (a "
                "failover?): they may have gone to a master that was replaced; applying again"
            )

    async def _wait(self, watch: _Watch) -> bool:
        """WAIT on every master until each has enough replicas; False if the slot map changed
        meanwhile (the caller's check then raises)."""
        pending = await watch.current_targets()
        changes = watch.changes  # the targets are this slot map's masters
        while pending:
            try:
                acknowledged = await asyncio.gather(
                    *(self._wait_on(watch.client, node, key) for node, key in pending)
                )
            except RedisError:  # a master gone, moved (MOVED), migrating (ASK)…
                watch.stale = watch.cluster  # …: the next check reads the slot map afresh
                raise
            behind = [
                (target, count)
                for target, count in zip(pending, acknowledged, strict=True)
                if count < self.replicas
            ]
            if watch.changes != changes:
                return False
            if not behind:
                break
            self._fell_short([(_where(watch.client, node), count) for (node, _), count in behind])
            pending = [target for target, _ in behind]
        if self._behind_since is not None:
            self.log.info(
                "the Redis replicas caught up after %.1f s", time.monotonic() - self._behind_since
            )
            self._behind_since = None
        return True

    async def _wait_on(self, client: Any, node: ClusterNode | None, key: str) -> int:
        """The marker write then WAIT, on one connection; the replicas that acknowledged."""
        if node is None:
            async with client.pipeline(transaction=False) as pipe:
                pipe.set(key, b"1")
                pipe.wait(self.replicas, self.timeout_ms)
                _, count = await pipe.execute()
            return int(count)
        commands = [
            PipelineCommand(0, "SET", key, b"1"),
            PipelineCommand(1, "WAIT", self.replicas, self.timeout_ms),
        ]
        await node.execute_pipeline(commands)
        replies = []
        for command in commands:
            if isinstance(command.result, Exception):
                raise command.result
            replies.append(command.result)
        return int(replies[1])

    def _fell_short(self, behind: list[tuple[str, int]]) -> None:
        """Count every WAIT that timed out; warn once per episode."""
        if self.timeouts is not None:
            self.timeouts.inc(len(behind))
        if self._behind_since is None:
            self._behind_since = time.monotonic()
            self.log.warning(
                "writes not yet on %d Redis replica(s) after %d ms (%s): waiting, nothing is "
                "committed until they are",
                self.replicas,
                self.timeout_ms,
                ", ".join(f"{where}: {count} acknowledged" for where, count in behind),
            )


def _where(client: Any, node: ClusterNode | None) -> str:
    if node is not None:
        return str(node.name)
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
