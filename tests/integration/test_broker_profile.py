"""Proofs that the local broker profile keeps end offsets exact on Tansu 0.6.0 (real TCP).

Tansu reports a partition's end offset as the base offset of its last record batch + 1, so
batched producers make end offsets too small and anything reading "up to the end" (faust
changelog recovery, `read_all`) stops early. The local profile sends one record per batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from kafka import KafkaAdminClient
from kafka.errors import DuplicateSequenceNumberError, OutOfOrderSequenceNumberError
from kafka.protocol.producer import ProduceRequest
from kafka.protocol.producer.transaction import InitProducerIdRequest
from kafka.record.memory_records import MemoryRecordsBuilder

from services.common.contracts import TOPIC_SCORES
from services.common.kafka import (
    LOCAL_FETCH_MAX_WAIT_MS,
    end_offsets,
    faust_settings,
    make_producer,
    producer_config,
)
from services.common.kafka.clients import faust_app
from services.common.settings import Settings
from services.scorer.scores import ScoreEmitter
from tests.kafka_read import read_all

REPO_ROOT = Path(__file__).resolve().parents[2]
BATCH = 10


def create_topic(settings: Settings, name: str, partitions: int) -> str:
    """Create a test topic (prefixed) directly, as `topics create` does for contract ones."""
    topic = settings.topic(name)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_servers)
    try:
        admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}})
    finally:
        admin.close()
    return topic


def test_local_producer_config_sends_one_record_per_batch(settings: Settings) -> None:
    config = producer_config(settings)
    assert config["batch_size"] == 0
    assert config["acks"] == "all"
    assert config["enable_idempotence"] is True
    # On Apache Kafka, batches hold ~100 snapshots of 2.4 KB (Kafka's 16 KB default held six).
    kafka = producer_config(settings.model_copy(update={"broker_profile": "kafka"}))
    assert (kafka["batch_size"], kafka["linger_ms"]) == (256 * 1024, 10)


def test_kafka_python_local_profile_end_offsets_count_every_record(settings: Settings) -> None:
    topic = create_topic(settings, "probe", partitions=1)
    producer = make_producer(settings)
    try:
        for batch in range(1, 4):
            for i in range(BATCH):
                producer.send(topic, key=b"k", value=f"{batch}-{i}".encode(), partition=0)
            producer.flush()
            assert end_offsets(settings, "probe") == {0: BATCH * batch}
    finally:
        producer.close()

    records = read_all(settings, "probe", timeout=10)
    assert [r.offset for r in records] == list(range(3 * BATCH))
    assert records[-1].value == b"3-9"


def test_tansu_under_reports_end_offsets_of_batched_records(settings: Settings) -> None:
    """The bug the local profile works around, pinned down deterministically.

    A long linger keeps each ten records in one batch until `flush()`. If this test fails,
    Tansu reports end offsets correctly now: the local profile can batch again.
    """
    topic = create_topic(settings, "batched", partitions=1)
    producer = make_producer(settings, batch_size=16384, linger_ms=10_000)
    reported = []
    try:
        for _ in range(3):
            for i in range(BATCH):
                producer.send(topic, value=str(i).encode(), partition=0)
            producer.flush()
            reported.append(end_offsets(settings, "batched")[0])
    finally:
        producer.close()

    assert reported == [1, 11, 21], "Tansu now reports end offsets of batches correctly"
    # ... and a reader stopping at the reported end misses the last batch's other 9 records.
    assert len(read_all(settings, "batched", timeout=10)) == 21


def test_tansu_rejects_replayed_and_out_of_order_idempotent_batches(settings: Settings) -> None:
    """Why `enable_idempotence=True` is safe on Tansu: it really checks producer sequences.

    Raw protocol through kafka-python's connection manager (private, pinned version): a
    replayed batch gets DuplicateSequenceNumber (which both clients treat as success) and is
    not stored twice; a gap gets OutOfOrderSequenceNumber.
    """
    topic = create_topic(settings, "idempotence", partitions=1)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_servers)
    manager = admin._manager

    def call(request: Any, node_id: int | None = None) -> Any:
        async def send() -> Any:
            return await manager.send(request, node_id=node_id)

        return manager.run(send)

    try:
        init = call(
            InitProducerIdRequest(
                transactional_id=None,
                transaction_timeout_ms=60_000,
                producer_id=-1,
                producer_epoch=-1,
            )
        )
        assert init.error_code == 0 and init.producer_id >= 0
        leader = admin.describe_topics([topic])[0]["partitions"][0]["leader_id"]

        def produce(sequence: int, value: bytes) -> int:
            builder = MemoryRecordsBuilder(
                magic=2,
                compression_type=0,
                batch_size=16384,
                producer_id=init.producer_id,
                producer_epoch=init.producer_epoch,
                base_sequence=sequence,
            )
            builder.append(timestamp=int(time.time() * 1000), key=None, value=value, headers=[])
            builder.close()
            data = ProduceRequest.TopicProduceData
            request = ProduceRequest(
                transactional_id=None,
                acks=-1,
                timeout_ms=5000,
                topic_data=[
                    data(
                        name=topic,
                        partition_data=[
                            data.PartitionProduceData(index=0, records=builder.buffer())
                        ],
                    )
                ],
                min_version=3,
                max_version=9,
            )
            response = call(request, leader)
            return int(response.responses[0].partition_responses[0].error_code)

        assert produce(0, b"a") == 0
        assert produce(0, b"a") == DuplicateSequenceNumberError.errno
        assert produce(2, b"c") == OutOfOrderSequenceNumberError.errno
        assert produce(1, b"b") == 0
    finally:
        admin.close()

    assert [r.value for r in read_all(settings, "idempotence", timeout=10)] == [b"a", b"b"]


async def test_faust_producer_local_profile_end_offsets_count_every_record(
    settings: Settings,
) -> None:
    topic = create_topic(settings, "faust-probe", partitions=1)
    app = faust.App(
        f"{settings.topic_prefix}producer-probe",
        **faust_settings(settings, topic_partitions=1),
        web_enabled=False,
    )
    producer = app.producer
    assert producer.max_batch_size == 1  # faust's producer_max_batch_size → aiokafka
    await producer.start()
    try:
        for batch in range(1, 4):
            for i in range(BATCH):
                await producer.send(
                    topic, b"k", str(i).encode(), partition=0, timestamp=None, headers=None
                )
            await producer.flush()
            assert end_offsets(settings, "faust-probe") == {0: BATCH * batch}
    finally:
        await producer.stop()


# --- a faust table across a worker restart ---------------------------------------------------

APP_MODULE = "tests.integration.faust_counter_app"
MESSAGES = 3000
KEYS = 4
PARTITIONS = 4


class CounterWorker:
    """`tests/integration/faust_counter_app.py` run as a faust worker subprocess."""

    def __init__(self, settings: Settings, app_id: str, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.log_path = state_dir / "worker.log"
        state_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "OBS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "OBS_BROKER_PROFILE": settings.broker_profile,
            "OBS_TOPIC_PREFIX": settings.topic_prefix,
            "COUNTER_APP_ID": app_id,
            "COUNTER_PARTITIONS": str(PARTITIONS),
            "COUNTER_STATE_DIR": str(state_dir),
        }
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "faust",
                    "-A",
                    APP_MODULE,
                    "worker",
                    "--without-web",
                    "-l",
                    "info",
                ],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def snapshot(self, name: str) -> dict[str, int] | None:
        try:
            counts: dict[str, int] = orjson.loads((self.state_dir / name).read_bytes())["counts"]
        except (OSError, orjson.JSONDecodeError):
            return None
        return counts

    def wait_for(
        self, name: str, done: Callable[[dict[str, int]], bool], timeout: float
    ) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the worker exited ({self.proc.returncode}):\n{self.log_tail()}")
            last = self.snapshot(name)
            if last is not None and done(last):
                return last
            time.sleep(0.1)
        pytest.fail(f"{name} never satisfied the condition (last: {last}):\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait: a graceful stop (fails the test if the worker ignores it)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the worker ignored SIGTERM for {timeout} s:\n{self.log_tail()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def counter_workers(settings: Settings, tmp_path: Path) -> Iterator[Callable[[str], CounterWorker]]:
    started: list[CounterWorker] = []
    app_id = f"{settings.topic_prefix}counter"

    def start(run: str) -> CounterWorker:
        worker = CounterWorker(settings, app_id, tmp_path / run)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def _total(counts: dict[str, int]) -> int:
    return sum(counts.values())


def test_faust_table_keeps_its_exact_count_across_a_worker_restart(
    settings: Settings, counter_workers: Callable[[str], CounterWorker]
) -> None:
    topic = create_topic(settings, "counter.in", partitions=PARTITIONS)
    producer = make_producer(settings)
    try:
        for i in range(MESSAGES):
            producer.send(topic, key=f"k{i % KEYS}".encode(), value=b"1")
        producer.flush()
    finally:
        producer.close()

    first = counter_workers("run1")
    live = first.wait_for("live.json", lambda c: _total(c) >= MESSAGES, timeout=60)
    assert live == {f"k{k}": MESSAGES // KEYS for k in range(KEYS)}
    assert first.stop() == 0

    # Every changelog record is visible to an end-offset reader (what recovery relies on).
    changelog = end_offsets(settings, "counter-counts-changelog")
    assert sum(changelog.values()) == MESSAGES

    second = counter_workers("run2")
    recovered = second.wait_for("recovered.json", lambda c: True, timeout=60)
    assert recovered == {f"k{k}": MESSAGES // KEYS for k in range(KEYS)}, (
        f"recovered {_total(recovered)} of {MESSAGES}"
    )
    assert second.stop() == 0


async def test_batched_score_events_reach_a_group_consumer_all_of_them(settings: Settings) -> None:
    """Why `obs.scores.v1` may be batched on Tansu: its end offsets come out short, but a
    consumer group (how the publisher and downstream systems read it) gets every record."""
    create_topic(settings, TOPIC_SCORES, partitions=12)
    emitter = ScoreEmitter(settings)
    events = [{"id": f"com-{n:05d}", "n": n} for n in range(600)]
    try:
        for start in range(0, len(events), 200):  # three batches, as three applied batches
            await emitter.publish(events[start : start + 200])
    finally:
        await emitter.stop()
    topic = settings.topic(TOPIC_SCORES)
    assert sum(end_offsets(settings, TOPIC_SCORES).values()) < len(events)  # Tansu's short ends
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_servers,
        group_id=f"{topic}-reader",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        rebalance_timeout_ms=6000,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    received: list[dict] = []
    try:
        deadline = time.monotonic() + 30
        while len(received) < len(events) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            received += [orjson.loads(r.value) for records in batch.values() for r in records]
    finally:
        await consumer.stop()
    assert sorted(e["n"] for e in received) == list(range(len(events)))


async def test_faust_consumers_use_the_profile_fetch_wait(settings: Settings) -> None:
    """Tansu answers an empty fetch only at its max wait: faust's 1,500 ms would hold records."""
    app = faust_app(f"probe-{uuid.uuid4().hex[:6]}", settings)
    thread = app.consumer._thread
    consumer = thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == LOCAL_FETCH_MAX_WAIT_MS == 100
    kafka = settings.model_copy(update={"broker_profile": "kafka"})
    app = faust_app(f"probe-{uuid.uuid4().hex[:6]}", kafka)
    assert app.consumer._thread._create_worker_consumer(app.transport)._fetch_max_wait_ms == 1500
