"""A Redis failover loses nothing (OBS_REDIS_WAIT_REPLICAS, services/common/view/durability.py):
a batch is committed only once its writes are on the replicas of every master.

On real processes: a master and its replica (the check waits while the replica is paused and
returns once the replica holds every earlier write, whichever connection made it); a cluster
that fails over under a client that follows it silently (the check refuses to call that
replicated); and the drill: a scorer on a three-master cluster with a replica each, a replica
paused, more records, its master SIGKILLed and the replica promoted, and the view still equal to
`replay --batch`, key by key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import redis
import redis.asyncio
from prometheus_client import Counter
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from services.common.clock import utcnow
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.kafka import make_producer
from services.common.localstack import (
    ClusterNodeServer,
    LocalRedisCluster,
    LocalServiceError,
    RedisServer,
    TansuBroker,
    free_port,
)
from services.common.settings import Settings
from services.common.view.client import redis_client
from services.common.view.durability import Replication, ReplicationUncertain
from services.common.view.keys import ViewKeys
from tests.drills.plugin import Drill
from tests.golden.check import assert_same_standings, batch_standings
from tests.golden.generate import GoldenLog, generate
from tests.services import (
    ServiceProcess,
    cluster_settings,
    committed_offsets,
    fresh_stack,
    service_env,
    standings_from_redis,
    start_redis_cluster,
    wait_for,
)

TIMEOUT_MS = 200  # one WAIT: short, so that a paused replica shows within a second
NODE_TIMEOUT_MS = 1000  # the cluster's failure detection: a failover takes ~2-3 s
DRILL_EVENTS = 3000


def _counter() -> Counter:
    return Counter("obs_test_replica_wait_timeouts", "test", registry=None)


def _count(counter: Counter) -> float:
    return next(s.value for s in counter.collect()[0].samples if s.name.endswith("_total"))


def _redis(log_path: Path) -> RedisServer:
    """A redis-server on a free port (a port taken meanwhile is retried; never a skip)."""
    error: LocalServiceError | None = None
    for _attempt in range(3):
        try:
            return RedisServer(free_port(), log_path).start()
        except LocalServiceError as exc:
            error = exc
    pytest.fail(f"redis-server could not start.\n{error}", pytrace=False)


def _in_sync(master: RedisServer, replica: RedisServer) -> bool:
    with contextlib.closing(master.client()) as client:
        info = client.info("replication")
    slave = info.get("slave0") or {}
    return (
        info["connected_slaves"] == 1
        and slave.get("state") == "online"
        and slave.get("offset") == info["master_repl_offset"]
    )


@contextlib.contextmanager
def _paused(pid: int | None) -> Iterator[None]:
    """The process stopped (SIGSTOP) for the block, resumed (SIGCONT) after, whatever happens."""
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A master and its replica, two redis-server processes (`REPLICAOF`)."""
    master = _redis(tmp_path / "master.log")
    replica = _redis(tmp_path / "replica.log")
    try:
        with contextlib.closing(master.client()) as client:  # the first sync at once
            client.config_set("repl-diskless-sync-delay", 0)
        with contextlib.closing(replica.client()) as client:
            client.replicaof(master.host, master.port)
        wait_for(lambda: _in_sync(master, replica), timeout=15, what="the replica in sync")
        yield master, replica
    finally:
        replica.stop()
        master.stop()


