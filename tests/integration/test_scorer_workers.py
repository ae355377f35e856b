"""Three scorer processes in one group, account changes racing the snapshots they affect,
workers SIGKILLed and restarted: once every topic is consumed, the view equals `replay
--batch`, current and edition standings, and no stored entry carries an account its territory
no longer uses."""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from kafka import KafkaConsumer, TopicPartition

from services.common.clock import utcnow
from services.common.contracts import CATEGORY_IDS, TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.events import build_account_record, build_metrics_event, build_recent_post
from services.common.kafka import end_offsets, make_producer
from services.common.localstack import RedisServer, TansuBroker
from services.common.reference import compute_standings
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.entries import decode_entry
from services.common.view.keys import ViewKeys
from tests.drills.plugin import Drill
from tests.services import (
    ServiceProcess,
    committed_offsets,
    fresh_stack,
    isolated_settings,
    service_env,
    standings_from_redis,
    wait_for,
)

rk = ViewKeys(0)  # the generation a fresh view starts in

WORKERS = 3
DAYS = 45  # snapshots over two to three edition months; some accounts fall inactive
TERRITORIES_PER_CATEGORY = {"regions": 8, "departements": 24, "metropoles": 8, "grandes-villes": 8}
HANDLES = 36
SWITCHES, UNMAPPINGS, SWITCH_BACKS = 40, 8, 8
PRODUCE_CHUNKS = 30  # the log is produced in this many flushes, while the workers run


@dataclass
class Workload:
    """What is produced, in order: (topic, key, record) for both topics."""

    records: list[tuple[str, bytes, dict[str, Any]]]

    def lines(self, topic: str) -> list[bytes]:
        return [orjson.dumps(value) for name, _, value in self.records if name == topic]


