"""The local processes: Redis keeps nothing on disk, clear errors, quick stops."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kafka import KafkaConsumer

from services.common.localstack import (
    LocalServiceError,
    RedisServer,
    TansuBroker,
    find_tansu_binary,
    free_port,
    port_is_open,
)


@pytest.fixture
def listening_socket() -> Iterator[int]:
    """A port some other process (this one) listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_redis_server_keeps_nothing_on_disk(redis_client: redis.Redis) -> None:
    assert redis_client.config_get("save") == {"save": ""}
    assert redis_client.config_get("appendonly") == {"appendonly": "no"}


def test_redis_server_leaves_no_directory_behind(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path / "redis.log").start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        workdir = Path(str(client.config_get("dir")["dir"]))
        client.set("k", "v")
        client.close()
        assert workdir.is_dir()
        assert list(workdir.iterdir()) == []  # no dump.rdb, no appendonlydir
    finally:
        server.stop()
    assert not workdir.exists()


def test_redis_on_a_taken_port_fails_clearly(tmp_path: Path, listening_socket: int) -> None:
    with pytest.raises(LocalServiceError, match=f"127.0.0.1:{listening_socket} is already in use"):
        RedisServer(listening_socket, tmp_path / "redis.log").start()


def test_tansu_on_a_taken_port_fails_clearly(tmp_path: Path, broker: TansuBroker) -> None:
    with pytest.raises(LocalServiceError, match=f"127.0.0.1:{broker.port} is already in use"):
        TansuBroker(broker.port, tmp_path / "tansu.log").start()
    assert port_is_open("127.0.0.1", broker.port)  # the session broker is untouched


def test_a_process_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path / "redis.log", binary="false")

    with pytest.raises(LocalServiceError, match="exited with code 1 before answering") as raised:
        server.start()

    assert str(tmp_path / "redis.log") in str(raised.value)
    assert not server.running


def test_a_missing_binary_is_named(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path / "redis.log", binary="no-such-redis-server")

    with pytest.raises(LocalServiceError, match="`no-such-redis-server` not found on PATH"):
        server.start()


def test_the_bundled_tansu_binary_is_found_and_executable() -> None:
    binary = find_tansu_binary()

    assert binary.name == "tansu"
    assert os.access(binary, os.X_OK)


def test_redis_stops_within_a_few_seconds(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path / "redis.log").start()
    client = redis.Redis.from_url(server.url)
    client.ping()  # an open client connection must not delay the stop

    started = time.monotonic()
    server.stop()

    assert time.monotonic() - started < 3
    assert not server.running and not port_is_open("127.0.0.1", server.port)
    client.close()


def test_tansu_stops_within_a_few_seconds_with_a_client_connected(tmp_path: Path) -> None:
    broker = TansuBroker(free_port(), tmp_path / "tansu.log").start()
    consumer = KafkaConsumer(bootstrap_servers=[broker.bootstrap])
    consumer.topics()  # an open connection: Tansu drains those for 5 s on SIGTERM

    started = time.monotonic()
    broker.stop()

    assert time.monotonic() - started < 3
    assert not broker.running and not port_is_open("127.0.0.1", broker.port)
    consumer.close()
