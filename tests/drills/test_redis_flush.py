"""Drill: Redis flushed (FLUSHALL) while traffic flows, then `observatoire rebuild`.

A scorer, the publisher and the API run as processes on a Redis of their own (FLUSHALL empties
every database of a server: this drill's server only). The golden log of OBS_DRILL_EVENTS
snapshots is produced as a collector would: a first part, then, while the rest keeps flowing,
Redis is flushed; once the API shows the damage, `observatoire rebuild` rebuilds the view from
the topics beside the live services. A reader polls the API's standings throughout.

Verdict: once traffic stops and the stack has caught up, the view equals `replay --batch` of
everything sent, row by row (nothing lost); the rank-change `seq` of every category has no gap
and no repeat (a repeat is `doubled`, a gap `lost`), and each category's last rank change is
the batch's top; time to recover = from the flush to the rebuild done and the API answering a
non-empty list again; how long the API answered 503 or an empty list, and how long a list
shorter than before the flush, in the figures. Services that exit are started again, as
`observatoire run` does (the publisher, whose lease the flush took away, stands down).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from services.common.clock import utcnow
from services.common.contracts import (
    CATEGORIES_BY_ID,
    TOPIC_ACCOUNTS,
    TOPIC_METRICS,
    TOPIC_RANK_CHANGES,
)
from services.common.kafka import make_producer
from services.common.localstack import RedisServer, TansuBroker, free_port
from services.common.settings import Settings
from tests.drills.a_helpers import (
    Supervisor,
    caught_up,
    eventually,
    rank_change_seqs,
    repeated_seqs,
    replay_batch,
    settled_comparison,
    tracebacks,
)
from tests.drills.plugin import Drill
from tests.drills.settings import drill_settings
from tests.golden.generate import GoldenLog, generate
from tests.kafka_read import read_all
from tests.services import ServiceProcess, fresh_stack, isolated_settings, service_env, wait_for

SEED = 29
BEFORE_FLUSH = 0.4  # share of the log produced (and applied) before the flush
CHUNK = 250  # records per flush of the producer while traffic flows
CATEGORY = "departements"  # the list the reader polls


@dataclass
class Reader:
    """Polls one category's standings through the API; records (time, status, total)."""

    base: str
    seen: list[tuple[float, int, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=5) as client:
            while not self.stop.is_set():
                try:
                    r = client.get(f"/api/v1/standings/{CATEGORY}", params={"limit": 1})
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                else:
                    total = r.json()["total"] if r.status_code == 200 else 0
                    self.seen.append((time.monotonic(), r.status_code, total))
                    if r.status_code not in (200, 503):
                        self.errors.append(f"{r.status_code} {r.text[:200]}")
                time.sleep(0.05)

    def last_total(self) -> int:
        return next((total for _, status, total in reversed(self.seen) if status == 200), 0)

    def durations(self, since: float, until: float, baseline: int) -> tuple[float, float]:
        """Seconds between `since` and `until` the API answered 503 or an empty list, and a
        list shorter than `baseline`."""
        down = short = 0.0
        answers = [s for s in self.seen if since <= s[0] <= until]
        for (at, status, total), (nxt, _, _) in itertools.pairwise(answers):
            if status != 200 or total == 0:
                down += nxt - at
            elif total < baseline:
                short += nxt - at
        return down, short

    def serving_after(self, since: float) -> float | None:
        """When the API first answered a non-empty list after `since` (None: not yet)."""
        return next(
            (at for at, status, total in self.seen if at > since and status == 200 and total),
            None,
        )

    def statuses(self, since: float) -> str:
        counts = Counter(status for at, status, _ in self.seen if at >= since)
        return ", ".join(f"{status} ×{n:,}" for status, n in sorted(counts.items()))


def _produce(settings: Settings, log: GoldenLog, first: int, last: int, pause: float) -> None:
    """Metrics `[first, last)` of the log (account changes in their places), in chunks of
    CHUNK with `pause` seconds between them."""
    producer = make_producer(settings, enable_idempotence=False)
    accounts, metrics = settings.topic(TOPIC_ACCOUNTS), settings.topic(TOPIC_METRICS)
    after = dict(log.accounts_after)
    try:
        if first == 0:
            for record in log.accounts:
                producer.send(accounts, key=record["id"].encode(), value=orjson.dumps(record))
        for index in range(first, last):
            if index in after:
                producer.flush()
                record = after[index]
                producer.send(accounts, key=record["id"].encode(), value=orjson.dumps(record))
            event = log.metrics[index]
            key = f"instagram:{event['handle']}".encode()
            producer.send(metrics, key=key, value=orjson.dumps(event))
            if (index + 1) % CHUNK == 0:
                producer.flush()
                time.sleep(pause)
        producer.flush()
    finally:
        producer.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for this drill alone: FLUSHALL must not empty anyone else's."""
    server = RedisServer(free_port(), tmp_path / "redis.log").start()
    yield server
    server.stop()


@pytest.mark.drills
def test_drill_redis_flush(
    drill: Drill, broker: TansuBroker, own_redis: RedisServer, tmp_path: Path
) -> None:
    sizes = drill_settings()
    settings = isolated_settings(
        broker,
        own_redis,
        tmp_path / "run",
        0,
        scorer_metrics_port=0,
        publisher_metrics_port=0,
        api_port=free_port(),
        rate_limit_enabled=False,
        rebuild_grace_seconds=1.0,
    )
    fresh_stack(settings).close()
    env = service_env(settings, OBS_RATE_LIMIT_ENABLED="false", OBS_SCORER_BATCH_SIZE="500")

    drill.progress(f"generating the golden log ({sizes.events:,} snapshots)")
    log = generate(SEED, sizes.events, end=utcnow() - timedelta(minutes=10))
    drill.sent = len(log.metrics)

    procs = [
        ServiceProcess(["service", name], env, tmp_path / f"{name}.log")
        for name in ("scorer", "publisher", "api")
    ]
    for proc in procs:
        proc.start()
    reader = Reader(settings.api_url)
    poller = threading.Thread(target=reader.run, name="reader", daemon=True)
    with Supervisor(procs) as supervisor:
        try:
            _drill(drill, settings, env, log, tmp_path, reader, poller, supervisor)
        finally:
            reader.stop.set()


def _drill(
    drill: Drill,
    settings: Settings,
    env: dict[str, str],
    log: GoldenLog,
    tmp_path: Path,
    reader: Reader,
    poller: threading.Thread,
    supervisor: Supervisor,
) -> None:
    timeout = drill_settings().recover_timeout_seconds
    split = int(BEFORE_FLUSH * len(log.metrics))
    scorer = supervisor.processes[0]
    drill.progress(f"scorer, publisher and API up; producing the first {split:,} snapshots")
    _produce(settings, log, 0, split, pause=0)
    wait_for(
        lambda: caught_up(settings),
        timeout=timeout,
        what="the first part applied",
        explain=lambda: scorer.log()[-2000:],
    )
    poller.start()
    baseline = wait_for(reader.last_total, timeout=30, what="the API serving the standings")

    drill.progress(f"the API serves {baseline} {CATEGORY}; the rest flows; FLUSHALL")
    failed: list[BaseException] = []

    def flow() -> None:
        try:
            _produce(settings, log, split, len(log.metrics), 0.1)
        except BaseException as exc:  # reported by the drill
            failed.append(exc)

    traffic = threading.Thread(target=flow, name="traffic", daemon=True)
    traffic.start()
    time.sleep(1.0)
    client = redis.Redis.from_url(settings.redis_url)
    client.flushall()
    flushed = time.monotonic()
    client.close()
    wait_for(
        lambda: any(
            at > flushed and (status != 200 or total < baseline)
            for at, status, total in reader.seen
        ),
        timeout=30,
        what="the API showing the flush",
    )
    noticed = time.monotonic()
    drill.progress(f"the API shows it after {noticed - flushed:.1f} s; `observatoire rebuild`")

    rebuild = ServiceProcess(["rebuild"], env, tmp_path / "rebuild.log").start()
    assert rebuild.wait(timeout) == 0, rebuild.log()[-3000:]
    rebuilt = time.monotonic()
    drill.progress(f"rebuilt in {rebuilt - noticed:.1f} s; waiting for the API")
    serving = wait_for(
        lambda: reader.serving_after(rebuilt), timeout=timeout, what="the API serving again"
    )
    drill.recover_seconds = serving - flushed
    down, short = reader.durations(flushed, rebuilt, baseline)

    traffic.join(timeout)
    assert not traffic.is_alive(), "the traffic did not end"
    assert failed == [], f"the traffic failed: {failed!r}"
    drill.progress("traffic over; waiting for the stack to catch up")
    wait_for(
        lambda: caught_up(settings),
        timeout=timeout,
        what="every snapshot applied",
        explain=lambda: scorer.log()[-2000:],
    )

    drill.progress("comparing the view with `replay --batch` of everything sent")
    metrics_path, accounts_path = log.write(tmp_path / "log")
    batch, refused = replay_batch(metrics_path, accounts_path, env)
    assert refused == Counter(), refused
    result = settled_comparison(settings.redis_url, batch)
    # The publisher catches up too: each category's last rank change is its published list,
    # the batch's top.
    tops = {
        category: [row["id"] for row in ranking[: CATEGORIES_BY_ID[category].published_size]]
        for category, ranking in batch["current"].items()
    }

    def published() -> dict[str, list[str]]:
        events = [orjson.loads(r.value) for r in read_all(settings, TOPIC_RANK_CHANGES)]
        last = {e["category"]: e for e in sorted(events, key=lambda e: e["seq"])}
        return {category: event["top"] for category, event in last.items()}

    lists_equal = eventually(lambda: published() == tops, timeout=30)
    time.sleep(0.5)  # the reader sees the final view
    reader.stop.set()
    poller.join(10)
    records = read_all(settings, TOPIC_RANK_CHANGES)
    events = [orjson.loads(r.value) for r in records]
    gaps, duplicates = rank_change_seqs(events)
    final = httpx.get(f"{settings.api_url}/api/v1/standings/{CATEGORY}", params={"limit": 1})

    drill.applied = len(log.metrics)  # every record committed (caught_up)
    drill.lost = result.lost + gaps
    drill.doubled = duplicates
    drill.equal_to_batch = result.equal
    drill.figures["API 503/empty"] = f"{down:.1f} s"
    drill.figures["API shorter list"] = f"{short:.1f} s"
    drill.figures["answers after the flush"] = reader.statuses(flushed)
    drill.figures["rebuild"] = f"{rebuilt - noticed:.1f} s"
    drill.figures["rank changes"] = f"{len(events):,}"
    drill.figures["restarts"] = supervisor.restarts()
    drill.expect(result.extra == 0, f"{result.extra} rows the batch does not have")
    drill.expect(result.equal, "; ".join(result.examples))
    drill.expect(gaps == 0, f"{gaps} rank-change seq missing")
    drill.expect(duplicates == 0, "; ".join(repeated_seqs(records)))
    drill.expect(lists_equal, "a published list differs from the batch's top")
    drill.expect(
        final.status_code == 200 and final.json()["total"] == len(batch["current"][CATEGORY]),
        f"the API serves {final.text[:200]}",
    )
    drill.expect(reader.errors == [], f"reader: {reader.errors[:3]}")
    assert tracebacks(*supervisor.processes) == []
    assert len(events) > 0 and result.expected_rows > 100