async def test_the_check_waits_while_the_replica_is_paused_and_returns_once_it_has_every_write(
    pair: tuple[RedisServer, RedisServer], caplog: pytest.LogCaptureFixture
):
    master, replica = pair
    caplog.set_level(logging.INFO, logger="test.durability")
    settings = Settings(
        _env_file=None,
        redis_url=master.url,
        redis_wait_replicas=1,
        redis_wait_timeout_ms=TIMEOUT_MS,
    )
    timeouts = _counter()
    replication = Replication(settings, timeouts, logging.getLogger("test.durability"))
    client = redis.asyncio.Redis.from_url(master.url)
    other = redis.asyncio.Redis.from_url(master.url)  # another client: its own connections
    try:
        await client.set("before", b"0")
        await asyncio.wait_for(replication.ensure(client), timeout=5)  # the replica is there
        # (on a busy machine even that may take a WAIT or two: only what follows is judged)
        before = _count(timeouts)
        caplog.clear()

        with _paused(replica.pid):
            await other.set("elsewhere", b"1")  # acknowledged by the master alone
            await asyncio.gather(*(client.set(f"k{i}", i) for i in range(20)))  # a few conns
            check = asyncio.create_task(replication.ensure(client))
            done, _ = await asyncio.wait({check}, timeout=6 * TIMEOUT_MS / 1000)
            assert not done, "the check returned while the replica lacked writes"
            assert _count(timeouts) >= before + 3  # each WAIT timed out, counted, sent again
            warned = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warned) == 1, [r.getMessage() for r in warned]  # once per episode
            assert "not yet on 1 Redis replica" in warned[0].getMessage()
        await asyncio.wait_for(check, timeout=10)

        # Returned: the replica holds every write acknowledged before the check, whichever
        # connection (or client) made it.
        with contextlib.closing(replica.client()) as on_replica:
            assert on_replica.get("elsewhere") == b"1"
            assert on_replica.mget([f"k{i}" for i in range(20)]) == [
                str(i).encode() for i in range(20)
            ]
        assert any("caught up" in r.getMessage() for r in caplog.records)
    finally:
        await client.aclose()
        await other.aclose()


async def test_no_replica_asked_means_no_round_trip():
    nowhere = redis.asyncio.Redis(  # nothing listens there; one attempt, no backoff
        host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0)
    )
    try:
        await Replication(Settings(_env_file=None, redis_wait_replicas=0)).ensure(nowhere)
        with pytest.raises(redis.exceptions.ConnectionError):  # one replica: a round trip
            await Replication(Settings(_env_file=None, redis_wait_replicas=1)).ensure(nowhere)
    finally:
        await nowhere.aclose()


# --- on a cluster with a replica per master ------------------------------------------------------


def _replica_of(cluster: LocalRedisCluster, master_port: int) -> ClusterNodeServer:
    """The node replicating the master on `master_port`."""
    for server in cluster.servers:
        with contextlib.closing(server.client()) as client:
            role = client.execute_command("ROLE")
        if role[0] in (b"slave", "slave") and int(role[2]) == master_port:
            return server
    raise AssertionError(f"no replica of {master_port}: {cluster.nodes()}")


def _owner(cluster: LocalRedisCluster, key: str) -> ClusterNodeServer:
    """The master that serves `key` now."""
    with contextlib.closing(cluster.servers[0].client()) as client:
        slot = client.cluster("KEYSLOT", key)
        for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return cluster.server(int(master[1]))
    raise AssertionError(f"no master serves {key}")


def _fill_the_socket_buffers(master: ClusterNodeServer, tag: str) -> None:
    """Write 32 MB on `master` (a key of hash tag `tag`, which it serves), its replica paused.

    A paused replica still receives what fits in the kernel's socket buffers, and applies it
    when it resumes even if its master died meanwhile. 32 MB first (more than those buffers
    hold) keeps what follows in the master's own output buffer, which a SIGKILL loses: the
    writes after this are acknowledged and lost, as with a replica lagging by that much."""
    with contextlib.closing(master.client(socket_timeout=30)) as client:
        client.set(f"{tag}:backlog", b"x" * (32 << 20))


def _kill(master: ClusterNodeServer) -> None:
    """SIGKILL a node: what it acknowledged and did not replicate is gone."""
    assert master.pid is not None
    os.kill(master.pid, signal.SIGKILL)
    wait_for(lambda: not master.running, timeout=5, what="the master gone")