def _workload(seed: int, end: datetime) -> Workload:
    """Daily snapshots of every account (some stop: inactive later), each territory mapped at
    first, then switched to accounts whose snapshots are flowing, unmapped, switched back."""
    rng = random.Random(seed)
    registry = load_registry()
    territories = [
        t.id
        for category, n in TERRITORIES_PER_CATEGORY.items()
        for t in rng.sample(registry.by_category(category), n)
    ]
    handles = [f"compte_{seed}_{i}" for i in range(HANDLES)]
    stops = {h: DAYS if rng.random() > 0.15 else rng.randrange(5, DAYS // 2) for h in handles}
    start = end - timedelta(days=DAYS)
    metrics: list[dict[str, Any]] = []
    for day in range(DAYS):
        for handle in rng.sample(handles, len(handles)):
            if day >= stops[handle]:
                continue
            observed = start + timedelta(days=day, minutes=rng.randrange(0, 600))
            if rng.random() < 0.1:
                metrics.append(
                    build_metrics_event(
                        handle=handle, observed_at=observed, status="error", source="sim"
                    )
                )
                continue
            posts = [
                build_recent_post(
                    post_id=f"{handle}-{day}-{n}",
                    published_at=observed - timedelta(hours=rng.randrange(1, 600)),
                    likes=rng.randrange(0, 500),
                    comments=rng.randrange(0, 40),
                )
                for n in range(rng.randrange(0, 4))
            ]
            metrics.append(
                build_metrics_event(
                    handle=handle,
                    observed_at=observed,
                    status="ok",
                    source="sim",
                    followers=rng.randrange(0, 80_000),
                    follows=rng.randrange(1, 900),
                    media_count=rng.randrange(0, 3000),
                    recent_posts=posts,
                )
            )

    changed_at = end - timedelta(minutes=1)
    mapping = {tid: rng.choice(handles) for tid in territories}
    previous: dict[str, str | None] = {}
    changes: list[tuple[str, str | None]] = []
    for _ in range(SWITCHES):
        tid = rng.choice(territories)
        previous[tid] = mapping[tid]
        mapping[tid] = rng.choice(handles)
        changes.append((tid, mapping[tid]))
    for tid in rng.sample(territories, UNMAPPINGS):
        changes.append((tid, None))
    for tid in rng.sample(sorted(previous), min(SWITCH_BACKS, len(previous))):
        changes.append((tid, previous[tid]))
    rng.shuffle(changes)
    # Account changes land at random places in the stream of snapshots.
    at = sorted(rng.randrange(len(metrics) // 10, len(metrics)) for _ in changes)
    metrics_topic, accounts_topic = TOPIC_METRICS, TOPIC_ACCOUNTS
    records: list[tuple[str, bytes, dict[str, Any]]] = [
        (
            accounts_topic,
            tid.encode(),
            build_account_record(territory_id=tid, handle=handle, changed_at=changed_at),
        )
        for tid, handle in ((tid, rng.choice(handles)) for tid in territories)
    ]
    pending = list(zip(at, changes, strict=True))
    for index, event in enumerate(metrics):
        while pending and pending[0][0] == index:
            _, (tid, handle) = pending.pop(0)
            record = build_account_record(territory_id=tid, handle=handle, changed_at=changed_at)
            records.append((accounts_topic, tid.encode(), record))
        key = f"instagram:{event['handle']}".encode()
        records.append((metrics_topic, key, event))
    return Workload(records)


def _consumed(settings: Settings, group: str) -> bool:
    """Whether the group has committed the end offset of every partition of both topics."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=group)
    try:
        for topic in (TOPIC_METRICS, TOPIC_ACCOUNTS):
            ends = end_offsets(settings, topic)
            for partition, end in ends.items():
                tp = TopicPartition(settings.topic(topic), partition)
                if (consumer.committed(tp) or 0) < end:
                    return False
        return True
    finally:
        consumer.close()


def _stale_entries(url: str, mapping: dict[str, str | None]) -> list[tuple[str, str | None]]:
    """Stored entries (any view) whose handle is not their territory's final account."""
    client = redis.Redis.from_url(url)
    stale = []
    try:
        for category in CATEGORY_IDS:
            months = [m.decode() for m in client.smembers(rk.edition_months_key(category))]
            for edition in [None, *months]:
                for tid, raw in client.hgetall(
                    rk.entry_key(rk.view_prefix(category, edition))
                ).items():
                    handle = decode_entry(raw).handle
                    if mapping.get(tid.decode()) != handle:
                        stale.append((tid.decode(), handle))
    finally:
        client.close()
    return stale


@pytest.fixture
def workers_settings(broker: TansuBroker, redis_server: RedisServer, tmp_path: Path) -> Settings:
    settings = isolated_settings(broker, redis_server, tmp_path / "run", 12, scorer_metrics_port=0)
    fresh_stack(settings).close()
    return settings


class Group:
    """The scorer workers of one group, each a real process."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.env = service_env(settings, OBS_SCORER_BATCH_SIZE="200")
        self.log_dir = log_dir
        self.started = 0
        self.workers: list[ServiceProcess] = []

    def start(self) -> None:
        self.started += 1
        log = self.log_dir / f"scorer-{self.started}.log"
        self.workers.append(ServiceProcess(["service", "scorer"], self.env, log).start())

    def kill(self, index: int) -> None:
        worker = self.workers.pop(index)
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(10)

    def logs(self) -> str:
        return "\n".join(w.log()[-1500:] for w in self.workers)

    def stop(self) -> None:
        for worker in self.workers:
            worker.terminate()


def _round(settings: Settings, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    end = utcnow() - timedelta(minutes=10)
    workload = _workload(seed, end)
    group = Group(settings, tmp_path)
    kills = sorted(rng.sample(range(3, PRODUCE_CHUNKS), rng.choice((1, 2))))
    producer = make_producer(settings, enable_idempotence=False)
    try:
        for _ in range(WORKERS):
            group.start()
        size = -(-len(workload.records) // PRODUCE_CHUNKS)
        for chunk, first in enumerate(range(0, len(workload.records), size)):
            for topic, key, value in workload.records[first : first + size]:
                producer.send(settings.topic(topic), key=key, value=orjson.dumps(value))
            producer.flush()
            if chunk in kills:  # SIGKILL a worker at a random moment, start a new one
                group.kill(rng.randrange(len(group.workers)))
                group.start()
            time.sleep(0.3)  # pace the log: account changes race the snapshots in flight
        producer.close()
        group_id = f"{settings.topic_prefix}observatoire-scorer"
        wait_for(
            lambda: _consumed(settings, group_id),
            timeout=150,
            interval=0.5,
            what=f"both topics consumed by the group:\n{group.logs()}",
        )

        expected = compute_standings(
            workload.lines(TOPIC_METRICS),
            account_lines=workload.lines(TOPIC_ACCOUNTS),
            now_ms=int(utcnow().timestamp() * 1000),
            bundled=(),
        )
        assert expected.rejected == [] and expected.rejected_accounts == []
        assert expected.watermark is not None  # at least K accounts observed
        final: dict[str, str | None] = {}
        for line in workload.lines(TOPIC_ACCOUNTS):
            record = orjson.loads(line)
            final[record["id"]] = record["handle"]

        def converged() -> bool:
            return standings_from_redis(settings.redis_url) == (
                expected.current,
                expected.editions,
            )

        # The last batch's writes precede its commit: the view is final by now, or it never
        # converges (a short poll absorbs the commit racing our read of the view).
        try:
            wait_for(converged, timeout=5, what="the view to equal replay --batch")
        except AssertionError:
            current, editions = standings_from_redis(settings.redis_url)
            (tmp_path / "streaming.json").write_bytes(
                orjson.dumps({"current": current, "editions": editions})
            )
            (tmp_path / "batch.json").write_bytes(orjson.dumps(expected.to_json_object()))
            assert current == expected.current, f"seed {seed}, kills after chunks {kills}"
            assert editions == expected.editions, f"seed {seed}, kills after chunks {kills}"
        assert _stale_entries(settings.redis_url, final) == []
        for log in sorted(tmp_path.glob("scorer-*.log")):
            assert "Traceback" not in log.read_text(errors="replace"), log.name
        print(
            f"seed {seed}: {len(workload.records)} records, kills after chunks {kills}, "
            f"{sum(map(len, expected.current.values()))} ranked"
        )
    finally:
        group.stop()


def test_three_workers_with_racing_account_changes_and_kills_equal_batch(
    workers_settings: Settings, tmp_path: Path
):
    _round(workers_settings, tmp_path, seed=1)


@pytest.mark.drills
@pytest.mark.parametrize("seed", [2, 3])
def test_drill_three_workers_with_racing_account_changes_and_kills_equal_batch(
    workers_settings: Settings, tmp_path: Path, seed: int, drill: Drill
):
    began = time.monotonic()
    _round(workers_settings, tmp_path, seed)
    drill.figures["took"] = f"{time.monotonic() - began:.0f} s"
    # _round returned: both topics committed by the group, the view equal to the batch's.
    sent = sum(end_offsets(workers_settings, TOPIC_METRICS).values())
    drill.sent = sent
    group = f"{workers_settings.topic_prefix}observatoire-scorer"
    drill.applied = committed_offsets(workers_settings, group)
    drill.lost, drill.equal_to_batch = 0, True
    drill.expect(drill.applied == sent, f"{drill.applied:,} committed of {sent:,}")
