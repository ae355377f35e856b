"""Drill: OBS_DRILL_MALFORMED_EVENTS malformed records interleaved with OBS_DRILL_GOOD_EVENTS
good ones in obs.metrics.v1, while the scorer and the publisher consume it.

The good records are the golden log (tests/golden/generate.py); the malformed ones are spread
through it at random places, a mix of every way a record is refused: `invalid_json`
(truncated JSON, invalid UTF-8), `schema` (a negative count, a handle with capitals, a
missing status, a time that is not one), `event_id_mismatch` (a good event under another
id), `future` (observed two days after its record timestamp) and `oversized` (over 256 KiB;
one in a hundred, to keep the in-memory broker small). The whole log, good and bad lines in
production order, is also given to `replay --batch`, which refuses the same lines.

Verdict: every malformed record in `obs.metrics.v1.dlq` once, with the reason it was made
for; every good one applied (the group committed every record, and the view equals `replay
--batch` row by row); neither service crashed; the scorer's own counters agree.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common.clock import format_timestamp, utcnow
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.events import with_event_id
from services.common.kafka import end_offsets, make_producer
from services.common.localstack import RedisServer, TansuBroker, free_port
from services.common.validation import (
    EVENT_ID_MISMATCH,
    FUTURE,
    INVALID_JSON,
    OVERSIZED,
    SCHEMA,
)
from tests.drills.a_helpers import (
    caught_up,
    dead_letters,
    eventually,
    group_committed,
    replay_batch,
    scorer_group,
    settled_comparison,
    tracebacks,
)
from tests.drills.plugin import Drill
from tests.drills.settings import drill_settings
from tests.golden.generate import generate
from tests.services import (
    ServiceProcess,
    fresh_stack,
    isolated_settings,
    service_env,
    wait_for,
)

SEED = 23
DB = 4  # the Redis database of this drill
OVERSIZED_SHARE = 100  # one malformed record in this many is oversized
OVERSIZED_BYTES = 300 * 1024  # well over the contract's 256 KiB
FUTURE_AHEAD = timedelta(days=2)
REFUSED = ("obs_scorer_dead_letters_total", "obs_publisher_invalid_records_total")
CONSUMED = ("obs_scorer_events_consumed_total", "obs_publisher_events_consumed_total")


def _malformed(
    rng: random.Random, good: list[dict[str, Any]], count: int
) -> list[tuple[str, bytes]]:
    """`count` malformed record values, each with the reason it must be dead-lettered for."""
    oversized = count // OVERSIZED_SHARE
    kinds = [OVERSIZED] * oversized
    others = (INVALID_JSON, SCHEMA, EVENT_ID_MISMATCH, FUTURE)
    kinds += [others[i % len(others)] for i in range(count - oversized)]
    rng.shuffle(kinds)
    future = format_timestamp(utcnow() + FUTURE_AHEAD)
    out: list[tuple[str, bytes]] = []
    for number, kind in enumerate(kinds):
        event = dict(rng.choice(good))
        raw = orjson.dumps(event)
        if kind == OVERSIZED:
            event["padding"] = "x" * OVERSIZED_BYTES
            value = orjson.dumps(event)
        elif kind == INVALID_JSON:
            value = (
                raw[: rng.randrange(1, len(raw) - 1)]
                if number % 2
                else raw.replace(b'"handle":"', b'"handle":"\xff\xfe', 1)
            )
        elif kind == SCHEMA:
            variant = number % 4
            if variant == 0:
                event["followers"] = -1 - number
            elif variant == 1:
                event["handle"] = f"Compte{number}"
            elif variant == 2:
                del event["status"]
            else:
                event["observed_at"] = f"hier à {number % 24} h"
            value = orjson.dumps(event)
        elif kind == EVENT_ID_MISMATCH:
            event["event_id"] = hashlib.sha256(f"autre-{number}".encode()).hexdigest()
            value = orjson.dumps(event)
        else:  # FUTURE: valid, its own id, but two days after its record timestamp
            event["observed_at"] = future
            if event["status"] == "ok":
                event["recent_posts"] = []  # none is in the window of a time so far ahead
            value = orjson.dumps(with_event_id(event))
        out.append((kind, value))
    return out


def _counters(port: int) -> Counter[tuple[str, str]]:
    """A service's own counts: ("refused", reason) of the records it dead-lettered (scorer)
    or skipped as invalid (publisher), ("consumed", topic) of the records it read."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in REFUSED:
                out[("refused", sample.labels["reason"])] += int(sample.value)
            elif sample.name in CONSUMED:
                out[("consumed", sample.labels["topic"])] += int(sample.value)
    return out