def _rejoin(master: ClusterNodeServer, replica: ClusterNodeServer) -> None:
    """Once the replica is promoted, start the killed master again: it rejoins as a replica
    of the promoted node and syncs from it (so that WAIT 1 can be satisfied again)."""
    wait_for(lambda: replica.role() == "master", timeout=20, what="the replica promoted")
    master.start()
    wait_for(
        lambda: master.role() == "replica" and _in_sync(replica, master),
        timeout=20,
        what="the old master back as the new master's replica",
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalRedisCluster]:
    """Three masters with a replica each, failure detected within NODE_TIMEOUT_MS."""
    started = start_redis_cluster(tmp_path / "cluster", replicas=1, node_timeout_ms=NODE_TIMEOUT_MS)
    yield started
    started.stop()


async def test_a_failover_the_client_follows_silently_is_not_taken_for_replication(
    cluster: LocalRedisCluster,
):
    """A write acknowledged by a master, the master replaced by a replica that never got it,
    the client following the failover silently: a WAIT on the new master would say
    "replicated" once it has a replica again; the check says the batch must be applied again."""
    settings = Settings(
        _env_file=None,
        redis_url=cluster.url,
        redis_cluster=True,
        redis_wait_replicas=1,
        redis_wait_timeout_ms=TIMEOUT_MS,
    )
    client = redis_client(settings)
    replication = Replication(settings)
    key = "obs:test:{durability}"

    async def apply(value: bytes) -> None:  # a batch: its write, then the check, retried
        for _attempt in range(5):
            replication.begin()  # each attempt is a unit (the check runs in a task of its own)
            await client.set(key, value)
            try:
                return await asyncio.wait_for(replication.ensure(client), timeout=10)
            except ReplicationUncertain:  # a slot-map change since the start (a MOVED)
                continue
        raise AssertionError("the check never succeeded")

    try:
        await apply(b"v1")
        master = _owner(cluster, key)
        replica = _replica_of(cluster, master.port)
        with _paused(replica.pid):
            _fill_the_socket_buffers(master, "obs:test:{durability}")
            await client.set(key, b"v2")  # acknowledged by the master only
            _kill(master)

        async def write_again() -> bool:  # redis-py finds the promoted replica by itself
            try:
                await client.set("obs:test:{durability}:other", b"x")
            except (redis.exceptions.RedisError, OSError):
                return False
            return True

        deadline = asyncio.get_running_loop().time() + 20
        while not await write_again():
            assert asyncio.get_running_loop().time() < deadline, "the cluster never failed over"
            await asyncio.sleep(0.2)
        assert await client.get(key) == b"v1"  # v2, acknowledged, is lost
        _rejoin(master, replica)
        with pytest.raises(ReplicationUncertain):  # not "replicated": apply the batch again
            await asyncio.wait_for(replication.ensure(client), timeout=10)
        await apply(b"v2")  # the batch applied again
        with contextlib.closing(master.client()) as on_replica:  # the old master: a replica
            assert on_replica.execute_command("READONLY") and on_replica.get(key) == b"v2"
    finally:
        await client.aclose()


# --- the drill --------------------------------------------------------------------------------


def _produce(settings: Settings, log: GoldenLog, start: int, stop: int) -> None:
    """Produce metrics[start:stop] as a collector would, with the account records that come
    before them (all of them first when start is 0, then those placed mid-stream)."""
    producer = make_producer(settings, enable_idempotence=False)
    accounts, metrics = settings.topic(TOPIC_ACCOUNTS), settings.topic(TOPIC_METRICS)
    if start == 0:
        for record in log.accounts:
            producer.send(accounts, key=record["id"].encode(), value=orjson.dumps(record))
    after = dict(log.accounts_after)
    for index in range(start, stop):
        if index in after:
            producer.flush()
            record = after[index]
            producer.send(accounts, key=record["id"].encode(), value=orjson.dumps(record))
        event = log.metrics[index]
        key = f"instagram:{event['handle']}".encode()
        producer.send(metrics, key=key, value=orjson.dumps(event))
    producer.flush()
    producer.close()


