"""What the drills share (written for test_scorer_kill.py, test_redis_flush.py,
test_malformed.py and test_api_load.py): `replay` and `replay --batch` run as an operator runs
them, the view compared with the batch row by row, the scorer's group and its dead letters
read back, rank-change seq gaps and repeats, a supervisor restarting services as `observatoire
run` does, percentiles."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS, TOPICS_BY_NAME
from services.common.kafka import end_offsets
from services.common.settings import Settings
from tests.kafka_read import read_all
from tests.services import REPO_ROOT, ServiceProcess, standings_from_redis

_SKIPPED = re.compile(r"^skipped \S+:\d+: (\w+): ", re.MULTILINE)
Standings = dict[str, list[dict[str, Any]]]  # category -> [{"rank", "id", "score"}, ...]


def replay_batch(
    metrics: Path, accounts: Path | None, env: dict[str, str]
) -> tuple[dict[str, Any], Counter[str]]:
    """`observatoire replay METRICS [--accounts ACCOUNTS] --batch`, run as a process: its
    `{"current": ..., "editions": ...}` and how many lines it refused, by reason."""
    args = [sys.executable, "-m", "services.cli", "replay", str(metrics), "--batch"]
    if accounts is not None:
        args += ["--accounts", str(accounts)]
    done = subprocess.run(
        args, env=env, cwd=REPO_ROOT, capture_output=True, check=False, timeout=600
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    refused = Counter(
        match.group(1) for match in _SKIPPED.finditer(done.stderr.decode(errors="replace"))
    )
    return orjson.loads(done.stdout), refused


def replay(metrics: Path, accounts: Path | None, env: dict[str, str], log: Path) -> ServiceProcess:
    """`observatoire replay METRICS [--accounts ACCOUNTS]` started as a process (it produces
    the file into obs.metrics.v1 and exits)."""
    args = ["replay", str(metrics)] + ([] if accounts is None else ["--accounts", str(accounts)])
    return ServiceProcess(args, env, log).start()


@dataclass(frozen=True, slots=True)
class Comparison:
    """The view against `replay --batch`, every ranking (current and each edition month)."""

    expected_rows: int  # ranked rows the batch gives, every ranking
    lost: int  # rows of the batch missing from the view or there with another rank or score
    extra: int  # rows of the view the batch does not have
    examples: tuple[str, ...]  # a few differences, for the failure message

    @property
    def equal(self) -> bool:
        return self.lost == 0 and self.extra == 0


def compare(
    current: Standings, editions: dict[str, Standings], batch: dict[str, Any]
) -> Comparison:
    """Row by row: `(scope, category, id) -> (rank, score)` of the view against the batch's."""

    def rows(current: Standings, editions: dict[str, Standings]) -> dict[tuple, tuple]:
        scopes = [("current", current), *sorted(editions.items())]
        return {
            (scope, category, row["id"]): (row["rank"], row["score"])
            for scope, rankings in scopes
            for category, ranking in rankings.items()
            for row in ranking
        }

    got = rows(current, editions)
    want = rows(batch["current"], batch["editions"])
    lost = [key for key, value in want.items() if got.get(key) != value]
    extra = [key for key in got if key not in want]
    examples = tuple(
        f"{'/'.join(key)}: view {got.get(key)}, batch {want.get(key)}" for key in (lost + extra)[:5]
    )
    return Comparison(len(want), len(lost), len(extra), examples)


def settled_comparison(
    redis: str | Settings, batch: dict[str, Any], *, timeout: float = 5.0
) -> Comparison:
    """The view of `redis` (a URL, or Settings for a cluster) against the batch once the
    stack has caught up: a batch's writes precede its commit, so the view is final then; a
    short poll absorbs a commit racing the read. The last comparison if it never equals."""
    deadline = time.monotonic() + timeout
    while True:
        result = compare(*standings_from_redis(redis), batch)
        if result.equal or time.monotonic() >= deadline:
            return result
        time.sleep(0.2)


def eventually(condition: Callable[[], object], *, timeout: float, interval: float = 0.2) -> bool:
    """Whether `condition()` becomes true within `timeout` seconds (polled; the drill goes on
    either way and reports what it found)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def group_committed(settings: Settings, group: str, topics: Sequence[str]) -> dict[str, int]:
    """Offsets the group has committed, summed over each topic's partitions."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=group)
    try:
        out = {}
        for topic in topics:
            ends = end_offsets(settings, topic)
            tps = [TopicPartition(settings.topic(topic), p) for p in ends]
            out[topic] = sum(consumer.committed(tp) or 0 for tp in tps)
        return out
    finally:
        consumer.close()


