"""Golden: the streaming scorer, killed three times mid-log, ends exactly where the reference
batch computation (`replay --batch`) puts every territory — current and edition standings,
every category, ranks and scores."""

from __future__ import annotations

import signal
import time
import uuid
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
import redis

from services.common.clock import utcnow
from services.common.contracts import CATEGORY_IDS, TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.kafka import (
    KAFKA_BATCH_BYTES,
    KAFKA_LINGER_MS,
    create_topics,
    end_offsets,
    make_producer,
)
from services.common.localstack import RedisServer, TansuBroker, free_port
from services.common.settings import Settings
from tests.golden.check import assert_same_standings, batch_standings, produce_golden_log
from tests.golden.generate import generate
from tests.services import (
    ServiceProcess,
    committed_offsets,
    histories_from_redis,
    service_env,
    standings_from_redis,
    wait_for,
)

N_EVENTS = 50_000
KILL_AT = (0.25, 0.45, 0.62)  # fractions of the log committed when the scorer is SIGKILLed


@pytest.mark.slow
def test_streaming_equals_batch_on_the_golden_log_despite_three_crashes(
    broker: TansuBroker, redis_server: RedisServer, tmp_path: Path
):
    settings = Settings(
        _env_file=None,
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=f"g{uuid.uuid4().hex[:10]}-",
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/5",
        scorer_metrics_port=free_port(),
        run_dir=tmp_path / "run",
        rebuild_grace_seconds=0,
    )
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    end = utcnow() - timedelta(minutes=10)
    log = generate(7, N_EVENTS, end=end)
    assert len(log.metrics) >= N_EVENTS
    assert all(report.ok for report in create_topics(settings))
    total = produce_golden_log(settings, log)

    env = service_env(settings, OBS_SCORER_BATCH_SIZE="500")
    group = f"{settings.topic_prefix}observatoire-scorer"
    kills = []
    for target in KILL_AT:
        scorer = ServiceProcess(["service", "scorer"], env, tmp_path / "scorer.log").start()
        done = wait_for(
            lambda t=target: (c := committed_offsets(settings, group)) >= t * total and c,
            timeout=240,
            interval=0.05,
            what=f"{target:.0%} of the log committed",
        )
        assert scorer.proc is not None
        scorer.proc.send_signal(signal.SIGKILL)
        scorer.proc.wait(10)
        kills.append(done / total)
    assert all(0.2 <= fraction <= 0.8 for fraction in kills), kills

    scorer = ServiceProcess(["service", "scorer"], env, tmp_path / "scorer.log").start()
    try:
        wait_for(
            lambda: committed_offsets(settings, group) >= total,
            timeout=300,
            what=f"the whole log committed:\n{scorer.log()[-2000:]}",
        )
        time.sleep(0.5)  # the last batch's Redis writes precede its commit; nothing after it
        current, editions = standings_from_redis(settings.redis_url)
        live_histories = histories_from_redis(settings.redis_url)
    finally:
        scorer.terminate()

    expected = batch_standings(log, tmp_path)
    (tmp_path / "streaming.json").write_bytes(
        orjson.dumps({"current": current, "editions": editions})
    )
    (tmp_path / "batch.json").write_bytes(orjson.dumps(expected.to_json_object()))
    assert set(current) == set(CATEGORY_IDS)  # the golden log covers every category
    assert_same_standings(current, editions, expected)
    ranked = sum(map(len, current.values()))
    print(f"killed at {[f'{k:.0%}' for k in kills]} of the log; {ranked} ranked")

    # `observatoire rebuild` (two processes sharing the partitions, the log reduced in memory,
    # then applied at once) gives the same standings from the same topics.
    # The live scorers recorded every batch's day summaries before committing it, so every
    # snapshot's day point is read from obs.day-summaries.v1 rather than validated again.
    rebuild = ServiceProcess(["rebuild"], env, tmp_path / "rebuild.log").start()
    assert rebuild.wait(300) == 0, rebuild.log()[-3000:]
    said = " ".join(rebuild.log().split())  # the console wraps long lines
    assert f"and {total} snapshots ({total} with their day's point from" in said, said
    current, editions = standings_from_redis(settings.redis_url)
    assert_same_standings(current, editions, expected)
    # The daily history too: points and ranks, live (with its crashes) as rebuilt.
    rebuilt_histories = histories_from_redis(settings.redis_url)
    assert sum(map(len, live_histories.values())) > len(live_histories) > 50
    assert rebuilt_histories == live_histories


def test_rebuild_of_a_log_written_in_large_batches_equals_batch(
    broker: TansuBroker, redis_server: RedisServer, tmp_path: Path
):
    """The topic as the Kafka-profile collector writes it (batches of up to 256 KB): on the
    local broker its end offsets come out short (the last batch's first offset + 1), yet the
    rebuild reads every record and lands exactly where `replay --batch` does."""
    settings = Settings(
        _env_file=None,
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=f"g{uuid.uuid4().hex[:10]}-",
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/6",
        run_dir=tmp_path / "run",
        rebuild_grace_seconds=0,
    )
    redis.Redis.from_url(settings.redis_url).flushdb()
    log = generate(11, 12_000, end=utcnow() - timedelta(minutes=10))
    assert all(report.ok for report in create_topics(settings))
    producer = make_producer(
        settings, batch_size=KAFKA_BATCH_BYTES, linger_ms=KAFKA_LINGER_MS, enable_idempotence=False
    )
    for record in log.final_accounts():
        key = record["id"].encode()
        producer.send(settings.topic(TOPIC_ACCOUNTS), key=key, value=orjson.dumps(record))
    for event in log.metrics:
        key = f"instagram:{event['handle']}".encode()
        producer.send(settings.topic(TOPIC_METRICS), key=key, value=orjson.dumps(event))
    producer.flush()
    producer.close()
    assert sum(end_offsets(settings, TOPIC_METRICS).values()) < len(log.metrics)  # batched

    rebuild = ServiceProcess(["rebuild"], service_env(settings), tmp_path / "rebuild.log").start()
    assert rebuild.wait(300) == 0, rebuild.log()[-3000:]
    assert f"and {len(log.metrics)} snapshots" in rebuild.log()  # every record read
    assert f"{len(log.metrics)}/{len(log.metrics)}" in rebuild.log()  # the bar's total grew
    current, editions = standings_from_redis(settings.redis_url)
    assert_same_standings(current, editions, batch_standings(log, tmp_path))
