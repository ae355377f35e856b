"""Drill: a master of the local Redis Cluster SIGKILLed during ingestion; its replica takes over.

The stack as `OBS_REDIS_CLUSTER=true OBS_REDIS_CLUSTER_REPLICAS=1 observatoire run` has it:
three masters with a replica each (the local cluster's node timeout), the scorer waiting for
one replica of every master before it commits (`OBS_REDIS_WAIT_REPLICAS=1`, what `run` sets
with replicas), the API reading the cluster. `observatoire replay` produces the golden log of
OBS_DRILL_EVENTS snapshots; once 40 % of it is committed the master serving the view's global
keys (written by every batch) is SIGKILLed; its replica is promoted, and the killed node is
started again, as an operator or a supervisor would, and rejoins as the new master's replica.

Verdict: every snapshot committed; the view equal to `replay --batch` row by row (lost: the
rows that differ); recovered in: from the SIGKILL until the scorer has committed everything
the topic held at the kill; figures: the failover (the replica promoted), the scorer's Redis
retries, the API's answers other than 200 meanwhile (a 503 says Redis is unavailable; a 500
would be a fault).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from services.common.clock import utcnow
from services.common.contracts import TOPIC_METRICS
from services.common.kafka import end_offsets
from services.common.localstack import LocalRedisCluster, TansuBroker, free_port
from services.common.view.keys import ViewKeys
from tests.drills.a_helpers import (
    caught_up,
    group_committed,
    replay,
    replay_batch,
    scorer_group,
    settled_comparison,
    tracebacks,
)
from tests.drills.plugin import Drill
from tests.drills.settings import drill_settings
from tests.golden.generate import generate
from tests.integration.test_redis_durability import _kill, _owner, _rejoin, _replica_of, _scraped
from tests.kafka_read import read_all
from tests.services import (
    ServiceProcess,
    cluster_settings,
    fresh_stack,
    service_env,
    start_redis_cluster,
    wait_for,
)

SEED = 23
KILL_AT = 0.4  # share of the log committed when the master is killed


@pytest.fixture
def replicated_cluster(tmp_path: Path) -> Iterator[LocalRedisCluster]:
    """Three masters with a replica each, the node timeout `observatoire run` uses."""
    cluster = start_redis_cluster(tmp_path / "cluster", replicas=1)
    yield cluster
    cluster.stop()


class ApiWatch:
    """Polls a category's standings through the API; counts the answers by status."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.statuses: Counter[str] = Counter()
        self.failing: list[float] = []  # when each answer other than 200 came
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self.stop.is_set():
                try:
                    reply = client.get("/api/v1/standings/departements", params={"limit": 10})
                    status = str(reply.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self.statuses[status] += 1
                if status != "200":
                    self.failing.append(time.monotonic())
                self.stop.wait(0.1)

    def others(self) -> dict[str, int]:
        return {status: n for status, n in self.statuses.items() if status != "200"}


@pytest.mark.drills
def test_drill_cluster_master_kill(
    drill: Drill, broker: TansuBroker, replicated_cluster: LocalRedisCluster, tmp_path: Path
) -> None:
    sizes = drill_settings()
    cluster = replicated_cluster
    timeout = sizes.recover_timeout_seconds
    metrics_port = free_port()
    settings = cluster_settings(
        broker, cluster, tmp_path / "run", scorer_metrics_port=metrics_port, api_port=free_port()
    )
    fresh_stack(settings).close()
    env = service_env(
        settings,
        OBS_REDIS_WAIT_REPLICAS="1",
        OBS_RATE_LIMIT_ENABLED="false",
        OBS_SCORER_BATCH_SIZE="500",  # commits often enough for the kill to fall mid-log
    )

    drill.progress(f"generating the golden log ({sizes.events:,} snapshots)")
    log = generate(SEED, sizes.events, end=utcnow() - timedelta(minutes=10))
    metrics_path, accounts_path = log.write(tmp_path / "log")
    sent = drill.sent = len(log.metrics)

    services = {
        name: ServiceProcess(["service", name], env, tmp_path / f"{name}.log").start()
        for name in ("scorer", "api")
    }
    producer = replay(metrics_path, accounts_path, env, tmp_path / "replay.log")
    watch = ApiWatch(settings.api_url)
    group = scorer_group(settings)

    def logs() -> str:
        return "\n".join(f"--- {n}\n{p.log()[-1500:]}" for n, p in services.items())

    def committed() -> int:
        return group_committed(settings, group, (TOPIC_METRICS,))[TOPIC_METRICS]

    try:
        drill.progress(
            "cluster of 3 masters and 3 replicas, scorer (waiting for 1 replica) and API up; "
            "`observatoire replay` producing the log"
        )
        at_kill = wait_for(
            lambda: (c := committed()) >= KILL_AT * sent and c,
            timeout=timeout,
            interval=0.05,
            what=f"{KILL_AT:.0%} of the log committed",
            explain=logs,
        )
        watch.thread.start()
        master = _owner(cluster, ViewKeys(0).WATERMARK_KEY)
        replica = _replica_of(cluster, master.port)
        ends = sum(end_offsets(settings, TOPIC_METRICS).values())
        _kill(master)
        killed = time.monotonic()
        drill.progress(
            f"master :{master.port} SIGKILLed at {at_kill / sent:.0%} of the log committed "
            f"({ends:,} in the topic); waiting for its replica :{replica.port}"
        )
        wait_for(
            lambda: replica.role() == "master",
            timeout=60,
            interval=0.1,
            what="the replica promoted",
            explain=logs,
        )
        promoted = time.monotonic()
        drill.figures["killed at"] = f"{at_kill / sent:.0%} committed"
        drill.figures["failover"] = f"{promoted - killed:.1f} s"
        drill.progress(
            f"replica promoted {promoted - killed:.1f} s after the kill; "
            "the killed node started again as its replica"
        )
        _rejoin(master, replica)
        rejoined = time.monotonic()
        wait_for(
            lambda: committed() >= ends,
            timeout=timeout,
            interval=0.1,
            what="the scorer past what the topic held at the kill",
            explain=logs,
        )
        drill.recover_seconds = time.monotonic() - killed
        drill.figures["old master back as replica after"] = f"{rejoined - killed:.1f} s"
        drill.progress(
            f"caught up with the log as it was at the kill {drill.recover_seconds:.1f} s after "
            "it; waiting for the rest of the log"
        )

        assert producer.wait(timeout) == 0, producer.log()[-3000:]
        wait_for(
            lambda: caught_up(settings),
            timeout=timeout,
            interval=0.2,
            what="the whole log committed",
            explain=logs,
        )
        watch.stop.set()
        in_topic = sum(end_offsets(settings, TOPIC_METRICS).values())
        drill.applied = committed()
        drill.doubled = max(0, in_topic - sent)  # records in the topic beyond the lines sent
        drill.dead_lettered = len(read_all(settings, f"{TOPIC_METRICS}.dlq", timeout=30))
        waits = _scraped(metrics_port, "obs_scorer_replica_wait_timeouts_total")
        drill.figures["WAIT timeouts"] = f"{waits:.0f}"
        retries = services["scorer"].log().count("redis error while")
        uncertain = services["scorer"].log().count("ReplicationUncertain")
        drill.figures["scorer's Redis retries"] = f"{retries} ({uncertain} ReplicationUncertain)"
        others = watch.others()
        drill.figures["API answers"] = f"{sum(watch.statuses.values())}, not 200: " + (
            ", ".join(f"{n} × {s}" for s, n in sorted(others.items())) or "none"
        )
        if watch.failing:
            drill.figures["API unavailable"] = (
                f"until {watch.failing[-1] - killed:.1f} s after the kill"
            )

        drill.progress("comparing the view with `replay --batch`")
        batch, refused = replay_batch(metrics_path, accounts_path, env)
        drill.expect(not refused, f"`replay --batch` refused lines: {dict(refused)}")
        result = settled_comparison(settings, batch)
        drill.lost = result.lost
        drill.equal_to_batch = result.equal
        drill.figures["ranked rows"] = f"{result.expected_rows:,}"
        drill.expect(in_topic == sent, f"{in_topic:,} records in the topic for {sent:,} sent")
        drill.expect(drill.applied == sent, f"{drill.applied:,} committed of {sent:,}")
        drill.expect(result.extra == 0, f"{result.extra} rows the batch does not have")
        drill.expect(result.equal, "; ".join(result.examples))
        drill.expect("500" not in others, f"the API answered 500 {others.get('500')} times")
        assert result.expected_rows > 100
        assert all(p.proc is not None and p.proc.poll() is None for p in services.values()), logs()
        assert tracebacks(*services.values()) == [], logs()
    finally:
        watch.stop.set()
        producer.kill()
        for process in services.values():
            process.terminate()
