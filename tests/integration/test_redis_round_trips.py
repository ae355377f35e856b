"""`obs_redis_round_trips_total{service}` counted by the clients `redis_client` builds, against a
real redis-server: one per command, one per pipeline executed (plus what a pipeline sends at
once before its scripts run), none for an empty pipeline; and a service's failed round trips
(the API's `obs_api_redis_errors_total`) counted apart, NOSCRIPT not among them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
import redis.exceptions
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from services.common.localstack import LocalRedisCluster, RedisServer, free_port
from services.common.settings import Settings
from services.common.view.client import ROUND_TRIPS, count_round_trips_as, redis_client
from services.common.view.scripts import Script

SERVICE = "round-trips-test"
OWN = CollectorRegistry()
FAILURES = Counter("test_failures", "Failed round trips (this test's).", registry=OWN)


@pytest.fixture
def counted() -> Iterator[None]:
    """Count this process's round trips as SERVICE's, then as before."""
    before = ROUND_TRIPS.sent, ROUND_TRIPS.failed
    count_round_trips_as(SERVICE, FAILURES)
    try:
        yield
    finally:
        ROUND_TRIPS.sent, ROUND_TRIPS.failed = before


def _sent() -> float:
    return REGISTRY.get_sample_value("obs_redis_round_trips_total", {"service": SERVICE}) or 0.0


def _failed() -> float:
    return OWN.get_sample_value("test_failures_total") or 0.0


def _settings(url: str) -> Settings:
    return Settings(_env_file=None, redis_url=url)


async def test_each_command_and_each_pipeline_counts_one_round_trip(
    counted, redis_server: RedisServer
):
    client = redis_client(_settings(f"{redis_server.url.rsplit('/', 1)[0]}/3"))
    try:
        await client.flushdb()
        start, failed = _sent(), _failed()
        await client.set("k", "v")
        assert await client.get("k") == b"v"
        assert _sent() - start == 2

        pipe = client.pipeline(transaction=False)
        pipe.incr("n").incr("n").get("n")
        assert await pipe.execute() == [1, 2, b"2"]
        assert _sent() - start == 3
        assert await client.pipeline().execute() == []  # nothing sent, nothing counted
        assert _sent() - start == 3

        # A script called after SCRIPT FLUSH: EVALSHA answered NOSCRIPT, SCRIPT LOAD, EVALSHA.
        script = client.register_script("return redis.call('GET', KEYS[1])")
        await client.script_flush()
        assert _sent() - start == 4
        assert await script(keys=["n"]) == b"2"
        assert _sent() - start == 7
        # In a pipeline: SCRIPT EXISTS (loaded), then the pipeline.
        pipe = client.pipeline(transaction=False)
        await script(keys=["n"], client=pipe)
        assert await pipe.execute() == [b"2"]
        assert _sent() - start == 9
        assert _failed() == failed  # NOSCRIPT is not a failure

        with pytest.raises(redis.exceptions.ResponseError):
            await client.incr("k")  # WRONGTYPE-like: "value is not an integer"
        assert (_sent() - start, _failed() - failed) == (10, 1)
    finally:
        await client.flushdb()
        await client.aclose()


async def test_a_round_trip_to_an_absent_redis_counts_as_failed(counted):
    client = redis_client(_settings(f"redis://127.0.0.1:{free_port()}/0"), socket_timeout=1)
    start, failed = _sent(), _failed()
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.ping()
    finally:
        await client.aclose()
    assert (_sent() - start, _failed() - failed) == (1, 1)


INCREMENT = Script(
    "test_round_trip_increment",
    "-- KEYS[1]: a counter. Returns its new value.\nreturn redis.call('INCR', KEYS[1])",
    int,
)


async def test_a_cluster_client_counts_each_command_and_each_pipeline_sent(
    counted, redis_cluster: LocalRedisCluster
):
    """A pipeline over every master counts one; its script calls answered NOSCRIPT are sent
    again once the script is loaded: three round trips (the pipeline, SCRIPT LOAD, the calls
    sent again)."""
    client = redis_client(Settings(_env_file=None, redis_url=redis_cluster.url, redis_cluster=True))
    increment = INCREMENT.bind(client)
    keys = [f"obs:test:{uuid.uuid4().hex[:8]}:{{{i}}}" for i in range(12)]  # on every master
    start, failed = _sent(), _failed()
    try:
        await client.set(keys[0], 0)
        assert _sent() - start == 1
        async with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.incr(key)
            assert await pipe.execute() == [1] * len(keys)
        assert _sent() - start == 2

        for node in redis_cluster.primaries():  # uncounted: not a client of the view
            plain = redis.Redis(host=node.host, port=node.port)
            plain.script_flush()
            plain.close()
        async with client.pipeline(transaction=False) as pipe:
            for key in keys:
                await increment.queue(pipe, [key])
            assert [increment.decode(r) for r in await pipe.execute()] == [2] * len(keys)
        assert _sent() - start == 5
        assert _failed() == failed
    finally:
        await client.delete(*keys)
        await client.aclose()
