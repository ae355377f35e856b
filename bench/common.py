"""Shared pieces of the benchmarks: a private broker and Redis, realistic snapshots, timing."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.collector.simulator import SimulatedWorld
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.kafka import create_topics
from services.common.localstack import RedisServer, TansuBroker, free_port
from services.common.settings import Settings
from services.common.territories import load_registry

RESULTS = Path(__file__).resolve().parent / "results"


@contextlib.contextmanager
def private_stack(tmp: Path) -> Iterator[Settings]:
    """A Tansu broker and a Redis of the benchmark's own, on free ports."""
    broker = TansuBroker(free_port(), tmp / "tansu.log").start()
    redis = RedisServer(free_port(), tmp / "redis.log").start()
    try:
        settings = Settings(
            _env_file=None,
            kafka_bootstrap=broker.bootstrap,
            redis_url=redis.url,
            topic_prefix=f"b{uuid.uuid4().hex[:8]}-",
            run_dir=tmp / "run",
            scorer_metrics_port=free_port(),
        )
        assert all(report.ok for report in create_topics(settings))
        yield settings
    finally:
        broker.stop()
        redis.stop()


@dataclass
class Prefill:
    events: int
    accounts: int
    bytes: int
    seconds: float


def world(categories: tuple[str, ...], end: datetime) -> SimulatedWorld:
    """Simulated accounts for every territory of these categories."""
    return SimulatedWorld(
        load_registry(), seed=7, categories=categories, epoch=end - timedelta(days=60)
    )


async def prefill(
    settings: Settings, sim: SimulatedWorld, rounds: int, end: datetime, *, batch_bytes: int = 1
) -> Prefill:
    """Produce the accounts, then `rounds` daily snapshots of every account: one record per
    batch as on the local profile (`batch_bytes=1`), or in batches of up to `batch_bytes` as
    the collector writes them on the Kafka profile (services.common.kafka.producer_config)."""
    started = time.perf_counter()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_servers,
        max_batch_size=batch_bytes,
        linger_ms=0 if batch_bytes == 1 else 5,
        acks="all",
    )
    await producer.start()
    size = count = 0
    try:
        for record in sim.account_records():
            await producer.send(
                settings.topic(TOPIC_ACCOUNTS), orjson.dumps(record), key=record["id"].encode()
            )
        for day in range(rounds):
            moment = end - timedelta(days=rounds - 1 - day)
            futures = []
            for event in sim.snapshots(moment):
                raw = orjson.dumps(event)
                size += len(raw)
                count += 1
                futures.append(
                    await producer.send(
                        settings.topic(TOPIC_METRICS),
                        raw,
                        key=f"instagram:{event['handle']}".encode(),
                    )
                )
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return Prefill(count, len(sim.accounts), size, time.perf_counter() - started)


async def raw_consume(settings: Settings) -> tuple[int, float]:
    """Baseline: raw aiokafka consume + JSON decode of the whole metrics topic."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_servers,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        name = settings.topic(TOPIC_METRICS)
        partitions = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        started = time.perf_counter()
        count = 0
        pending = set(partitions)
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                for record in records:
                    orjson.loads(record.value)
                    count += 1
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return count, time.perf_counter() - started
    finally:
        await consumer.stop()


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
