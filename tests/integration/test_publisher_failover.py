"""Two publishers, one active: the lease, the fencing of a former active's writes, and a
SIGKILL of the active mid-burst on the real broker and Redis.

The scorer's side is played as in test_publisher_streams.py (`FakeScorer`: the scorer's
current view in Redis, then its `obs.scores.v1` events). Dead-link snapshots and signed
commands go in through `obs.metrics.v1` and `obs.commands.v1` before and after the kill.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
import redis
from redis.asyncio import Redis

from services.common.clock import format_timestamp, utcnow
from services.common.commands.sender import kafka_sender
from services.common.contracts import (
    TOPIC_ACCOUNTS,
    TOPIC_COMMAND_RESULTS,
    TOPIC_COMMANDS,
    TOPIC_DEAD_LINKS,
    TOPIC_METRICS,
)
from services.common.dead_links import LinkState
from services.common.events import build_command, build_metrics_event
from services.common.kafka import create_topics, make_producer
from services.common.settings import Settings
from services.common.view.keys import ViewKeys
from services.common.view.values import PendingRankChange
from services.publisher.store import Fenced, PublisherStore
from services.publisher.store.lease import Held, LeaseStore
from tests.integration.test_publisher_streams import (
    START,
    FakeScorer,
    Stack,
    assert_invariants,
    rank_change_events,
    recorded_state,
    wait_published,
)
from tests.kafka_read import read_all
from tests.services import ServiceProcess, service_env, wait_for
from tests.signing import COMMAND_KEY

rk = ViewKeys(0)  # the generation a fresh view starts in

CATEGORY = "departements"
TAKEOVER_LIMIT = 15.0  # seconds from the SIGKILL to the standby's first rank-change event


# --- the zombie, at the store level ----------------------------------------------------------


@pytest.fixture
async def redis_view(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


async def test_a_former_active_is_fenced_out_of_every_slot_once_a_newer_holder_claims(
    redis_view: Redis,
):
    leases = LeaseStore(redis_view)
    first = await leases.acquire("first", 60_000)
    assert isinstance(first, Held) and first.token == 1
    assert await leases.acquire("second", 60_000) == first.value  # held: a standby waits
    zombie = PublisherStore(redis_view, ViewKeys(0), first.token)
    await zombie.fence.claim()
    await zombie.rank_changes.write_pending(CATEGORY, PendingRankChange(1, "a" * 64, {}))
    await zombie.results.save("c1", b'{"status": "done"}')

    # The first holder pauses past its lease; the second takes it with a newer token and
    # claims every slot before recovering.
    await redis_view.delete(rk.PUBLISHER_LEASE_KEY)  # what the lease's expiry does
    second = await leases.acquire("second", 60_000)
    assert isinstance(second, Held) and second.token == 2
    active = PublisherStore(redis_view, ViewKeys(0), second.token)
    await active.fence.claim()
    assert set((await active.fence.stored_tokens()).values()) == {2}

    pending_before = await redis_view.get(rk.rank_changes_pending_key(CATEGORY))
    refused = [
        zombie.rank_changes.write_pending(CATEGORY, PendingRankChange(2, "b" * 64, {})),
        zombie.rank_changes.commit(
            CATEGORY,
            seq=2,
            event_id="b" * 64,
            at="2021-06-01T00:00:00Z",
            top=[],
            scores={},
            record=b"{}",
        ),
        zombie.offsets.advance("obs.rank-changes.v1", 0, 99),
        zombie.results.save("c2", b'{"status": "done"}'),
        zombie.links.save(
            territory_status={CATEGORY: {"dep-32": "dead"}},
            dead_links={"instagram:gers": b"{}"},
            states={("instagram", "gers"): LinkState("dead", "2021-06-01T00:00:00Z", "p")},
        ),
        zombie.editions.freeze("2021-05", "2021-06-02T00:00:00Z"),
        zombie.fence.check_still_active(),
    ]
    for write in refused:
        with pytest.raises(Fenced) as caught:
            await write
        assert (caught.value.token, caught.value.stored) == (1, 2)
    # Nothing of it reached Redis, not even the account state written after the fenced ones.
    assert await redis_view.get(rk.rank_changes_pending_key(CATEGORY)) == pending_before
    assert await redis_view.hgetall(rk.rank_changes_state_key(CATEGORY)) == {}
    assert await redis_view.hget(rk.PUBLISHER_OFFSETS_KEY, "obs.rank-changes.v1:0") is None
    assert await redis_view.hget(rk.COMMAND_RESULTS_KEY, "c2") is None
    assert await redis_view.hget(rk.link_status_key(CATEGORY), "dep-32") is None
    assert await redis_view.get(rk.account_link_key("instagram", "gers")) is None
    assert await redis_view.get(rk.edition_frozen_key(CATEGORY, "2021-05")) is None
    # The zombie cannot renew; the new active writes; a later holder fences it in turn.
    assert not await leases.renew(first, 60_000)
    assert await leases.renew(second, 60_000)
    await active.rank_changes.write_pending(CATEGORY, PendingRankChange(2, "c" * 64, {}))
    await active.results.save("c2", b'{"status": "done"}')
    assert await redis_view.hget(rk.COMMAND_RESULTS_KEY, "c2") == b'{"status": "done"}'
    assert await leases.release(second) and not await leases.release(first)


async def test_a_zombie_rank_change_stops_before_its_produce(settings: Settings, redis_view):
    """The write-ahead copy is the fenced write before the produce: a zombie's refresh is
    refused there, and its event never reaches the topic."""
    from services.common.territories import load_registry
    from services.publisher.core import Publisher
    from tests.signing import COMMAND_KEYS

    assert all(report.ok for report in create_topics(settings))
    prefix = rk.view_prefix(CATEGORY, None)
    await redis_view.zadd(rk.rank_key(prefix), {"dep-01": -50.0, "dep-02": -40.0})
    await redis_view.hset(rk.meta_key(CATEGORY), "as_of", "2021-06-01T00:00:00Z")
    async with kafka_sender(settings) as send:
        zombie = Publisher(
            redis_view,
            ViewKeys(0),
            load_registry(),
            send,
            grace_hours=24,
            command_keys=COMMAND_KEYS,
            token=1,
        )
        await zombie.load()
        await PublisherStore(redis_view, ViewKeys(0), 2).fence.claim()
        with pytest.raises(Fenced):
            await zombie.ranks.refresh(CATEGORY)
    assert rank_change_events(settings, CATEGORY) == []


# --- two processes, SIGKILL of the active mid-burst -------------------------------------------


def publisher(settings: Settings, tmp: Path, name: str) -> ServiceProcess:
    env = service_env(
        settings,
        OBS_PUBLISHER_METRICS_PORT="0",  # two publishers on one host: no port to share
        OBS_RUN_DIR=str(tmp / name),  # nor a faust data directory
    )
    return ServiceProcess(["service", "publisher"], env, tmp / f"{name}.log")


def lease_holder_pid(client: redis.Redis) -> int | None:
    value = client.get(rk.PUBLISHER_LEASE_KEY)
    return None if value is None else int(value.decode().rsplit(":", 1)[1])


def snapshot(handle: str, hours: int, status: str) -> dict:
    counts = {"followers": 10, "follows": 1, "media_count": 1} if status == "ok" else {}
    return build_metrics_event(
        handle=handle,
        observed_at=START - timedelta(days=5) + timedelta(hours=hours),
        status=status,  # type: ignore[arg-type]
        source="graph",
        **counts,
    )


def set_account(territory_id: str, handle: str) -> dict:
    return build_command(
        command="set_account",
        args={"id": territory_id, "handle": handle},
        requested_by="cli",
        requested_at=format_timestamp(utcnow()),
        key=COMMAND_KEY,
    )


def test_the_standby_takes_over_within_15_s_of_a_sigkill_and_nothing_is_lost_or_doubled(
    settings: Settings, tmp_path: Path
):
    assert all(report.ok for report in create_topics(settings))
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    producer = make_producer(settings)
    processes = {name: publisher(settings, tmp_path, name).start() for name in ("left", "right")}
    stack = Stack(settings, {}, processes["left"], client, tmp_path)
    scorer = FakeScorer(stack, CATEGORY)
    stop = threading.Event()
    try:
        holder = wait_for(
            lambda: lease_holder_pid(client), timeout=60, what="a publisher to take the lease"
        )
        active = next(p for p in processes.values() if p.proc and p.proc.pid == holder)
        standby = next(p for p in processes.values() if p is not active)
        stack.publisher = active
        wait_for(
            lambda: "standby: the lease is held by" in standby.log(),
            timeout=30,
            what=f"the other publisher to wait as a standby:\n{standby.log()[-2000:]}",
        )

        def send(topic: str, key: str, event: dict) -> None:
            producer.send(settings.topic(topic), key=key.encode(), value=orjson.dumps(event))
            producer.flush()

        # Dead links: each account goes dead then back to ok; the kill falls in the middle.
        handles = [f"failover.{i}" for i in range(6)]
        for handle in handles:
            for hours, status in ((1, "ok"), (2, "not_found")):
                send(TOPIC_METRICS, f"instagram:{handle}", snapshot(handle, hours, status))
        commands = [set_account(f"dep-{i:02d}", f"failover.{i}") for i in range(1, 4)]
        for command in commands:
            send(TOPIC_COMMANDS, command["event_id"], command)

        rng = random.Random(20210601)
        ids = scorer.ids
        scorer.apply({tid: float(rng.randint(10, 90)) for tid in ids[:60]})

        def burst() -> None:
            while not stop.is_set():
                picked = rng.sample(ids[:70], 4)
                scorer.apply({tid: round(rng.uniform(1, 99), 2) for tid in picked})
                stop.wait(0.02)

        thread = threading.Thread(target=burst, daemon=True)
        thread.start()
        wait_for(
            lambda: recorded_state(stack, CATEGORY)[0] >= 10,
            timeout=60,
            what=f"rank changes before the kill:\n{active.log()[-2000:]}",
        )
        assert "publisher starting" not in standby.log()  # a standby never consumes
        active.kill()  # SIGKILL, mid-burst
        killed = time.monotonic()
        seq_at_kill = max(e["seq"] for e in rank_change_events(settings, CATEGORY))

        for handle in handles:  # the second not_found (dead), then ok, after the kill
            for hours, status in ((3, "not_found"), (4, "error"), (5, "ok")):
                send(TOPIC_METRICS, f"instagram:{handle}", snapshot(handle, hours, status))
        late = [set_account(f"dep-{i:02d}", f"failover.{i}b") for i in range(4, 7)]
        for command in late:
            send(TOPIC_COMMANDS, command["event_id"], command)

        acquired = wait_for(
            lambda: lease_holder_pid(client) == standby.proc.pid and time.monotonic(),  # type: ignore[union-attr]
            timeout=30,
            what=f"the standby to take the lease:\n{standby.log()[-3000:]}",
            interval=0.05,
        )
        stack.publisher = standby
        first_event = wait_for(
            lambda: recorded_state(stack, CATEGORY)[0] > seq_at_kill and time.monotonic(),
            timeout=60,
            what=f"the new active's first rank change:\n{standby.log()[-3000:]}",
            interval=0.05,
        )
        lease_s, takeover_s = acquired - killed, first_event - killed
        print(
            f"\nfailover: lease taken {lease_s:.1f} s after the SIGKILL, first rank change "
            f"from the new active {takeover_s:.1f} s after it"
        )
        time.sleep(1.0)  # a little more of the burst on the new active
    finally:
        stop.set()
    thread.join()
    try:
        assert takeover_s <= TAKEOVER_LIMIT, f"takeover took {takeover_s:.1f} s"
        wait_published(stack, CATEGORY)

        # Rank changes: seq 1..n, each event the diff of the previous, the last = the API's.
        events = assert_invariants(stack, CATEGORY)
        assert events[-1]["seq"] > seq_at_kill
        last = client.zrange(rk.rank_changes_events_key(CATEGORY), -1, -1)
        assert orjson.loads(last[0]) == events[-1]
        assert recorded_state(stack, CATEGORY)[0] == events[-1]["seq"]

        # Dead links: per account, dead then ok, each transition once.
        def link_events() -> dict[str, list[dict]]:
            per_account: dict[str, list[dict]] = defaultdict(list)
            for record in read_all(settings, settings.topic(TOPIC_DEAD_LINKS), timeout=10):
                event = orjson.loads(record.value)
                per_account[event["handle"]].append(event)
            return per_account

        per_account = wait_for(
            lambda: (got := link_events()) and all(len(got[h]) >= 2 for h in handles) and got,
            timeout=30,
            what=f"every account's dead and ok events:\n{standby.log()[-2000:]}",
        )
        for handle in handles:
            assert [e["status"] for e in per_account[handle]] == ["dead", "ok"], handle
            assert (
                per_account[handle][0]["since"] == snapshot(handle, 2, "not_found")["observed_at"]
            )

        # Commands: each executed once, one result each, its account record once.
        def results() -> Counter[str]:
            records = read_all(settings, settings.topic(TOPIC_COMMAND_RESULTS), timeout=10)
            return Counter(orjson.loads(r.value)["command_id"] for r in records)

        everything = commands + late
        counted = wait_for(
            lambda: all((got := results())[c["event_id"]] for c in everything) and got,
            timeout=30,
            what=f"a result for every command:\n{standby.log()[-2000:]}",
        )
        assert {c["event_id"]: counted[c["event_id"]] for c in everything} == {
            c["event_id"]: 1 for c in everything
        }
        for command in everything:
            result = orjson.loads(client.hget(rk.COMMAND_RESULTS_KEY, command["event_id"]))
            assert result["status"] == "done", result
        accounts = Counter(
            (event["id"], event["handle"])
            for event in (
                orjson.loads(r.value)
                for r in read_all(settings, settings.topic(TOPIC_ACCOUNTS), timeout=10)
            )
        )
        for command in everything:
            args = command["args"]
            assert accounts[(args["id"], args["handle"])] == 1, args

        assert "acquired the lease: token 2" in standby.log()
        assert "recovered from its topics" in standby.log()
    finally:
        scorer.close()
        producer.close()
        for process in processes.values():
            process.kill()
        client.flushdb()
        client.close()


def test_a_standby_stops_within_10_s_of_sigterm_and_says_so(settings: Settings, tmp_path: Path):
    assert all(report.ok for report in create_topics(settings))
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    processes = {name: publisher(settings, tmp_path, name).start() for name in ("left", "right")}
    try:
        holder = wait_for(
            lambda: lease_holder_pid(client), timeout=60, what="a publisher to take the lease"
        )
        standby = next(p for p in processes.values() if p.proc and p.proc.pid != holder)
        wait_for(
            lambda: "standby: the lease is held by" in standby.log(),
            timeout=30,
            what=f"the other publisher to wait as a standby:\n{standby.log()[-2000:]}",
        )
        took = standby.terminate(timeout=10)
        assert took < 10
        assert "publisher: stopped" in standby.log(), standby.log()[-2000:]
        assert "acquired the lease" not in standby.log()
    finally:
        for process in processes.values():
            process.kill()
        client.flushdb()
        client.close()
