"""The golden log against the reference batch: produce it as a collector would, compute what
`replay --batch` gives, and compare with a readable failure (tests/integration/test_golden.py on
one Redis, tests/integration/test_redis_cluster.py through the whole stack on a cluster)."""

from __future__ import annotations

from pathlib import Path

import orjson

from services.common.clock import utcnow
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.kafka import end_offsets, make_producer
from services.common.reference import ReferenceResult, compute_standings
from services.common.settings import Settings
from tests.golden.generate import GoldenLog


def produce_golden_log(settings: Settings, log: GoldenLog) -> int:
    """Produce the log as a collector would: the account records first, the handle changes
    mid-stream; returns how many metrics records the topic holds."""
    producer = make_producer(settings, enable_idempotence=False)
    accounts_topic, metrics_topic = settings.topic(TOPIC_ACCOUNTS), settings.topic(TOPIC_METRICS)
    for record in log.accounts:
        producer.send(accounts_topic, key=record["id"].encode(), value=orjson.dumps(record))
    after = dict(log.accounts_after)  # index -> record
    for index, event in enumerate(log.metrics):
        if index in after:
            producer.flush()
            record = after[index]
            producer.send(accounts_topic, key=record["id"].encode(), value=orjson.dumps(record))
        producer.send(
            metrics_topic, key=f"instagram:{event['handle']}".encode(), value=orjson.dumps(event)
        )
    producer.flush()
    producer.close()
    total = sum(end_offsets(settings, TOPIC_METRICS).values())
    assert total == len(log.metrics)
    return total


def batch_standings(log: GoldenLog, directory: Path) -> ReferenceResult:
    """What `replay --batch` computes from the log (written to `directory` as JSON lines)."""
    metrics_path, accounts_path = log.write(directory)
    expected = compute_standings(
        metrics_path.read_bytes().splitlines(),
        account_lines=accounts_path.read_bytes().splitlines(),
        now_ms=int(utcnow().timestamp() * 1000),
    )
    assert expected.rejected == []
    return expected


def differences(actual: dict, expected: dict) -> dict[str, object]:
    """Per category: the territories whose (rank, score) differ, for a readable failure."""
    out: dict[str, object] = {}
    for category in sorted(set(actual) | set(expected)):
        got = {row["id"]: (row["rank"], row["score"]) for row in actual.get(category, [])}
        want = {row["id"]: (row["rank"], row["score"]) for row in expected.get(category, [])}
        diff = {
            tid: {"streaming": got.get(tid), "batch": want.get(tid)}
            for tid in sorted(set(got) | set(want))
            if got.get(tid) != want.get(tid)
        }
        if diff:
            out[category] = dict(list(diff.items())[:5]) | {"count": len(diff)}
    return out


def assert_same_standings(current: dict, editions: dict, expected: ReferenceResult) -> None:
    """Current and edition standings equal the batch's, every category, ranks and scores."""
    assert current == expected.current, differences(current, expected.current)
    assert editions == expected.editions, {
        month: differences(editions.get(month, {}), expected.editions.get(month, {}))
        for month in sorted(set(editions) | set(expected.editions))
        if editions.get(month) != expected.editions.get(month)
    }
