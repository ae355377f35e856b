"""Freshness: time from a snapshot produced to its effect visible in the API, at a steady
1,000 snapshots/s (target p99 < 1 s), with a scorer, a publisher and an API on a private stack.

Load (a process of its own): 2,000 simulated accounts mapped to communes, each snapshot
acknowledged by the broker, one record per batch as the local profile requires. After the
scorer shows a first snapshot and 5 s of warm-up at the full rate, one probe snapshot every
250 ms, in turn for four probe territories (so each gets a new `observed_at` second), whose
follower count encodes the probe's number. A poller reads `GET /api/v1/territories/{id}` of
the probe territories awaiting a probe, one request every 5 ms, and records when each probe
number first shows (so a figure may be late by up to 5 ms × the probes in flight). Baseline in
the same run: the same poll loop against `/healthz` (the API's own round trip).

Usage: python -m bench freshness
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from bench.common import now, private_stack
from services.common.clock import format_timestamp, utcnow
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.events import build_account_record, build_metrics_event
from services.common.kafka import make_producer
from services.common.localstack import free_port
from services.common.territories import load_registry
from tests.services import ServiceProcess, service_env, wait_for

RATE = 1000  # snapshots per second
WARMUP_SECONDS = 5  # at the full rate, before probes are measured
SECONDS = 20
READY_FOLLOWERS = 999_999
ACCOUNTS = 2000
PROBES = 4  # probe territories
PROBE_EVERY = 0.25
POLL_EVERY = 0.005
LOAD_PRODUCERS = 4


def _snapshot(handle: str, observed_at: str, followers: int) -> dict[str, Any]:
    return build_metrics_event(
        handle=handle,
        observed_at=observed_at,
        status="ok",
        source="sim",
        followers=followers,
        follows=100,
        media_count=10,
        recent_posts=[],
    )


def run() -> dict[str, Any]:
    registry = load_registry()
    communes = registry.by_category("petites-villes")[: ACCOUNTS + PROBES]
    probes, others = communes[:PROBES], communes[PROBES:]
    with tempfile.TemporaryDirectory() as tmpdir, private_stack(Path(tmpdir)) as base:
        tmp = Path(tmpdir)
        settings = base.model_copy(
            update={
                "api_port": free_port(),
                "publisher_metrics_port": free_port(),
                "rate_limit_enabled": False,
            }
        )
        producer = make_producer(settings)
        records = [
            build_account_record(
                territory_id=t.id, handle=_handle(i), changed_at=now(), simulated=True
            )
            for i, t in enumerate([*probes, *others])
        ]
        for record in records:
            producer.send(
                settings.topic(TOPIC_ACCOUNTS), key=record["id"].encode(), value=_json(record)
            )
        producer.flush()
        env = service_env(settings, OBS_RATE_LIMIT_ENABLED="false")
        procs = [
            ServiceProcess(["service", name], env, tmp / f"{name}.log").start()
            for name in ("scorer", "publisher", "api")
        ]
        api = f"http://127.0.0.1:{settings.api_port}"
        try:
            wait_for(lambda: httpx.get(f"{api}/readyz").status_code == 200, timeout=60, what="api")
            sent: dict[int, float] = {}
            seen: dict[int, float] = {}
            stop = threading.Event()

            context = multiprocessing.get_context("spawn")
            announced = context.Queue()  # (probe number, probe territory index) when sent

            def poll() -> None:
                # Only probe territories with a probe sent and not yet seen are read, one GET
                # every POLL_EVERY: a light, steady load on the API beside the stream.
                outstanding: dict[int, int] = {}
                with httpx.Client() as client:
                    while not stop.is_set():
                        while not announced.empty():
                            number, index = announced.get()
                            outstanding[number] = index
                        for index in sorted(set(outstanding.values())):
                            response = client.get(f"{api}/api/v1/territories/{probes[index].id}")
                            value = _followers(response.json())
                            if value is not None and value not in seen:
                                seen[value] = time.perf_counter()
                            outstanding = {n: i for n, i in outstanding.items() if n not in seen}
                            time.sleep(POLL_EVERY)
                        if not outstanding:
                            time.sleep(POLL_EVERY)

            # The scorer joins its consumer group a few seconds after it starts: wait until a
            # first snapshot is visible, so that the join is not counted as freshness.
            earlier = utcnow() - timedelta(seconds=2)
            ready = _snapshot(_handle(0), format_timestamp(earlier), READY_FOLLOWERS)
            producer.send(
                settings.topic(TOPIC_METRICS), key=b"instagram:fresh.0", value=_json(ready)
            ).get(timeout=10)
            wait_for(
                lambda: (
                    _followers(httpx.get(f"{api}/api/v1/territories/{probes[0].id}").json())
                    == READY_FOLLOWERS
                ),
                timeout=60,
                what="the scorer's first snapshot",
            )
            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            # The load runs in a process of its own: in this one it would share the GIL with
            # the poller and fall short of the rate.
            results = context.Queue()
            topic = settings.topic(TOPIC_METRICS)
            load = context.Process(
                target=_load, args=(settings.kafka_bootstrap, topic, results, announced)
            )
            load.start()
            produced, elapsed, sent = results.get(timeout=WARMUP_SECONDS + SECONDS + 60)
            load.join(10)
            time.sleep(3)
            stop.set()
            poller.join(5)
            latencies = sorted(seen[k] - sent[k] for k in sent if k in seen)
            baseline = _baseline(api)
        finally:
            for proc in procs:
                proc.terminate()
            producer.close()
    return {
        "rate_target_per_s": RATE,
        "rate_achieved_per_s": round(produced / elapsed),
        "probes_sent": len(sent),
        "probes_seen": len(latencies),
        "freshness_ms": {
            "p50": round(1000 * statistics.median(latencies), 1) if latencies else None,
            "p99": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1)
            if latencies
            else None,
        },
        "baseline_api_round_trip_ms_p50": baseline,
        "target": "p99 < 1000 ms",
    }


def _load(bootstrap: str, topic: str, results: Any, announced: Any) -> None:
    """Produce RATE snapshots/s (one batch every 100 ms) with a probe every PROBE_EVERY."""
    results.put(asyncio.run(_produce(bootstrap, topic, announced)))


async def _produce(
    bootstrap: str, topic: str, announced: Any
) -> tuple[int, float, dict[int, float]]:
    # One record per batch, as the local broker profile requires of every metrics producer.
    # aiokafka then holds a partition's next record until the previous one is acknowledged,
    # so the load is spread over several producers (kafka-python, one record per request,
    # could not keep this rate beside the services).
    producers = [
        AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1, linger_ms=0, acks="all")
        for _ in range(LOAD_PRODUCERS)
    ]
    for producer in producers:
        await producer.start()
    sent: dict[int, float] = {}
    started = time.perf_counter()
    measured_from = started + WARMUP_SECONDS
    produced = probes = 0
    next_probe = started
    last_second: dict[str, str] = {}
    try:
        while time.perf_counter() - started < WARMUP_SECONDS + SECONDS:
            tick = time.perf_counter()
            observed = format_timestamp(utcnow())
            pending = []
            # Catch up on what is due by now: a slow tick never lowers the rate.
            for _ in range(int(RATE * (tick - started)) + RATE // 10 - produced):
                event = _snapshot(_handle(PROBES + produced % ACCOUNTS), observed, 1000 + produced)
                key = f"instagram:{event['handle']}".encode()
                producer = producers[produced % LOAD_PRODUCERS]
                pending.append(await producer.send(topic, _json(event), key=key))
                produced += 1
            if tick >= next_probe:
                # Probe k goes to probe territory k % PROBES: each one gets a probe a second,
                # so a later second's snapshot always wins there (an equal observed_at would
                # be decided by event ids, and a probe could never show).
                probes += 1
                handle = _handle(probes % PROBES)
                if last_second.get(handle) != observed:
                    last_second[handle] = observed
                    event = _snapshot(handle, observed, 1_000_000 + probes)
                    key = f"instagram:{handle}".encode()
                    await (await producers[0].send(topic, _json(event), key=key))
                    if tick >= measured_from:
                        sent[1_000_000 + probes] = time.perf_counter()
                        announced.put((1_000_000 + probes, probes % PROBES))
                next_probe += PROBE_EVERY
            await asyncio.gather(*pending)
            await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - tick)))
    finally:
        for producer in producers:
            await producer.stop()
    return produced, time.perf_counter() - started, sent


def _handle(i: int) -> str:
    return f"fresh.{i}"


def _followers(body: dict[str, Any]) -> int | None:
    current = body.get("current")
    return None if not current else int(current["followers"])


def _baseline(api: str) -> float:
    with httpx.Client() as client:
        times = []
        for _ in range(200):
            t = time.perf_counter()
            client.get(f"{api}/healthz")
            times.append(time.perf_counter() - t)
    return round(1000 * statistics.median(times), 2)


def _json(event: dict[str, Any]) -> bytes:
    import orjson

    return orjson.dumps(event)
