"""Run the observatory's services as real child processes for integration and e2e tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from kafka import KafkaConsumer, TopicPartition
from redis.asyncio import Redis as AsyncRedis

from services.api.read.history import HistoryReader
from services.common.contracts import CATEGORY_IDS, TOPIC_METRICS
from services.common.kafka import create_topics
from services.common.localstack import (
    LocalRedisCluster,
    LocalServiceError,
    RedisServer,
    TansuBroker,
    free_port,
)
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.client import redis_client
from services.common.view.generations import read_generations, read_generations_sync
from services.common.view.keys import ViewKeys

rk = ViewKeys(0)  # the generation a fresh view starts in

REPO_ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBS_")}
    env |= {
        "OBS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "OBS_BROKER_PROFILE": settings.broker_profile,
        "OBS_TOPIC_PREFIX": settings.topic_prefix,
        "OBS_REDIS_URL": settings.redis_url,
        "OBS_API_PORT": str(settings.api_port),
        "OBS_SCORER_METRICS_PORT": str(settings.scorer_metrics_port),
        "OBS_COLLECTOR_METRICS_PORT": str(settings.collector_metrics_port),
        "OBS_PUBLISHER_METRICS_PORT": str(settings.publisher_metrics_port),
        "OBS_RUN_DIR": str(settings.run_dir),
        "OBS_SPOOL_DIR": str(settings.spool_dir),
        "OBS_REBUILD_GRACE_SECONDS": str(settings.rebuild_grace_seconds),
        "PYTHONPATH": str(REPO_ROOT),
        "NO_COLOR": "1",
    }
    if settings.redis_cluster:
        env["OBS_REDIS_CLUSTER"] = "true"
    if settings.redis_wait_replicas:
        env["OBS_REDIS_WAIT_REPLICAS"] = str(settings.redis_wait_replicas)
    if settings.redis_username is not None:
        env["OBS_REDIS_USERNAME"] = settings.redis_username
    if settings.redis_password is not None:
        env["OBS_REDIS_PASSWORD"] = settings.redis_password.get_secret_value()
    if settings.command_key is not None:
        env["OBS_COMMAND_KEY"] = settings.command_key.get_secret_value()
    if settings.command_keys is not None:
        env["OBS_COMMAND_KEYS"] = settings.command_keys.get_secret_value()
    return env | extra


def isolated_settings(
    broker: TansuBroker, redis_server: RedisServer, run_dir: Path, db: int, **extra: Any
) -> Settings:
    """Settings on the session broker and Redis, with a topic prefix and a Redis database of
    their own (a module's stack), plus `extra`."""
    return Settings(
        _env_file=None,
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}-",
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/{db}",
        run_dir=run_dir,
        **({"rebuild_grace_seconds": 0.0} | extra),  # no reader outlives a test's rebuild
    )


def cluster_settings(
    broker: TansuBroker, cluster: LocalRedisCluster, run_dir: Path, **extra: Any
) -> Settings:
    """Settings on the session broker and a Redis Cluster (`OBS_REDIS_CLUSTER=true`, its first
    master the seed), with a topic prefix of their own, plus `extra`. A cluster has database 0
    only: a test isolates its view by emptying the cluster (`fresh_stack`)."""
    return Settings(
        _env_file=None,
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}-",
        redis_url=cluster.url,
        redis_cluster=True,
        redis_username=cluster.username,
        redis_password=cluster.password,
        run_dir=run_dir,
        **({"rebuild_grace_seconds": 0.0} | extra),  # no reader outlives a test's rebuild
    )


def start_redis_cluster(log_dir: Path, **options: Any) -> LocalRedisCluster:
    """A LocalRedisCluster (`options`: e.g. replicas=1, password=...) started on free ports;
    a port taken meanwhile is retried, any other failure fails the test (never a skip)."""
    error: LocalServiceError | None = None
    for _attempt in range(3):
        cluster = LocalRedisCluster(free_port(), log_dir, **options)
        try:
            return cluster.start()
        except LocalServiceError as exc:
            error = exc
    pytest.fail(f"a local Redis Cluster could not start.\n{error}", pytrace=False)


def fresh_stack(settings: Settings) -> redis.Redis:
    """Create every topic under the settings' prefix and empty their Redis database (every
    primary of a cluster); returns a client of that database (the caller closes it)."""
    assert all(report.ok for report in create_topics(settings))
    client = redis_client(settings, sync=True)
    client.flushdb()
    return client


class ServiceProcess:
    """`python -m services.cli ARGS…` with its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args, self.env, self.log_path = args, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", *self.args],
                env=self.env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def terminate(self, timeout: float = 10.0) -> float:
        """SIGTERM; returns the seconds it took to exit (kills and fails after `timeout`)."""
        assert self.proc is not None
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"{self.args} did not stop within {timeout} s of SIGTERM:\n{self.log()[-3000:]}"
                ) from None
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
    explain: Callable[[], str] | None = None,
) -> T:
    """Poll until `condition()` returns a truthy value; fail with `what` after `timeout` s
    (and what `explain()` says then: logs are read when the wait fails, not when it starts)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # not ready yet
            last = exc
        else:
            if value:
                return value
        time.sleep(interval)
    said = f"\n{explain()}" if explain is not None else ""
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what} (last error: {last!r}){said}"
    )


def committed_offsets(settings: Settings, group: str) -> int:
    """Offsets of obs.metrics.v1 the scorer's group has committed, summed over partitions."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=group)
    try:
        name = settings.topic(TOPIC_METRICS)
        partitions = [TopicPartition(name, p) for p in range(12)]
        return sum(consumer.committed(tp) or 0 for tp in partitions)
    finally:
        consumer.close()


def histories_from_redis(redis_url: str) -> dict[str, list[tuple]]:
    """Every territory's daily history in the current generation, as the API reads it
    (points with their ranks), for comparing two ways of building a view."""

    async def read() -> dict[str, list[tuple]]:
        client = AsyncRedis.from_url(redis_url)
        try:
            rk = (await read_generations(client)).keys
            registry = load_registry()
            reader = HistoryReader(client, rk, registry)
            out: dict[str, list[tuple]] = {}
            for category in CATEGORY_IDS:
                for tid in sorted(m.decode() for m in await client.hkeys(rk.history_key(category))):
                    history = await reader.read(registry[tid])
                    out[tid] = [
                        (p.shown.point, p.shown.weekly, p.rank, p.ranked) for p in history.points
                    ]
            return out
        finally:
            await client.aclose()

    return asyncio.run(read())


def standings_from_redis(redis_url: str | Settings) -> tuple[dict, dict]:
    """Every ranked view of the current generation as (current, editions); from a URL, or
    from Settings (a cluster)."""
    if isinstance(redis_url, Settings):
        client = redis_client(redis_url, sync=True)
    else:
        client = redis.Redis.from_url(redis_url)
    rk = read_generations_sync(client).keys
    current: dict[str, list[dict]] = {}
    editions: dict[str, dict[str, list[dict]]] = {}
    for category in CATEGORY_IDS:
        months = sorted(m.decode() for m in client.smembers(rk.edition_months_key(category)))
        for edition in [None, *months]:
            ranked = client.zrange(
                rk.rank_key(rk.view_prefix(category, edition)), 0, -1, withscores=True
            )
            rows = [
                {"rank": i, "id": member.decode(), "score": -score}
                for i, (member, score) in enumerate(ranked, start=1)
            ]
            if not rows:
                continue
            if edition is None:
                current[category] = rows
            else:
                editions.setdefault(edition, {})[category] = rows
    client.close()
    return current, editions
