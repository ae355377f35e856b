"""The hand-computed fixture (tests/unit/test_reference.py) through the real faust scorer:
its standings, written by hand in that module, are what the streaming path gives too."""

from __future__ import annotations

from services.cli.topics import seed_bundled_accounts
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.kafka import create_topics, make_producer
from services.common.localstack import free_port
from services.common.settings import Settings
from tests.kafka_read import read_all
from tests.services import (
    ServiceProcess,
    committed_offsets,
    service_env,
    standings_from_redis,
    wait_for,
)
from tests.unit.test_reference import (
    ACCOUNT_LINES,
    EXPECTED_CURRENT,
    EXPECTED_EDITIONS,
    METRICS_LINES,
    NOW_MS,
)


def test_streaming_scorer_gives_the_hand_computed_standings(settings: Settings, tmp_path):
    settings = settings.model_copy(
        update={
            "redis_url": f"{settings.redis_url.rsplit('/', 1)[0]}/7",
            "scorer_metrics_port": free_port(),
        }
    )
    import redis

    redis.Redis.from_url(settings.redis_url).flushdb()
    assert all(report.ok for report in create_topics(settings))
    assert seed_bundled_accounts(settings) == 18
    producer = make_producer(settings)
    # The record timestamp is the fixture's clock, as `replay --batch` takes its own clock.
    for raw in ACCOUNT_LINES:
        if raw:
            producer.send(
                settings.topic(TOPIC_ACCOUNTS), key=b"fixture", value=raw, timestamp_ms=NOW_MS
            )
    lines = [raw for raw in METRICS_LINES if raw]
    for raw in lines:
        producer.send(settings.topic(TOPIC_METRICS), key=b"fixture", value=raw, timestamp_ms=NOW_MS)
    producer.flush()
    producer.close()

    scorer = ServiceProcess(
        ["service", "scorer"], service_env(settings), tmp_path / "scorer.log"
    ).start()
    try:
        group = f"{settings.topic_prefix}observatoire-scorer"
        wait_for(
            lambda: committed_offsets(settings, group) >= len(lines),
            timeout=60,
            what=f"the fixture consumed:\n{scorer.log()[-2000:]}",
        )
        current, editions = standings_from_redis(settings.redis_url)
    finally:
        scorer.terminate()
    assert current == EXPECTED_CURRENT
    assert editions == EXPECTED_EDITIONS
    dead = read_all(settings, settings.topic(f"{TOPIC_METRICS}.dlq"), timeout=10)
    assert len(dead) == 3  # invalid JSON, a future event, a tampered event id
