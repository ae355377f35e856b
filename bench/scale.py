"""Scorer scaling: the standard scenario consumed by 1, 2 and 3 scorer worker processes, and
one worker and one API process on one Redis against a local three-master Redis Cluster.

`python -m bench scale` (not in the default list). bench/scorer.py's standard scenario
(`obs.metrics.v1` pre-filled with realistic snapshots, one record per batch), written once for
each run under a topic prefix of its own (so that the scorer group of that prefix starts with
no committed offset; the copies are written in one pass, the snapshots generated once); before
each run the raw aiokafka consume of its copy read twice, as the baseline (the best read of the
whole run); then Redis emptied and N workers started with `observatoire service scorer` in one
consumer group (worker i with OBS_WORKER_INDEX=i, so its metrics on the scorer port + 100 i),
timed until together they have consumed every metrics record. The runs: one worker on one
Redis, one worker on the cluster (right after, so that both see the same machine), two and
three workers on one Redis. BENCH_SCALE_ROUNDS (or `run(rounds=...)`) sets the daily
snapshots per account, 625 events each: 100 (62,500 events) unless set.

Reported per run: events/s and its ratio to the raw consume of the same run; CPU seconds per
1,000 events (the workers' user + system time from /proc, summed), and those of the
redis-server processes (every node of the cluster); and the window it was measured on. The
window starts when every worker has consumed a record (all of them have joined the group and
own partitions: a join while the others work stops everyone for a rebalance), so its events
are those consumed after that moment. The first-event-to-last figure, which includes the
joins, is given beside it.

On a 2-core machine no speed-up is expected beyond the second core, and little from it: one
worker keeps about one core busy, and a second worker gets only what Redis, the broker and
this process leave of the other; a third has no core left. What the bench shows here is that
the group shares the work evenly and that CPU per event does not grow with the workers; a gain
that keeps growing with N needs more cores. Measured here (2 cores shared with other work,
2026-12-07, two runs): one worker 2,975-3,006 events/s, two 3,289-4,676, three 3,403-4,606
(ratios 0.09-0.15 to a raw consume of 31,000-32,000/s); 0.32-0.35 CPU s per 1,000 events
throughout.

The cluster: a LocalRedisCluster of three masters and no replica (the same redis-server and
settings as the one Redis), started on free ports inside the bench and stopped, its files
removed, on the way out. Beside the scorer run, the API: bench/api.py's view (its `seed`,
into the one Redis, copied key by key to the cluster with DUMP / RESTORE) read by one
`observatoire service api` process on each, loaded with bench/api.py's wrk load (same
connections, duration and rounds for both, rounds alternating; the median round reported).
On 2 cores the cluster's three redis-server processes share the cores with everything else:
it brings no CPU of its own, and what its figures show is the cost of redis-py's cluster
client and of three servers on the same cores, not the gain of masters on machines of their
own. Redis is not what limits either path here (its CPU per 1,000 events is a tenth of the
worker's; the API reads Redis for about one request in sixteen). Measured here (2026-12-07,
load average 4-6 on the 2 cores, two runs): one worker 1,279 and 985 events/s on one Redis,
1,432 and 1,312 on the cluster (ratios 0.045-0.060 to a raw consume of 22,000-25,000/s);
standings 1,433 and 1,388 requests/s (p99 59 and 51 ms) on one Redis, 1,666 and 1,172 (p99 44
and 60 ms) on the cluster. The one-Redis run comes first after the prefill, which these runs
suggest is a slow place: with the order alternated (one Redis, cluster, cluster, one Redis,
one Redis, cluster; 25,000 events) one Redis gave 1,153-1,763 events/s and the cluster
865-1,316. At this load the two differ by less than one run differs from the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import api
from bench.common import Prefill, now, prefill, private_stack, raw_consume
from bench.scorer import SCENARIOS
from services.common.kafka import create_topics
from services.common.localstack import LocalRedisCluster, LocalServiceError, free_port, port_is_open
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
CLUSTER_NOTE = (
    "one Redis vs a local 3-master Redis Cluster (no replica) on the same 2 cores: the three "
    "redis-server processes share them with the scorer, the broker, the API, wrk and the bench, "
    "so the cluster brings no CPU of its own and cannot show what masters on machines of their "
    "own would give; its figures are the cost of redis-py's cluster client (slot routing, a "
    "connection per node) and of three servers on the same cores. Redis limits neither path "
    "(compare redis_cpu_seconds_per_1000_events with cpu_seconds_per_1000_events, and see "
    "redis_reads_per_request), and on a shared machine one run differs from the next by up to "
    "a third: a ratio near 1 means no cost measurable here"
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


def redis_pids(settings: Settings) -> list[int]:
    """The process ids of the redis-server processes behind these settings (every node of a
    cluster), from INFO (all local)."""
    if not settings.redis_cluster:
        client = redis_client(settings, sync=True)
        try:
            return [int(client.info("server")["process_id"])]
        finally:
            client.close()
    cluster = redis_client(settings, sync=True)
    try:
        nodes = cluster.get_nodes()  # type: ignore[attr-defined]
        return [int(node.redis_connection.info("server")["process_id"]) for node in nodes]
    finally:
        cluster.close()


@dataclass
class Sample:
    at: float
    events: float
    cpu: float
    redis_cpu: float


@dataclass
class Measured:
    """What N workers did in the measured window (all of them in the group), and overall."""

    events: float
    seconds: float
    cpu_seconds: float
    redis_cpu_seconds: float
    first_to_last_events: float
    first_to_last_seconds: float
    per_worker_events: list[float]

    def report(self, raw_rate: float) -> dict[str, object]:
        rate = self.events / self.seconds
        return {
            "events_per_s": round(rate),
            "ratio": round(rate / raw_rate, 3),
            "cpu_seconds_per_1000_events": round(1000 * self.cpu_seconds / self.events, 3),
            "redis_cpu_seconds_per_1000_events": round(
                1000 * self.redis_cpu_seconds / self.events, 3
            ),
            "window_events": round(self.events),
            "window_seconds": round(self.seconds, 2),
            "first_to_last_events_per_s": round(
                self.first_to_last_events / self.first_to_last_seconds
            ),
            "per_worker_events": [round(count) for count in self.per_worker_events],
        }


def scale_run(settings: Settings, workers: int, expected: int, tmp: Path) -> Measured:
    """N workers on the pre-filled topic (never consumed by their group), from empty Redis
    (every primary of a cluster)."""
    client = redis_client(settings, sync=True)
    client.flushdb()
    client.close()
    servers = redis_pids(settings)
    label = f"{workers}{'-cluster' if settings.redis_cluster else ''}"
    ports = [settings.scorer_metrics_port + 100 * i for i in range(workers)]
    busy = [port for port in ports if port_is_open("127.0.0.1", port)]
    if busy:
        raise RuntimeError(f"metrics ports already taken: {busy}")
    procs = [
        ServiceProcess(
            ["service", "scorer"],
            service_env(settings, OBS_WORKER_INDEX=str(i)),
            tmp / f"scorer-{label}-{i}.log",
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
            redis_cpu = sum(cpu_seconds(pid) for pid in servers)
            sample = Sample(time.perf_counter(), sum(counts), cpu, redis_cpu)
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
            redis_cpu_seconds=sample.redis_cpu - window.redis_cpu,
            first_to_last_events=sample.events - first.events,
            first_to_last_seconds=sample.at - first.at,
            per_worker_events=counts,
        )
    finally:
        for proc in procs:
            proc.terminate()


@contextlib.contextmanager
def local_cluster(tmp: Path) -> Iterator[LocalRedisCluster]:
    """A LocalRedisCluster of three masters and no replica on free ports (a port taken meanwhile
    is retried), its logs under `tmp`, its nodes' files in a directory of its own; stopped and
    that directory removed on the way out, whatever happened."""
    error: LocalServiceError | None = None
    for _attempt in range(3):
        cluster = LocalRedisCluster(free_port(), tmp / "cluster")
        try:
            cluster.start()  # stops what it started when it fails
        except LocalServiceError as exc:
            error = exc
            continue
        try:
            yield cluster
        finally:
            cluster.stop()
        return
    raise RuntimeError(f"a local Redis Cluster could not start:\n{error}")


def copy_view(source: Settings, target: Settings) -> int:
    """Every key of `source`'s Redis copied to `target`'s (emptied first) with DUMP / RESTORE,
    time to live kept: byte for byte the same view. Returns the number of keys."""
    src = redis_client(source, sync=True)
    dst = redis_client(target, sync=True)
    try:
        dst.flushdb()
        copied = 0
        for key in src.scan_iter(count=1000):
            ttl = int(src.pttl(key))
            dst.restore(key, max(ttl, 0), src.dump(key), replace=True)  # type: ignore[arg-type]
            copied += 1
        found = sum(1 for _ in dst.scan_iter(count=1000))
        if found != copied:
            raise RuntimeError(f"copied {copied} keys to the cluster, found {found}")
        return copied
    finally:
        src.close()
        dst.close()


def api_load(one: Settings, cluster: Settings, tmp: Path) -> dict[str, Any]:
    """bench/api.py's load on one API process reading one Redis, and on one reading the
    cluster: the view seeded by bench/api.py into the one Redis, copied to the cluster; wrk
    with the same connections and duration on both, rounds alternating (the median of each
    reported)."""
    flush = redis_client(one, sync=True)
    flush.flushdb()
    flush.close()
    ranked = asyncio.run(api.seed(one.redis_url))
    keys = copy_view(one, cluster)
    _stage("api view", f"{ranked} départements ranked, {keys} keys copied to the cluster")
    servers: dict[str, tuple[ServiceProcess, int]] = {}
    try:
        for name, settings in (("one_redis", one), ("cluster", cluster)):
            port = free_port()
            env = service_env(
                settings.model_copy(update={"api_port": port}),
                OBS_API_WORKERS="1",
                OBS_RATE_LIMIT_ENABLED="false",
                OBS_LOG_LEVEL="WARNING",
            )
            servers[name] = (ServiceProcess(["service", "api"], env, tmp / f"api-{name}.log"), port)
            servers[name][0].start()
        urls = {name: f"http://127.0.0.1:{port}{api.PATH}" for name, (_, port) in servers.items()}
        for name, (process, _) in servers.items():
            assert process.proc is not None
            api._wait_ready(urls[name], process.proc)
        bodies = {name: httpx.get(url).json()["items"] for name, url in urls.items()}
        if bodies["one_redis"] != bodies["cluster"]:
            raise RuntimeError("the API answers differently on one Redis and on the cluster")
        for url in urls.values():
            api.wrk(url, api.WARMUP_SECONDS)
        reads_before = {name: api._view_reads(port) for name, (_, port) in servers.items()}
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
        for _ in range(api.ROUNDS):
            for name, url in urls.items():
                runs[name].append(api.wrk(url, api.DURATION_SECONDS))
        figures: dict[str, Any] = {}
        for name, (_, port) in servers.items():
            served = sum(run["requests"] for run in runs[name])
            reads = api._view_reads(port) - reads_before[name]
            figures[name] = {
                "path": api.PATH,
                **api._median(runs[name]),
                "redis_reads_per_request": round(reads / max(1, served), 3),
            }
    finally:
        for process, _ in servers.values():
            if process.proc is not None:
                api._stop(process.proc)
    one_rps = figures["one_redis"]["requests_per_second"]
    return {
        "load": f"wrk -t1 -c{api.CONNECTIONS} -d{api.DURATION_SECONDS}s --latency, "
        f"{api.ROUNDS} rounds alternating one Redis / cluster (median round reported), after "
        f"a {api.WARMUP_SECONDS} s warm-up each",
        "server": "`observatoire service api`, 1 worker process each, rate limiting off",
        "dataset": f"bench/api.py's view: {ranked} départements ranked, "
        f"{len(bodies['one_redis'])} items per response; {keys} keys copied to the cluster",
        "one_redis": figures["one_redis"],
        "cluster": figures["cluster"],
        "requests_per_s_cluster_to_one_redis": round(
            figures["cluster"]["requests_per_second"] / one_rps, 3
        ),
    }


def run(rounds: int | None = None) -> dict[str, object]:
    """The scaling runs and the API load; `rounds`: daily snapshots per account (the standard
    scenario's 100 unless given, or BENCH_SCALE_ROUNDS in the environment: 625 events each)."""
    if shutil.which("wrk") is None:
        raise SystemExit("bench scale needs wrk (Debian package `wrk`: apt-get install wrk)")
    categories, standard_rounds, batch_bytes = SCENARIOS["standard"]
    if rounds is None:
        rounds = int(os.environ.get("BENCH_SCALE_ROUNDS", standard_rounds))
    end = now()
    with (
        tempfile.TemporaryDirectory() as tmpdir,
        private_stack(Path(tmpdir)) as stack,
        local_cluster(Path(tmpdir)) as cluster,
    ):
        tmp = Path(tmpdir)
        _stage("cluster", cluster.summary)
        on_cluster = stack.model_copy(update={"redis_url": cluster.url, "redis_cluster": True})
        result: dict[str, object] = {"scenario": "standard", "cores": os.cpu_count()}
        # One worker on the cluster right after one worker on one Redis: on a shared machine,
        # the closer the two runs, the likelier they see the same load.
        plan = [("workers_1", 1, stack), ("cluster_workers_1", 1, on_cluster)]
        plan += [(f"workers_{workers}", workers, stack) for workers in WORKERS[1:]]
        # Each run reads its own copy of the same topic (same world, same end), so that its
        # group starts with no committed offset (resetting a group's offsets on Tansu fails
        # while it remembers the previous members). The copies are written in one pass: the
        # snapshots are generated once.
        runs_settings = [
            redis_settings.model_copy(update={"topic_prefix": f"{stack.topic_prefix}{name}-"})
            for name, _, redis_settings in plan
        ]
        for settings in runs_settings:
            assert all(report.ok for report in create_topics(settings))
        filled: Prefill = asyncio.run(
            prefill(
                runs_settings[0],
                categories,
                rounds,
                end,
                batch_bytes=batch_bytes,
                copies=runs_settings[1:],
            )
        )
        _stage(f"prefill of {len(plan)} copies", filled)
        result["events"] = filled.events
        raw_reads: list[tuple[int, float]] = []
        runs: dict[str, Measured] = {}
        for (name, workers, _), settings in zip(plan, runs_settings, strict=True):
            for _ in range(2):
                count, seconds = asyncio.run(raw_consume(settings))
                assert count == filled.events, (count, filled.events)
                raw_reads.append((count, seconds))
                _stage("raw consume", f"{count} events in {seconds:.1f} s")
            runs[name] = scale_run(settings, workers, filled.events, tmp)
            _stage(name, runs[name])
        api_figures = api_load(stack, on_cluster, tmp)
        _stage("api", api_figures)
        # The best raw read of the run (it varies from one read to the next): the ratios are
        # then the least flattering.
        raw_rate = max(count / seconds for count, seconds in raw_reads)
        result["baseline_raw_aiokafka_consume_decode"] = {"events_per_s": round(raw_rate)}
        for workers in WORKERS:
            result[f"workers_{workers}"] = runs[f"workers_{workers}"].report(raw_rate)
        result["note"] = NO_SPEEDUP
        result["cluster"] = f"LocalRedisCluster: {cluster.summary}, no replica"
        result["cluster_workers_1"] = runs["cluster_workers_1"].report(raw_rate)
        one_rate = runs["workers_1"].events / runs["workers_1"].seconds
        cluster_rate = runs["cluster_workers_1"].events / runs["cluster_workers_1"].seconds
        result["cluster_to_one_redis_workers_1"] = round(cluster_rate / one_rate, 3)
        result["api_standings"] = api_figures
        result["cluster_note"] = CLUSTER_NOTE
        return result
