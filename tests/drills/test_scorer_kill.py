"""Drill: one of two scorer workers SIGKILLed in the middle of a replay, then restarted.

The golden log (tests/golden/generate.py: duplicates, out-of-order events, handle changes,
month boundaries…) of OBS_DRILL_EVENTS snapshots is replayed by `observatoire replay` while two
scorer workers share the partitions (its account records and first hundredth before, so that
the workers are up); once 40 % of it is committed one worker is SIGKILLed (its uncommitted
batch is delivered again after the rebalance), and a new worker is started.

Verdict: every snapshot committed, the view equal to `replay --batch` row by row, and the time
from the restart to the whole log committed.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from services.common.clock import utcnow
from services.common.contracts import TOPIC_METRICS
from services.common.kafka import end_offsets
from services.common.localstack import RedisServer, TansuBroker
from tests.drills.a_helpers import (
    CommittedOffsets,
    caught_up,
    group_committed,
    replay,
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

SEED = 19
KILL_AT = 0.4  # share of the log committed when a worker is killed
DB = 2  # the Redis database of this drill


@pytest.mark.drills
def test_drill_scorer_kill(
    drill: Drill, broker: TansuBroker, redis_server: RedisServer, tmp_path: Path
) -> None:
    sizes = drill_settings()
    settings = isolated_settings(broker, redis_server, tmp_path / "run", DB, scorer_metrics_port=0)
    fresh_stack(settings).close()
    env = service_env(settings, OBS_SCORER_BATCH_SIZE="500")
    timeout = sizes.recover_timeout_seconds

    drill.progress(f"generating the golden log ({sizes.events:,} snapshots)")
    log = generate(SEED, sizes.events, end=utcnow() - timedelta(minutes=10))
    metrics_path, accounts_path = log.write(tmp_path / "log")
    sent = len(log.metrics)
    drill.sent = sent

    # The log in two files: a first hundredth (with the account records) that the workers
    # apply before the drill starts, so that the kill falls mid-log whatever its size.
    head = max(1, sent // 100)
    head_path, rest_path = tmp_path / "log" / "head.jsonl", tmp_path / "log" / "rest.jsonl"
    lines = metrics_path.read_bytes().splitlines(keepends=True)
    head_path.write_bytes(b"".join(lines[:head]))
    rest_path.write_bytes(b"".join(lines[head:]))

    workers = [
        ServiceProcess(["service", "scorer"], env, tmp_path / f"scorer-{n}.log").start()
        for n in (1, 2)
    ]
    started = list(workers)
    producer = replay(head_path, accounts_path, env, tmp_path / "replay-head.log")
    try:
        assert producer.wait(timeout) == 0, producer.log()[-3000:]
        wait_for(
            lambda: caught_up(settings),
            timeout=timeout,
            what="the first snapshots applied",
            explain=lambda: "\n".join(w.log()[-1500:] for w in workers),
        )
        drill.progress("two scorer workers up; `observatoire replay` producing the log")
        producer = replay(rest_path, None, env, tmp_path / "replay.log")
        replay_started = time.monotonic()
        with CommittedOffsets(settings, scorer_group(settings), TOPIC_METRICS) as committed:
            at_kill = wait_for(
                lambda: (c := committed()) >= KILL_AT * sent and c,
                timeout=timeout,
                interval=0.02,
                what=f"{KILL_AT:.0%} of the log committed",
                explain=lambda: "\n".join(w.log()[-1500:] for w in workers),
            )
        victim = workers.pop(0)
        assert victim.proc is not None
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        replaying = producer.proc is not None and producer.proc.poll() is None
        drill.progress(
            f"worker 1 SIGKILLed at {at_kill / sent:.0%} of the log committed "
            f"(replay {'still producing' if replaying else 'done'}); restarting it"
        )
        restarted = time.monotonic()
        workers.append(
            ServiceProcess(["service", "scorer"], env, tmp_path / "scorer-3.log").start()
        )
        started.append(workers[-1])

        assert producer.wait(timeout) == 0, producer.log()[-3000:]
        replayed = time.monotonic()
        assert f"{sent - head} snapshots produced" in producer.log(), producer.log()[-3000:]
        drill.progress("the replay is done; waiting for the whole log to be committed")
        wait_for(
            lambda: caught_up(settings),
            timeout=timeout,
            interval=0.2,
            what="the whole log committed",
            explain=lambda: "\n".join(w.log()[-1500:] for w in workers),
        )
        drill.recover_seconds = time.monotonic() - restarted
        drill.figures["replay"] = f"{replayed - replay_started:.0f} s"
        drill.figures["caught up after the replay"] = f"{time.monotonic() - replayed:.1f} s"
        in_topic = sum(end_offsets(settings, TOPIC_METRICS).values())
        drill.applied = group_committed(settings, scorer_group(settings), (TOPIC_METRICS,))[
            TOPIC_METRICS
        ]

        drill.progress("comparing the view with `replay --batch`")
        batch, refused = replay_batch(metrics_path, accounts_path, env)
        assert refused == Counter(), refused  # the golden log is all valid
        result = settled_comparison(settings.redis_url, batch)
        drill.lost = result.lost
        drill.doubled = max(0, in_topic - sent)  # records in the topic beyond the lines sent
        drill.equal_to_batch = result.equal
        drill.figures["killed at"] = f"{at_kill / sent:.0%} committed"
        drill.figures["ranked rows"] = f"{result.expected_rows:,}"
        drill.expect(at_kill < sent, "the worker was killed after the whole log was committed")
        drill.expect(in_topic == sent, f"{in_topic:,} records in the topic for {sent:,} sent")
        drill.expect(drill.applied == sent, f"{drill.applied:,} committed of {sent:,}")
        drill.expect(result.extra == 0, f"{result.extra} rows the batch does not have")
        drill.expect(result.equal, "; ".join(result.examples))
        assert result.expected_rows > 100  # the log ranks territories in every category
        assert tracebacks(*started[1:]) == [], "a surviving worker failed"
        assert all(w.proc is not None and w.proc.poll() is None for w in workers)
    finally:
        producer.kill()
        for worker in workers:
            worker.terminate()