@pytest.mark.drills
@pytest.mark.timeout(900)
def test_drill_malformed(
    drill: Drill, broker: TansuBroker, redis_server: RedisServer, tmp_path: Path
) -> None:
    sizes = drill_settings()
    scorer_port, publisher_port = free_port(), free_port()
    settings = isolated_settings(
        broker,
        redis_server,
        tmp_path / "run",
        DB,
        scorer_metrics_port=scorer_port,
        publisher_metrics_port=publisher_port,
    )
    fresh_stack(settings).close()
    env = service_env(settings)
    timeout = sizes.recover_timeout_seconds
    rng = random.Random(SEED)

    drill.progress(
        f"generating {sizes.good_events:,} good snapshots and {sizes.malformed_events:,} "
        "malformed records"
    )
    log = generate(SEED, sizes.good_events, end=utcnow() - timedelta(minutes=10))
    bad = _malformed(rng, log.metrics, sizes.malformed_events)
    slots = sorted(rng.randrange(len(log.metrics) + 1) for _ in bad)
    records: list[tuple[bytes, bytes, str | None]] = []  # key, value, reason when malformed
    pending = list(zip(slots, bad, strict=True))
    for index, event in enumerate([*log.metrics, None]):
        while pending and pending[0][0] == index:
            _, (kind, value) = pending.pop(0)
            records.append((f"instagram:drill_{index % 97}".encode(), value, kind))
        if event is not None:
            key = f"instagram:{event['handle']}".encode()
            records.append((key, orjson.dumps(event), None))
    directory = tmp_path / "log"
    directory.mkdir()
    mixed = directory / "mixed.jsonl"
    mixed.write_bytes(b"".join(value + b"\n" for _, value, _ in records))
    accounts = directory / "accounts.jsonl"
    accounts.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in log.final_accounts()))
    planted = Counter(kind for _, _, kind in records if kind is not None)
    reason_of = {hashlib.sha256(value).hexdigest(): kind for _, value, kind in records if kind}
    drill.sent = len(records)

    scorer = ServiceProcess(["service", "scorer"], env, tmp_path / "scorer.log").start()
    publisher = ServiceProcess(["service", "publisher"], env, tmp_path / "publisher.log").start()
    try:
        drill.progress(f"scorer and publisher up; producing {len(records):,} records")
        started = time.monotonic()
        producer = make_producer(settings, enable_idempotence=False)
        for record in log.final_accounts():
            value = orjson.dumps(record)
            producer.send(settings.topic(TOPIC_ACCOUNTS), key=record["id"].encode(), value=value)
        step = max(1, len(records) // 10)
        for number, (key, value, _) in enumerate(records, start=1):
            producer.send(settings.topic(TOPIC_METRICS), key=key, value=value)
            if number % step == 0:
                producer.flush()
                committed = group_committed(settings, scorer_group(settings), (TOPIC_METRICS,))
                drill.progress(
                    f"{number:,} produced, {committed[TOPIC_METRICS]:,} committed by the scorer"
                )
        producer.flush()
        producer.close()
        produced = time.monotonic() - started
        in_topic = sum(end_offsets(settings, TOPIC_METRICS).values())
        drill.progress(f"{in_topic:,} records in the topic after {produced:.0f} s; catching up")
        wait_for(
            lambda: caught_up(settings),
            timeout=timeout,
            interval=0.5,
            what="the scorer caught up with the whole log",
            explain=lambda: scorer.log()[-3000:],
        )
        took = time.monotonic() - started
        committed = group_committed(settings, scorer_group(settings), (TOPIC_METRICS,))
        drill.figures["ingest"] = f"{took:.0f} s ({len(records) / took:,.0f} records/s)"

        drill.progress("reading the dead letters")
        dlq = dead_letters(settings)
        drill.dead_lettered = len(dlq)
        positions = Counter((d["partition"], d["offset"]) for d in dlq)
        drill.doubled = sum(n - 1 for n in positions.values())
        found = Counter(d["payload_sha256"] for d in dlq)
        missing = sum(1 for sha in reason_of if sha not in found)
        wrong_reason = sum(1 for d in dlq if reason_of.get(d["payload_sha256"]) != d["reason"])
        by_reason = Counter(d["reason"] for d in dlq)
        drill.figures["by reason"] = ", ".join(f"{r} {n:,}" for r, n in sorted(by_reason.items()))
        drill.applied = committed[TOPIC_METRICS] - len(positions)

        drill.progress("comparing the view with `replay --batch` of the same lines")
        batch, refused = replay_batch(mixed, accounts, env)
        result = settled_comparison(settings.redis_url, batch)
        drill.lost = missing + result.lost
        drill.equal_to_batch = result.equal
        drill.figures["ranked rows"] = f"{result.expected_rows:,}"

        good = len(records) - sum(planted.values())
        drill.expect(in_topic == len(records), f"{in_topic:,} records in the topic")
        drill.expect(by_reason == planted, f"dead letters {dict(by_reason)}, made {dict(planted)}")
        drill.expect(wrong_reason == 0, f"{wrong_reason} dead letters with another reason")
        drill.expect(drill.applied == good, f"{drill.applied:,} good records applied of {good:,}")
        drill.expect(refused == planted, f"replay --batch refused {dict(refused)}")
        drill.expect(result.extra == 0, f"{result.extra} rows the batch does not have")
        drill.expect(result.equal, "; ".join(result.examples))
        # Each service's own counters agree: the scorer dead-lettered, the publisher (which
        # follows link status from the same topic) skipped, exactly the malformed records.
        made = Counter({("refused", reason): n for reason, n in planted.items()})
        made[("consumed", "metrics")] = len(records)
        for name, port in (("scorer", scorer_port), ("publisher", publisher_port)):
            eventually(
                lambda port=port: _counters(port)[("consumed", "metrics")] >= len(records),
                timeout=timeout,
            )
            counted = _counters(port)
            seen = Counter({key: counted[key] for key in counted if key[0] == "refused"})
            seen[("consumed", "metrics")] = counted[("consumed", "metrics")]
            drill.expect(seen == made, f"the {name} counted {dict(seen)}")
        # Neither service crashed nor logged a traceback on a malformed record.
        assert scorer.proc is not None and scorer.proc.poll() is None, scorer.log()[-3000:]
        assert publisher.proc is not None and publisher.proc.poll() is None, publisher.log()[-3000:]
        assert tracebacks(scorer, publisher) == []
        assert result.expected_rows > 100
    finally:
        scorer.terminate()
        publisher.terminate()
