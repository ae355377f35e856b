"""Scorer throughput: live faust worker and `rebuild`, as ratios to raw aiokafka consume.

All read the same pre-filled `obs.metrics.v1` (realistic simulated snapshots) in one run: the
raw read (the baseline), the scorer's part of the rebuild alone, the publisher's part alone,
and the whole `observatoire rebuild` (a new generation with both parts, the topic read once),
each with the load average of the machine just before it (the machine may be shared: a load
above its cores means the figures are slower than the code).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from bench.common import Prefill, now, prefill, private_stack, raw_consume, rss_mb
from services.common.clock import format_timestamp, utcnow
from services.common.contracts import CATEGORY_IDS, TOPIC_METRICS
from services.common.kafka import KAFKA_BATCH_BYTES
from services.common.kafka.reader import read_topic
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.validation import Rejection, validate_metrics
from services.common.view.client import redis_client
from services.common.view.keys import ViewKeys
from services.publisher.rebuild import rebuild_publisher
from services.rebuild import prepare_generation, rebuild_view
from services.scorer.day_summaries import DaySummaryEmitter, day_summary_records
from services.scorer.plan import plan_batch
from services.scorer.rebuild import rebuild
from tests.services import ServiceProcess, service_env

SCENARIOS = {
    # name: (categories, daily rounds, producer batch bytes)
    # The standard scenario's topic is written one record per batch, as on the local profile;
    # the full-France ones as the collector writes on the Kafka profile (production): batches
    # of up to 256 KB. Tansu reads a topic of single-record batches 8-10 times slower
    # (docs/decisions.md).
    "standard": (
        ("regions", "departements", "metropoles", "grandes-villes", "villes-moyennes"),
        100,
        1,
    ),
    "france": (CATEGORY_IDS, 30, KAFKA_BATCH_BYTES),  # 36,249 accounts x 30 days: 1.09 M
    "france-3d": (CATEGORY_IDS, 3, KAFKA_BATCH_BYTES),  # the same world, 3 days (109 k)
}


async def record_day_summaries(settings: Settings) -> tuple[int, float]:
    """Record obs.day-summaries.v1 as the live scorer does while it applies obs.metrics.v1
    (services/scorer/agents.py: each batch validated, planned and its day summaries produced
    before it is committed), here without Redis: a rebuild of a deployed system finds them.
    Returns (records produced, seconds)."""
    started = time.perf_counter()
    emitter = DaySummaryEmitter(settings)
    produced = 0
    at = format_timestamp(utcnow())
    try:
        async for chunk in read_topic(settings, TOPIC_METRICS):
            for start in range(0, len(chunk), settings.scorer_batch_size):
                batch = chunk[start : start + settings.scorer_batch_size]
                valid, positions = [], {}
                for record in batch:
                    result = validate_metrics(record.value, record.timestamp)
                    if not isinstance(result, Rejection):
                        valid.append(result)
                        positions[result.event_id] = (record.partition, record.offset)
                read = [(record.partition, record.offset) for record in batch]
                events = day_summary_records(positions, read, plan_batch(valid), at)
                await emitter.publish(events)
                produced += len(events)
    finally:
        await emitter.stop()
    return produced, time.perf_counter() - started


def _consumed(settings: Settings) -> float:
    text = httpx.get(f"http://127.0.0.1:{settings.scorer_metrics_port}/metrics", timeout=2).text
    match = re.search(r'obs_scorer_events_consumed_total\{topic="metrics"\} ([0-9.e+]+)', text)
    return float(match.group(1)) if match else 0.0


async def _prepare(settings: Settings) -> None:
    """The empty generation 0 the two parts of the rebuild fill (as `rebuild_view` prepares
    a new generation; timed apart here, beside the raw read)."""
    client = redis_client(settings)
    try:
        await prepare_generation(settings, client, ViewKeys(0), load_registry())
    finally:
        await client.aclose()


def _stage(name: str, what: object) -> None:
    """Say what each stage measured as soon as it is known (long runs)."""
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {what}", file=sys.stderr, flush=True)


def _load() -> float:
    """The machine's load average over the last minute (compare with its cores; the bench's
    own previous stage counts in it: about 2 on an otherwise idle machine after the prefill)."""
    return round(os.getloadavg()[0], 2)


def memory_by_group(client: redis.Redis) -> dict[str, int]:
    """MEMORY USAGE summed by structure: accounts, current views, edition views, geo sets,
    the daily history (`all_but_geo`: the standings' structures, without the history)."""
    groups = {
        "accounts": 0,
        "current": 0,
        "editions": 0,
        "geo_static": 0,
        "meta": 0,
        "history": 0,
    }
    months: set[str] = set()
    for raw in client.scan_iter(count=1000):
        key = raw.decode()
        size = int(client.memory_usage(key) or 0)
        if key.startswith("obs:hist:") or ":hist" in key:
            groups["history"] += size  # the daily history: its own target (bench history)
        elif key.startswith(("obs:acct:", "obs:sums:")):
            groups["accounts"] += size
        elif ":cur:" in key:
            groups["current"] += size
        elif ":ed:" in key:
            groups["editions"] += size
            months.add(key.split(":ed:")[1].split(":")[0])
        elif ":geo:" in key:
            groups["geo_static"] += size
        else:
            groups["meta"] += size
    groups["all_but_geo"] = sum(v for k, v in groups.items() if k not in ("geo_static", "history"))
    groups["months"] = len(months - {"months"})
    return groups


def live(settings: Settings, expected: int, tmp: Path) -> dict[str, float]:
    """Start a scorer worker on the pre-filled topic; time from its first event to the last."""
    proc = ServiceProcess(["service", "scorer"], service_env(settings), tmp / "scorer.log").start()
    try:
        first = None
        deadline = time.monotonic() + 600
        rss = 0.0
        while time.monotonic() < deadline:
            try:
                done = _consumed(settings)
            except httpx.HTTPError:
                done = 0.0
            if done and first is None:
                first = (time.perf_counter(), done)
            if done >= expected:
                break
            if proc.proc is not None:
                rss = max(rss, rss_mb(proc.proc.pid))
            time.sleep(0.2)  # each scrape costs the worker: 20 a second took 4 % of its time
        else:
            raise RuntimeError(f"live scorer did not finish:\n{proc.log()[-2000:]}")
        elapsed = time.perf_counter() - first[0]
        return {"events": expected - first[1], "seconds": elapsed, "rss_mb": rss}
    finally:
        proc.terminate()


def run(scenario: str = "standard") -> dict[str, object]:
    categories, rounds, batch_bytes = SCENARIOS[scenario]
    with tempfile.TemporaryDirectory() as tmpdir, private_stack(Path(tmpdir)) as settings:
        tmp = Path(tmpdir)
        end = now()
        filled: Prefill = asyncio.run(
            prefill(settings, categories, rounds, end, batch_bytes=batch_bytes)
        )
        _stage("prefill", filled)
        # The baseline's best of three reads (it varies by a third from one read to the
        # next here): the ratios below are then the least flattering.
        reads = 1 if scenario == "france" else 3
        load = {"raw_read": _load()}
        count, raw_seconds = min(
            (asyncio.run(raw_consume(settings)) for _ in range(reads)), key=lambda r: r[1]
        )
        _stage("raw consume", f"{count} events in {raw_seconds:.1f} s")
        assert count == filled.events, (count, filled.events)
        client = redis_client(settings, sync=True)
        cold: dict[str, float] = {}
        if scenario == "france":  # a log whose day summaries are missing: every snapshot read
            asyncio.run(_prepare(settings))
            load["scorer_part_without_day_summaries"] = _load()
            without = settings.model_copy(update={"rebuild_day_summaries": False})
            cold_report = asyncio.run(rebuild(without, rk=ViewKeys(0)))
            _stage("rebuild without day summaries", cold_report)
            cold = {
                "seconds": round(cold_report.seconds, 1),
                "validated": cold_report.metrics - cold_report.unexamined,
            }
            client.flushdb()
        # What the live scorer records as it applies the log, before any rebuild of it.
        recorded, recording_seconds = asyncio.run(record_day_summaries(settings))
        _stage("day summaries recorded", f"{recorded} records in {recording_seconds:.1f} s")
        asyncio.run(_prepare(settings))
        load["scorer_part"] = _load()
        report = asyncio.run(rebuild(settings, rk=ViewKeys(0)))
        rebuild_seconds = report.seconds
        _stage("rebuild", report)
        assert report.covered == report.metrics, report  # every snapshot's day was recorded
        ranked = sum(client.zcard(f"obs:{{cat:{c}}}:cur:rank") for c in CATEGORY_IDS)
        memory = memory_by_group(client)  # the scorer's structures (the target)
        _stage("memory", memory)
        # `observatoire rebuild` also restores the publisher's facts (link status from every
        # snapshot, editions, rank changes): its part alone, then the whole command (a new
        # generation beside this one, both parts reading the topic once, the switch and the
        # old generation dropped).
        load["publisher_part"] = _load()
        publisher_report = asyncio.run(rebuild_publisher(settings, rk=ViewKeys(0)))
        _stage("publisher rebuild", publisher_report.summary())
        publisher_bytes = memory_by_group(client)["all_but_geo"] - memory["all_but_geo"]
        load["whole_rebuild"] = _load()
        whole = asyncio.run(rebuild_view(settings, grace_seconds=0))
        _stage("whole rebuild", f"{whole.parts}; {whole.publisher.summary()}")
        assert whole.scorer.metrics == whole.publisher.snapshots == report.metrics
        client.flushdb()
        raw_rate = count / raw_seconds

        def part(seconds: float) -> dict[str, float]:
            """A rebuild's time, and its rate as a ratio to the raw read's."""
            return {
                "seconds": round(seconds, 1),
                "events_per_s": round(report.metrics / seconds),
                "ratio": round(report.metrics / seconds / raw_rate, 3),
            }

        rebuild_rate = report.metrics / rebuild_seconds
        if scenario == "france":  # the live path is measured on the other scenarios
            live_result = {"events": 0.0, "seconds": 1.0, "rss_mb": 0.0}
        else:
            live_result = live(settings, filled.events, tmp)
        live_rate = live_result["events"] / live_result["seconds"]
        return {
            "scenario": scenario,
            "prefill": {
                "producer_batch_bytes": batch_bytes,
                "events": filled.events,
                "accounts": filled.accounts,
                "mean_event_bytes": round(filled.bytes / filled.events),
                "seconds": round(filled.seconds, 1),
            },
            "cores": os.cpu_count(),
            "load_average_before": load,
            "baseline_raw_aiokafka_consume_decode": {
                "events_per_s": round(raw_rate),
                "seconds": round(raw_seconds, 1),
            },
            "day_summaries_recorded": {"records": recorded, "seconds": round(recording_seconds, 1)},
            "rebuild": {  # the scorer's part alone
                "events_per_s": round(rebuild_rate),
                "validated": report.metrics - report.unexamined,
                "covered_by_day_summaries": report.covered,
                "without_day_summaries": cold,
                "seconds": round(rebuild_seconds, 1),
                "ratio": round(rebuild_rate / raw_rate, 3),
                "workers": settings.rebuild_workers,
                "largest_worker_rss_mb": round(report.largest_rss_mb),
            },
            "publisher_rebuild": {  # the publisher's part alone
                **part(publisher_report.seconds),
                "redis_bytes_per_ranked_territory": round(publisher_bytes / max(ranked, 1)),
            },
            "whole_rebuild": {  # `observatoire rebuild`: both parts, the topic read once
                **part(whole.seconds),
                "parts_seconds": round(whole.parts.seconds, 1),
                "scorer_part_done_seconds": round(whole.parts.done["scorer"], 1),
                "phases_seconds": {k: round(v, 1) for k, v in whole.parts.phases.items()},
                "parts_alone_seconds": round(rebuild_seconds + publisher_report.seconds, 1),
                "largest_worker_rss_mb": round(whole.parts.largest_rss_mb),
            },
            "live_one_worker": {
                "events_per_s": round(live_rate),
                "ratio": round(live_rate / raw_rate, 3),
                "worker_rss_mb": round(live_result["rss_mb"]),
            },
            "redis": {
                "ranked_territories": ranked,
                "edition_months": memory.pop("months"),
                "bytes_per_ranked_territory": {
                    group: round(size / max(ranked, 1)) for group, size in memory.items()
                },
            },
        }
