"""Freshness: time from a snapshot produced to its effect visible in the API, at a steady
1,000 snapshots/s (target p99 < 1 s), with a scorer, a publisher and an API on a private stack.

Load: 2,000 simulated accounts mapped to communes, each snapshot acknowledged by the broker;
among them, one probe snapshot every 100 ms for a dedicated territory whose follower count
encodes the probe's number. A poller reads `GET /api/v1/territories/{id}` every 10 ms and
records when each probe number first shows. Baseline in the same run: the same poll loop
against `/healthz` (the API's own round trip).

Usage: python -m bench freshness
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import now, private_stack
from services.common.clock import format_timestamp, utcnow
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.events import build_account_record, build_metrics_event
from services.common.kafka import make_producer
from services.common.localstack import free_port
from services.common.territories import load_registry
from tests.services import ServiceProcess, service_env, wait_for

RATE = 1000  # snapshots per second
SECONDS = 20
ACCOUNTS = 2000
PROBE_EVERY = 0.1


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
    communes = registry.by_category("petites-villes")[: ACCOUNTS + 1]
    probe, others = communes[0], communes[1:]
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
                territory_id=t.id, handle=f"fresh.{i}", changed_at=now(), simulated=True
            )
            for i, t in enumerate([probe, *others])
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

            def poll() -> None:
                with httpx.Client() as client:
                    while not stop.is_set():
                        response = client.get(f"{api}/api/v1/territories/{probe.id}")
                        if response.status_code == 200:
                            value = _followers(response.json())
                            if value is not None and value not in seen:
                                seen[value] = time.perf_counter()
                        time.sleep(0.01)

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            started = time.perf_counter()
            produced = probes = 0
            next_probe = started
            while time.perf_counter() - started < SECONDS:
                tick = time.perf_counter()
                observed = format_timestamp(utcnow())
                batch = []
                for _ in range(RATE // 10):
                    account = produced % len(others)
                    batch.append(_snapshot(f"fresh.{account + 1}", observed, 1000 + produced))
                    produced += 1
                for event in batch:
                    producer.send(
                        settings.topic(TOPIC_METRICS),
                        key=f"instagram:{event['handle']}".encode(),
                        value=_json(event),
                    )
                if tick >= next_probe:
                    probes += 1
                    event = _snapshot("fresh.0", observed, 1_000_000 + probes)
                    future = producer.send(
                        settings.topic(TOPIC_METRICS), key=b"instagram:fresh.0", value=_json(event)
                    )
                    future.get(timeout=10)
                    sent[1_000_000 + probes] = time.perf_counter()
                    next_probe += PROBE_EVERY
                producer.flush()
                time.sleep(max(0.0, 0.1 - (time.perf_counter() - tick)))
            elapsed = time.perf_counter() - started
            time.sleep(3)
            stop.set()
            poller.join(5)
            # Probes within one second share observed_at: the greatest event id wins, so only
            # the last probe of each second is sure to show; measure those that did.
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
