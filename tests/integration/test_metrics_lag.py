"""`obs_consumer_lag_records` of a real scorer on the real local broker: records produced one per
batch, a part of them held back (Redis pauses the scorer's writes, so their batch is never
committed), and the gauge equals, partition by partition, the end offset minus the offset the
group committed, as the broker reports both."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import redis
from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from services.common.clock import format_timestamp, utcnow
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.events import build_metrics_event
from services.common.kafka import end_offsets, make_producer
from services.common.kafka.lag import partition_lag
from services.common.localstack import RedisServer, TansuBroker, free_port
from services.common.settings import Settings
from tests.services import ServiceProcess, fresh_stack, isolated_settings, service_env, wait_for

REDIS_DB = 3
FIRST, HELD = 24, 18  # records applied, then records the scorer cannot apply yet
PAUSE_MS = 45_000  # longest the scorer's writes are held (released sooner by the test)


@pytest.fixture
def scorer(
    broker: TansuBroker, redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[Settings, ServiceProcess]]:
    settings = isolated_settings(
        broker, redis_server, tmp_path / "run", REDIS_DB, scorer_metrics_port=free_port()
    )
    fresh_stack(settings).close()
    process = ServiceProcess(
        ["service", "scorer"], service_env(settings), tmp_path / "scorer.log"
    ).start()
    try:
        yield settings, process
    finally:
        process.kill()


def _snapshots(count: int, start: int) -> list[dict]:
    observed = format_timestamp(utcnow() - timedelta(hours=1))
    return [
        build_metrics_event(
            handle=f"lag_account_{i}",
            observed_at=observed,
            status="ok",
            source="sim",
            followers=1000 + i,
            follows=100,
            media_count=10,
        )
        for i in range(start, start + count)
    ]


def _produce(settings: Settings, events: list[dict]) -> None:
    """One record per batch (the local profile's producer): Tansu's end offsets are exact."""
    producer = make_producer(settings)
    try:
        for event in events:
            producer.send(
                settings.topic(TOPIC_METRICS),
                key=f"instagram:{event['handle']}".encode(),
                value=orjson.dumps(event),
            )
        producer.flush()
    finally:
        producer.close()


def _gauge(settings: Settings) -> dict[tuple[str, int], float]:
    """The scorer's lag series, by (topic, partition), from its /metrics."""
    text = httpx.get(f"http://127.0.0.1:{settings.scorer_metrics_port}/metrics").text
    group = f"{settings.topic_prefix}observatoire-scorer"
    return {
        (sample.labels["topic"], int(sample.labels["partition"])): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "obs_consumer_lag_records"
        for sample in family.samples
        if sample.labels["group"] == group
    }


def _broker_lag(settings: Settings) -> dict[tuple[str, int], int]:
    """End offset minus the group's committed offset per partition, as the broker says."""
    group = f"{settings.topic_prefix}observatoire-scorer"
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=group)
    try:
        ends: dict[tuple[str, int], int] = {}
        committed: dict[tuple[str, int], int] = {}
        for contract in (TOPIC_METRICS, TOPIC_ACCOUNTS):
            topic = settings.topic(contract)
            for partition, end in end_offsets(settings, contract).items():
                ends[(topic, partition)] = end
                committed[(topic, partition)] = (
                    consumer.committed(TopicPartition(topic, partition)) or 0
                )
    finally:
        consumer.close()
    return partition_lag(ends, committed, {})


def _agree(settings: Settings, total: int) -> dict | None:
    """The gauge once it covers every partition, equals the broker's lag and sums to `total`."""
    gauge, expected = _gauge(settings), _broker_lag(settings)
    if gauge == expected and sum(expected.values()) == total:
        return gauge
    return None


def test_lag_gauge_is_end_offset_minus_committed_offset_per_partition(scorer):
    settings, process = scorer
    _produce(settings, _snapshots(FIRST, 0))
    gauge = wait_for(
        lambda: _agree(settings, 0),
        timeout=45,
        what="the scorer to commit the first records and report no lag",
        explain=lambda: (
            f"gauge {_gauge(settings)}\nbroker {_broker_lag(settings)}\n" + process.log()[-2000:]
        ),
    )
    assert len(gauge) == 13  # 12 partitions of obs.metrics.v1, 1 of obs.accounts.v1

    pauser = redis.Redis.from_url(settings.redis_url)
    try:
        # Every script blocks under a write pause: the next batch waits, uncommitted.
        pauser.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
        _produce(settings, _snapshots(HELD, FIRST))
        held = wait_for(
            lambda: _agree(settings, HELD),
            timeout=30,
            what=f"the gauge to show the {HELD} records the scorer cannot commit",
            explain=lambda: f"gauge {_gauge(settings)}\nbroker {_broker_lag(settings)}",
        )
        assert sum(1 for records in held.values() if records) > 1  # spread over partitions
    finally:
        pauser.execute_command("CLIENT", "UNPAUSE")
        pauser.close()
    wait_for(
        lambda: _agree(settings, 0),
        timeout=30,
        what="the lag to return to 0 once the scorer's writes go through",
        explain=lambda: f"gauge {_gauge(settings)}\nbroker {_broker_lag(settings)}",
    )
    process.terminate()
