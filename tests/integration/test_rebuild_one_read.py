"""`observatoire rebuild` reads obs.metrics.v1 once for the scorer's and the publisher's parts,
its partitions shared between processes (services/common/rebuild.py): the generation it builds
is the one each part builds alone, one after the other, in one process, and its link states
are those of applying every snapshot in log order. On the golden log: dead links, `error`
runs, duplicates, out-of-order and backfilled snapshots, a handle change, plus records that
are not snapshots at all."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from services.common.clock import to_epoch, utcnow
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.dead_links import TRANSITIONS_KEPT, LinkState, LinkTransition, apply_snapshot
from services.common.kafka import make_producer
from services.common.localstack import RedisServer, TansuBroker
from services.common.rebuild import MetricsFolds
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.client import redis_client
from services.common.view.keys import SHARED_KEYS, ViewKeys
from services.publisher.rebuild import rebuild_publisher
from services.rebuild import prepare_generation, rebuild_view
from services.scorer.rebuild import rebuild
from tests.golden.generate import GoldenLog, generate
from tests.services import fresh_stack, isolated_settings

NOT_SNAPSHOTS = [b"{not json", orjson.dumps({"platform": "instagram", "handle": "x"})]


def _view(client: redis.Redis, generation: int) -> dict[bytes, Any]:
    """Every key of a generation, named as in generation 0, as comparable data."""
    root = ViewKeys(generation).root.encode() + b":"
    shared = {key.encode() for key in SHARED_KEYS}
    view: dict[bytes, Any] = {}
    for key in client.scan_iter(match=root + b"*", count=1000):
        if key in shared or (generation == 0 and key.startswith(b"obs:g")):
            continue
        name = b"obs:" + key.removeprefix(root)
        kind = client.type(key)
        if kind == b"hash":
            view[name] = client.hgetall(key)
        elif kind == b"zset":
            view[name] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"set":
            view[name] = client.smembers(key)
        elif kind == b"list":
            view[name] = client.lrange(key, 0, -1)
        else:
            view[name] = client.get(key)
    return view


async def _parts_alone(settings: Settings) -> tuple[Any, Any]:
    """Generation 0 prepared, then the scorer's part and the publisher's, each alone."""
    redis = redis_client(settings)
    try:
        await prepare_generation(settings, redis, ViewKeys(0), load_registry())
    finally:
        await redis.aclose()
    scorer = await rebuild(settings, workers=1, rk=ViewKeys(0))
    return scorer, await rebuild_publisher(settings, workers=1, rk=ViewKeys(0))


def _link_transitions(log: GoldenLog) -> dict[bytes, list[tuple[bytes, float]]]:
    """Each account's kept transitions, every snapshot applied in log order (the reference),
    as `ZRANGE … WITHSCORES` gives them: (JSON, epoch of `at`), by time."""
    states: dict[tuple[str, str], LinkState] = defaultdict(LinkState)
    transitions: dict[tuple[str, str], list[LinkTransition]] = defaultdict(list)
    for event in log.metrics:
        account = (event["platform"], event["handle"])
        states[account], transition = apply_snapshot(
            states[account],
            observed_at=event["observed_at"],
            event_id=event["event_id"],
            status=event["status"],
        )
        if transition is not None:
            transitions[account].append(transition)
    return {
        ViewKeys(0).link_transitions_key(*account).encode(): sorted(
            ((t.to_json(), float(to_epoch(t.at))) for t in kept[-TRANSITIONS_KEPT:]),
            key=lambda member: (member[1], member[0]),
        )
        for account, kept in transitions.items()
    }


def _link_states(log: GoldenLog) -> dict[bytes, bytes]:
    """Each judged account's link state: every snapshot applied in log order (the reference)."""
    states: dict[tuple[str, str], LinkState] = defaultdict(LinkState)
    for event in log.metrics:
        account = (event["platform"], event["handle"])
        states[account], _ = apply_snapshot(
            states[account],
            observed_at=event["observed_at"],
            event_id=event["event_id"],
            status=event["status"],
        )
    return {
        ViewKeys(0).account_link_key(*account).encode(): state.to_json()
        for account, state in states.items()
        if state.status is not None
    }


