"""Drill: the active publisher SIGKILLed during a burst of rank changes; the standby takes over.

Two publisher processes share the lease (services/publisher/lease.py): one active, one standby.
The scorer's side is played as in tests/integration/test_publisher_failover.py (`FakeScorer`:
the scorer's current view written in Redis, then announced in `obs.scores.v1`) for three
categories at once: OBS_DRILL_RANK_CHANGE_BURST score events, four territories a batch, and the
active publisher is SIGKILLed once half of them are sent.

Verdict: every score event consumed (applied: the publishers' group committed the topic's end);
the rank-change `seq` of every category counts 1, 2, 3… (lost: gaps, doubled: repeats), every
event's `changes` is the diff of the previous `top`, and each category's last event is the list
the scores say (the newest score of each territory in `obs.scores.v1`, ranked) and the API
shows; recovered in: from the SIGKILL to the new active's first rank change.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from services.common.contracts import TOPIC_RANK_CHANGES, TOPIC_SCORES
from services.common.kafka import end_offsets
from services.common.localstack import RedisServer, TansuBroker
from services.common.settings import Settings
from tests.drills.a_helpers import group_committed, rank_change_seqs
from tests.drills.plugin import Drill
from tests.drills.settings import drill_settings
from tests.integration.test_publisher_failover import lease_holder_pid, publisher
from tests.integration.test_publisher_streams import (
    FakeScorer,
    Stack,
    api_top,
    assert_invariants,
    published_size,
    recorded_state,
    wait_published,
)
from tests.kafka_read import read_all
from tests.services import fresh_stack, isolated_settings, wait_for
from tests.signing import COMMAND_KEY

DB = 15  # the Redis database of this drill
CATEGORIES = ("departements", "regions", "communautes-agglomeration")
PER_BATCH = 4  # territories per score batch of the burst
PAUSE = 0.05  # seconds between two rounds of batches (the burst outlasts the takeover)
SEED = 20210601


@pytest.fixture
def kill_settings(
    broker: TansuBroker, redis_server: RedisServer, tmp_path: Path
) -> Iterator[Settings]:
    settings = isolated_settings(
        broker, redis_server, tmp_path / "run", DB, command_key=COMMAND_KEY
    )
    client = fresh_stack(settings)
    try:
        yield settings
    finally:
        client.flushdb()
        client.close()


def _expected_top(settings: Settings, category: str) -> list[str]:
    """The published list the scores say: each territory's newest score event in
    `obs.scores.v1` (inactive ones left out), ranked by score, ties by id."""
    newest: dict[str, dict] = {}
    for record in read_all(settings, TOPIC_SCORES, timeout=30):
        event = orjson.loads(record.value)
        if event["category"] != category:
            continue
        known = newest.get(event["id"])
        if known is None or event["observed_at"] >= known["observed_at"]:
            newest[event["id"]] = event
    ranked = sorted(
        (e for e in newest.values() if e["status"] == "ranked"),
        key=lambda e: (-e["score"], e["id"]),
    )
    return [e["id"] for e in ranked[: published_size(category)]]


@pytest.mark.drills
def test_drill_publisher_kill(drill: Drill, kill_settings: Settings, tmp_path: Path) -> None:
    sizes = drill_settings()
    settings = kill_settings
    timeout = sizes.recover_timeout_seconds
    client = redis.Redis.from_url(settings.redis_url)
    processes = {name: publisher(settings, tmp_path, name).start() for name in ("left", "right")}
    stack = Stack(settings, {}, processes["left"], client, tmp_path)
    scorers = {category: FakeScorer(stack, category) for category in CATEGORIES}
    rng = random.Random(SEED)
    sent = [0]  # score events, the first lists included
    burst_sent = [0]
    stop = threading.Event()

    def logs() -> str:
        return "\n".join(f"--- {n}\n{p.log()[-2000:]}" for n, p in processes.items())

    def burst() -> None:
        """Score batches, the categories in turn, until the burst is sent."""
        while not stop.is_set() and burst_sent[0] < sizes.rank_change_burst:
            for scorer in scorers.values():
                picked = rng.sample(scorer.ids[:70], PER_BATCH)
                scorer.apply({tid: round(rng.uniform(1, 99), 2) for tid in picked})
                sent[0] += PER_BATCH
                burst_sent[0] += PER_BATCH
            stop.wait(PAUSE)

    thread = threading.Thread(target=burst, daemon=True)
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
            what="the other publisher to wait as a standby",
            explain=logs,
        )
        for scorer in scorers.values():  # a first list in every category
            first = {tid: float(rng.randint(10, 90)) for tid in scorer.ids[:60]}
            scorer.apply(first)
            sent[0] += len(first)
        wait_for(
            lambda: all(recorded_state(stack, c)[0] >= 1 for c in CATEGORIES),
            timeout=timeout,
            what="the active publisher's first list in every category",
            explain=logs,
        )
        drill.progress(
            f"two publishers up, one active; a burst of {sizes.rank_change_burst:,} score "
            f"events over {len(CATEGORIES)} categories"
        )
        thread.start()
        wait_for(
            lambda: burst_sent[0] >= sizes.rank_change_burst / 2,
            timeout=timeout,
            interval=0.01,
            what="half the burst sent",
            explain=logs,
        )
        active.kill()  # SIGKILL, mid-burst
        killed = time.monotonic()
        at_kill = {c: recorded_state(stack, c)[0] for c in CATEGORIES}
        at_burst = burst_sent[0]
        drill.progress(
            f"active publisher SIGKILLed after {at_burst:,} score events of the burst "
            f"(seq at the kill: {', '.join(f'{c} {s}' for c, s in at_kill.items())})"
        )
        acquired = wait_for(
            lambda: lease_holder_pid(client) == standby.proc.pid and time.monotonic(),  # type: ignore[union-attr]
            timeout=60,
            interval=0.05,
            what="the standby to take the lease",
            explain=logs,
        )
        stack.publisher = standby
        first = wait_for(
            lambda: (
                any(recorded_state(stack, c)[0] > at_kill[c] for c in CATEGORIES)
                and time.monotonic()
            ),
            timeout=60,
            interval=0.05,
            what="the new active's first rank change",
            explain=logs,
        )
        drill.recover_seconds = first - killed
        drill.figures["killed after"] = f"{at_burst:,} of {sizes.rank_change_burst:,} burst events"
        drill.figures["lease taken after"] = f"{acquired - killed:.1f} s"
        drill.progress(
            f"the standby took the lease {acquired - killed:.1f} s after the SIGKILL and "
            f"published {first - killed:.1f} s after it"
        )
        thread.join(timeout)
        assert not thread.is_alive(), "the burst did not end"
        drill.sent = sent[0]

        drill.progress("the burst is sent; waiting for every category's list")
        for category in CATEGORIES:
            wait_published(stack, category, timeout=timeout)
        group = f"{settings.topic_prefix}observatoire-publisher"
        in_topic = sum(end_offsets(settings, TOPIC_SCORES).values())
        drill.applied = wait_for(
            lambda: (
                (n := group_committed(settings, group, (TOPIC_SCORES,))[TOPIC_SCORES]) >= in_topic
                and n
            ),
            timeout=timeout,
            what="the score events committed",
            explain=logs,
        )
        drill.expect(in_topic == sent[0], f"{in_topic:,} score events in the topic")
        drill.dead_lettered = len(read_all(settings, f"{TOPIC_SCORES}.dlq", timeout=30))

        events = [orjson.loads(r.value) for r in read_all(settings, TOPIC_RANK_CHANGES)]
        gaps, repeats = rank_change_seqs(events)
        drill.lost, drill.doubled = gaps, repeats
        drill.figures["rank changes"] = f"{len(events):,}"
        for category in CATEGORIES:
            expected = _expected_top(settings, category)
            last = max((e for e in events if e["category"] == category), key=lambda e: e["seq"])
            drill.expect(
                last["top"] == expected,
                f"{category}: the last rank change is not the list the scores say",
            )
            drill.expect(
                api_top(settings, category) == expected,
                f"{category}: the API's list is not the one the scores say",
            )
            drill.expect(
                last["seq"] > at_kill[category], f"{category}: no rank change after the kill"
            )
        drill.progress("checking each event's changes against the previous list")
        for category in CATEGORIES:
            assert_invariants(stack, category)  # seq 1..n, changes = the diff, last = the API's
        assert "acquired the lease" in standby.log()
        assert "recovered from its topics" in standby.log()
        assert "Traceback" not in standby.log(), standby.log()[-3000:]
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(10)
        for scorer in scorers.values():
            scorer.close()
        for process in processes.values():
            process.kill()
        client.close()