def _scraped(port: int, name: str) -> float:
    """A sample of the scorer's /metrics (0 before it exists)."""
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _repl_offsets(server: ClusterNodeServer) -> tuple[int, int]:
    """A master's replication offset, and the offset its replica acknowledged."""
    with contextlib.closing(server.client()) as client:
        info = client.info("replication")
    return info["master_repl_offset"], (info.get("slave0") or {}).get("offset", -1)


def failover_drill(
    broker: TansuBroker, cluster: LocalRedisCluster, tmp_path: Path, seed: int, wait: int
) -> None:
    """Half the log scored; the replica of the master holding the global keys paused; the other
    half produced (with `wait` replicas asked the scorer blocks: acknowledged, unreplicated
    writes, nothing committed); that master SIGKILLed; the replica resumed and promoted; the
    old master back as its replica; once everything is committed the view equals the batch."""
    metrics_port = free_port()
    settings = cluster_settings(broker, cluster, tmp_path / "run", scorer_metrics_port=metrics_port)
    fresh_stack(settings).close()
    log = generate(seed, DRILL_EVENTS, end=utcnow() - timedelta(minutes=10))
    half, total = len(log.metrics) // 2, len(log.metrics)
    env = service_env(
        settings,
        OBS_REDIS_WAIT_REPLICAS=str(wait),
        OBS_REDIS_WAIT_TIMEOUT_MS=str(TIMEOUT_MS),
        OBS_SCORER_BATCH_SIZE="500",
    )
    scorer = ServiceProcess(["service", "scorer"], env, tmp_path / "scorer.log").start()
    group = f"{settings.topic_prefix}observatoire-scorer"
    try:
        _produce(settings, log, 0, half)
        wait_for(
            lambda: committed_offsets(settings, group) >= half,
            timeout=90,
            what=f"the first half scored:\n{scorer.log()[-3000:]}",
        )
        master = _owner(cluster, ViewKeys(0).WATERMARK_KEY)  # written by every batch
        replica = _replica_of(cluster, master.port)
        with _paused(replica.pid):
            _fill_the_socket_buffers(master, ViewKeys(0).META_TAG)
            _produce(settings, log, half, total)
            if wait:
                wait_for(
                    lambda: _scraped(metrics_port, "obs_scorer_replica_wait_timeouts_total") > 0,
                    timeout=30,
                    what=f"the scorer waiting for the replica:\n{scorer.log()[-3000:]}",
                )
                assert committed_offsets(settings, group) == half  # nothing committed since
            else:
                wait_for(
                    lambda: committed_offsets(settings, group) >= total,
                    timeout=60,
                    what=f"the second half scored:\n{scorer.log()[-3000:]}",
                )
            ahead, acknowledged = _repl_offsets(master)
            assert ahead > acknowledged, "the master has no unreplicated write to lose"
            _kill(master)
        _rejoin(master, replica)
        wait_for(
            lambda: committed_offsets(settings, group) >= total,
            timeout=90,
            what=f"the whole log scored after the failover:\n{scorer.log()[-3000:]}",
        )
        expected = batch_standings(log, tmp_path / "batch")
        current, editions = standings_from_redis(settings)
        assert_same_standings(current, editions, expected)
        assert "Traceback" not in scorer.log()
    finally:
        scorer.terminate()


def test_a_master_killed_after_unreplicated_writes_loses_nothing(
    broker: TansuBroker, cluster: LocalRedisCluster, tmp_path: Path
):
    failover_drill(broker, cluster, tmp_path, seed=11, wait=1)


@pytest.mark.drills
@pytest.mark.parametrize("seed", [12])
def test_drill_a_master_killed_after_unreplicated_writes_loses_nothing(
    broker: TansuBroker, cluster: LocalRedisCluster, tmp_path: Path, seed: int, drill: Drill
):
    began = time.monotonic()
    failover_drill(broker, cluster, tmp_path, seed=seed, wait=1)
    drill.figures["took"] = f"{time.monotonic() - began:.0f} s"
    # It returned: every record of the log committed, the view equal to the batch's.
    drill.sent = drill.applied = DRILL_EVENTS
    drill.lost, drill.equal_to_batch = 0, True