@pytest.fixture(scope="module")
def golden(
    broker: TansuBroker, redis_server: RedisServer, tmp_path_factory
) -> tuple[Settings, GoldenLog]:
    """The golden log and a few records that are not snapshots, in a stack of their own."""
    tmp: Path = tmp_path_factory.mktemp("rebuild-one-read")
    settings = isolated_settings(broker, redis_server, tmp / "run", 14)
    fresh_stack(settings).close()
    log = generate(5, 6_000, end=utcnow() - timedelta(minutes=10))
    producer = make_producer(settings)
    for record in log.final_accounts():
        producer.send(
            settings.topic(TOPIC_ACCOUNTS), key=record["id"].encode(), value=orjson.dumps(record)
        )
    for event in log.metrics:
        key = f"instagram:{event['handle']}".encode()
        producer.send(settings.topic(TOPIC_METRICS), key=key, value=orjson.dumps(event))
    for i, raw in enumerate(NOT_SNAPSHOTS):
        producer.send(settings.topic(TOPIC_METRICS), key=f"instagram:bad{i}".encode(), value=raw)
    producer.flush()
    producer.close()
    return settings, log


def test_one_read_in_two_processes_builds_the_view_of_each_part_alone(
    golden: tuple[Settings, GoldenLog],
):
    settings, log = golden
    client = redis.Redis.from_url(settings.redis_url)
    try:
        scorer_alone, publisher_alone = asyncio.run(_parts_alone(settings))
        alone = _view(client, 0)
        dead_links = ViewKeys(0).DEAD_LINKS_KEY.encode()
        assert alone[dead_links]  # the golden log's dead links
        assert publisher_alone.links["dead"] == len(alone[dead_links])

        # `observatoire rebuild`: generation 1 beside it, both parts in one read, two processes
        report = asyncio.run(rebuild_view(settings, workers=2, grace_seconds=0))
        assert (report.previous, report.generation) == (0, 1)
        one_read = _view(client, 1)
        assert not _view(client, 0)  # generation 0 dropped
    finally:
        client.close()
    assert sorted(one_read) == sorted(alone)
    for key in alone:
        assert one_read[key] == alone[key], key
    links = {k: v for k, v in one_read.items() if k.startswith(b"obs:acct:") and b":link" in k}
    assert links == _link_states(log)
    transitions = {k: v for k, v in one_read.items() if b":link-transitions:" in k}
    assert transitions and transitions == _link_transitions(log)
    dead = {k for k, v in links.items() if orjson.loads(v)["status"] == "dead"}
    assert len(one_read[dead_links]) == len(dead)
    scorer, publisher = report.scorer, report.publisher
    assert scorer.metrics == publisher.snapshots == scorer_alone.metrics
    assert publisher.snapshots == publisher_alone.snapshots
    assert scorer.rejected == scorer_alone.rejected and scorer.rejected  # the two bad records
    assert publisher.links == publisher_alone.links
    assert list(report.parts.done) == ["scorer", "publisher"]


def failing_fold(settings: Settings, redis: Any, rk: ViewKeys) -> Any:
    """A fold that cannot even be made (module-level: the workers import it by name)."""
    raise ValueError("this fold cannot start")


def test_a_failing_worker_stops_the_rebuild_and_says_why(golden: tuple[Settings, GoldenLog]):
    async def run() -> None:
        async with MetricsFolds(golden[0], ViewKeys(0), [(failing_fold, None)], 2) as folds:
            folds.prepared()
            await folds.results()

    with pytest.raises(RuntimeError, match="rebuild worker failed: ValueError: this fold cannot"):
        asyncio.run(run())