class CommittedOffsets:
    """A group's committed offsets of one topic, summed over its partitions, read as often as
    needed through one consumer (a new consumer per read costs a bootstrap)."""

    def __init__(self, settings: Settings, group: str, topic: str) -> None:
        self._consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=group)
        partitions = TOPICS_BY_NAME[topic].partitions
        self._partitions = [TopicPartition(settings.topic(topic), p) for p in range(partitions)]

    def __call__(self) -> int:
        return sum(self._consumer.committed(tp) or 0 for tp in self._partitions)

    def __enter__(self) -> CommittedOffsets:
        return self

    def __exit__(self, *_: object) -> None:
        self._consumer.close()


def scorer_group(settings: Settings) -> str:
    return f"{settings.topic_prefix}observatoire-scorer"


def caught_up(settings: Settings) -> bool:
    """The scorer's group has committed the end offset of every partition of obs.metrics.v1
    and obs.accounts.v1 (one record per batch on the local broker: the offsets count records)."""
    committed = group_committed(settings, scorer_group(settings), (TOPIC_METRICS, TOPIC_ACCOUNTS))
    return all(
        committed[topic] >= sum(end_offsets(settings, topic).values())
        for topic in (TOPIC_METRICS, TOPIC_ACCOUNTS)
    )


def dead_letters(settings: Settings, topic: str = TOPIC_METRICS) -> list[dict[str, Any]]:
    """Every record of `{topic}.dlq`, decoded."""
    return [orjson.loads(record.value) for record in read_all(settings, f"{topic}.dlq")]


def dead_letter_reasons(records: Sequence[dict[str, Any]]) -> Counter[str]:
    return Counter(record["reason"] for record in records)


def rank_change_seqs(events: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """(gaps, duplicates) of the rank-change `seq` of every category: each category counts
    1, 2, 3… with no gap and no repeat."""
    gaps = duplicates = 0
    by_category: dict[str, list[int]] = {}
    for event in events:
        by_category.setdefault(event["category"], []).append(event["seq"])
    for seqs in by_category.values():
        counts = Counter(seqs)
        duplicates += sum(n - 1 for n in counts.values())
        gaps += max(seqs) - len(counts)
    return gaps, duplicates


def repeated_seqs(records: Sequence[Any]) -> list[str]:
    """Each rank-change `seq` seen more than once, with where and what its copies are (the
    records of obs.rank-changes.v1 as read back), for a failure message a person can act on."""
    copies: dict[tuple[str, int], list[Any]] = {}
    for record in records:
        event = orjson.loads(record.value)
        copies.setdefault((event["category"], event["seq"]), []).append((record, event))
    return [
        f"{category} seq {seq}: "
        + " / ".join(
            f"offset {r.partition}:{r.offset} at {r.timestamp} ms, event {e['event_id'][:12]}, "
            f"as_of {e['at']}, {len(e['changes'])} changes, leader {e['leader']}"
            for r, e in found
        )
        for (category, seq), found in sorted(copies.items())
        if len(found) > 1
    ]


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-100) of `values` (nan when there are none)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def tracebacks(*processes: ServiceProcess) -> list[str]:
    """The logs (by name) of the processes that printed a Python traceback."""
    return [p.log_path.name for p in processes if "Traceback" in p.log()]


class Supervisor:
    """Restarts a service process that exits while the stack is up, as `observatoire run`
    does (services/cli/run.py): a publisher that loses its lease stands down (exit 75) and is
    started again. Records each exit as (log name, exit code)."""

    def __init__(self, processes: Sequence[ServiceProcess]) -> None:
        self.processes = list(processes)
        self.exits: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def __enter__(self) -> Supervisor:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for process in self.processes:
            process.terminate()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            for process in self.processes:
                if process.proc is not None and process.proc.poll() is not None:
                    if self._stop.is_set():
                        return
                    self.exits.append((process.log_path.stem, process.proc.returncode))
                    process.start()

    def restarts(self) -> str:
        """`publisher 1 (exit 75)`-style summary, or `none`."""
        counts = Counter(self.exits)
        return (
            ", ".join(f"{name} {n} (exit {code})" for (name, code), n in counts.items()) or "none"
        )
