"""Scorer scaling: the standard scenario consumed by 1, 2 and 3 scorer worker processes.

`python -m bench scale` (not in the default list). bench/scorer.py's standard scenario
(`obs.metrics.v1` pre-filled with realistic snapshots, one record per batch), written once for
each N = 1, 2, 3 under a topic prefix of its own (so that the scorer group of that prefix starts
with no committed offset); the raw aiokafka consume of it read twice, as the baseline (the
best read of the whole run); then Redis emptied and N workers started with `observatoire
service scorer` in one consumer group (worker i with OBS_WORKER_INDEX=i, so its metrics on the
scorer port + 100 i), timed until together they have consumed every metrics record.

Reported per N: events/s and its ratio to the raw consume of the same run; CPU seconds per
1,000 events (the workers' user + system time from /proc, summed); and the window it was
measured on. The window starts when every worker has consumed a record (all of them have
joined the group and own partitions: a join while the others work stops everyone for a
rebalance), so its events are those consumed after that moment. The first-event-to-last
figure, which includes the joins, is given beside it.

On a 2-core machine no speed-up is expected beyond the second core, and little from it: one
worker keeps about one core busy, and a second worker gets only what Redis, the broker and
this process leave of the other; a third has no core left. What the bench shows here is that
the group shares the work evenly and that CPU per event does not grow with the workers; a gain
that keeps growing with N needs more cores. Measured here (2 cores shared with other work,
2026-12-07, two runs): one worker 2,975-3,006 events/s, two 3,289-4,676, three 3,403-4,606
(ratios 0.09-0.15 to a raw consume of 31,000-32,000/s); 0.32-0.35 CPU s per 1,000 events
throughout.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import Prefill, now, prefill, private_stack, raw_consume
from bench.scorer import SCENARIOS
from services.common.kafka import create_topics
from services.common.localstack import port_is_open
from services.common.settings import Settings
from services.common.view.client import redis_client
from tests.services import ServiceProcess, service_env

WORKERS = (1, 2, 3)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NO_SPEEDUP = (
    "on 2 cores no speed-up is expected beyond the second core: one worker keeps about a core "
    "busy, a second gets what Redis, the broker and the bench leave of the other, a third none; "
    "CPU per 1,000 events should stay flat"
)


def _stage(name: str, what: object) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {what}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and of its reaped children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # After the command: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def consumed(port: int) -> float:
    """obs_scorer_events_consumed_total{topic="metrics"} of the worker serving this port."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    match = re.search(r'obs_scorer_events_consumed_total\{topic="metrics"\} ([0-9.e+]+)', text)
    return float(match.group(1)) if match else 0.0


@dataclass
class Sample:
    at: float
    events: float
    cpu: float


@dataclass
class Measured:
    """What N workers did in the measured window (all of them in the group), and overall."""

    events: float
    seconds: float
    cpu_seconds: float
    first_to_last_events: float
    first_to_last_seconds: float
    per_worker_events: list[float]

    def report(self, raw_rate: float) -> dict[str, object]:
        rate = self.events / self.seconds
        return {
            "events_per_s": round(rate),
            "ratio": round(rate / raw_rate, 3),
            "cpu_seconds_per_1000_events": round(1000 * self.cpu_seconds / self.events, 3),
            "window_events": round(self.events),
            "window_seconds": round(self.seconds, 2),
            "first_to_last_events_per_s": round(
                self.first_to_last_events / self.first_to_last_seconds
            ),
            "per_worker_events": [round(count) for count in self.per_worker_events],
        }


def scale_run(settings: Settings, workers: int, expected: int, tmp: Path) -> Measured:
    """N workers on the pre-filled topic (never consumed by their group), from empty Redis."""
    client = redis_client(settings, sync=True)
    client.flushdb()
    client.close()
    ports = [settings.scorer_metrics_port + 100 * i for i in range(workers)]
    busy = [port for port in ports if port_is_open("127.0.0.1", port)]
    if busy:
        raise RuntimeError(f"metrics ports already taken: {busy}")
    procs = [
        ServiceProcess(
            ["service", "scorer"],
            service_env(settings, OBS_WORKER_INDEX=str(i)),
            tmp / f"scorer-{workers}-{i}.log",
        ).start()
        for i in range(workers)
    ]
    try:
        first: Sample | None = None
        window: Sample | None = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            counts = [consumed(port) for port in ports]
            cpu = sum(cpu_seconds(p.proc.pid) for p in procs if p.proc is not None)
            sample = Sample(time.perf_counter(), sum(counts), cpu)
            if first is None and sample.events:
                first = sample
            if window is None and all(counts):
                window = sample
            if sample.events >= expected:
                break
            for proc in procs:
                if proc.proc is not None and proc.proc.poll() is not None:
                    raise RuntimeError(f"a scorer worker exited:\n{proc.log()[-2000:]}")
            time.sleep(0.25)
        else:
            raise RuntimeError(f"{workers} scorer worker(s) did not finish")
        assert first is not None
        if window is None:  # a worker got no metrics partition: time the whole run
            window = first
        return Measured(
            events=sample.events - window.events,
            seconds=sample.at - window.at,
            cpu_seconds=sample.cpu - window.cpu,
            first_to_last_events=sample.events - first.events,
            first_to_last_seconds=sample.at - first.at,
            per_worker_events=counts,
        )
    finally:
        for proc in procs:
            proc.terminate()


def run() -> dict[str, object]:
    categories, rounds, batch_bytes = SCENARIOS["standard"]
    end = now()
    with tempfile.TemporaryDirectory() as tmpdir, private_stack(Path(tmpdir)) as stack:
        tmp = Path(tmpdir)
        result: dict[str, object] = {"scenario": "standard", "cores": os.cpu_count()}
        raw_reads: list[tuple[int, float]] = []
        runs: dict[int, Measured] = {}
        for workers in WORKERS:
            # Each N reads its own copy of the same topic (same world, same end), so that its
            # group starts with no committed offset (resetting a group's offsets on Tansu
            # fails while it remembers the previous members).
            settings = stack.model_copy(update={"topic_prefix": f"{stack.topic_prefix}{workers}w-"})
            assert all(report.ok for report in create_topics(settings))
            filled: Prefill = asyncio.run(
                prefill(settings, categories, rounds, end, batch_bytes=batch_bytes)
            )
            _stage(f"prefill for {workers}", filled)
            for _ in range(2):
                count, seconds = asyncio.run(raw_consume(settings))
                assert count == filled.events, (count, filled.events)
                raw_reads.append((count, seconds))
                _stage("raw consume", f"{count} events in {seconds:.1f} s")
            runs[workers] = scale_run(settings, workers, filled.events, tmp)
            _stage(f"{workers} worker(s)", runs[workers])
            result["events"] = filled.events
        # The best raw read of the run (it varies from one read to the next): the ratios are
        # then the least flattering.
        raw_rate = max(count / seconds for count, seconds in raw_reads)
        result["baseline_raw_aiokafka_consume_decode"] = {"events_per_s": round(raw_rate)}
        for workers, measured in runs.items():
            result[f"workers_{workers}"] = measured.report(raw_rate)
        result["note"] = NO_SPEEDUP
        return result
