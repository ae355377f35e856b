"""API throughput: `GET /api/v1/standings/departements?limit=50` against a bare FastAPI
endpoint returning a constant, both served by uvicorn with the same settings, loaded by
Debian's `wrk` at 32 connections (targets: ratio >= 0.5, p99 < 25 ms).

Setup: a private Redis holding all 101 départements, written by the real scorer
(`StandingsUpdater`) and publisher (`Publisher`: link status, rank changes, a published
edition for `movement`); the API as `observatoire service api` (one worker process, rate
limiting off, `OBS_API_WORKERS=1`); the bare app as `python -m bench.api bare` (same uvicorn
settings: h11, uvloop, no access log, one process). wrk runs one thread: on a 2-core
machine, one core serves and one loads.

Usage: python -m bench api   (or: python -m bench.api)
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from services.api.connections import API_LOOP
from services.common.events import (
    AccountRecord,
    Command,
    MetricsSnapshot,
    build_account_record,
    build_command,
    build_metrics_event,
)
from services.common.localstack import RedisServer, free_port
from services.common.territories import load_registry
from services.common.view.keys import ViewKeys
from tests.signing import COMMAND_KEY, COMMAND_KEYS

REPO_ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 32
DURATION_SECONDS = 8
WARMUP_SECONDS = 3
ROUNDS = 3  # bare and API alternate; the median round of each is reported
PATH = "/api/v1/standings/departements?limit=50"
BARE_PATH = "/constant"
TARGET_RATIO = 0.5
TARGET_P99_MS = 25.0


def _snapshot(handle: str, observed_at: str, followers: int, posts: int) -> MetricsSnapshot:
    day = int(observed_at[8:10])
    recent = [
        {
            "id": f"{handle}-{observed_at[:10]}-{i}",
            "published_at": f"{observed_at[:8]}{max(1, day - i):02d}T12:00:00Z",
            "likes": 0 if i % 11 == 0 else followers // 40 + i,
            "comments": 3 + i % 5,
            "likes_hidden": i % 11 == 0,  # Instagram's hidden like counts read 0
        }
        for i in range(posts)
    ]
    event = build_metrics_event(
        handle=handle,
        observed_at=observed_at,
        status="ok",
        source="sim",
        followers=followers,
        follows=250 + followers % 700,
        media_count=900,
        recent_posts=recent,
    )
    return MetricsSnapshot.model_validate(event)


async def seed(redis_url: str) -> int:
    """All 101 départements through the scorer and the publisher; returns how many rank."""
    from redis.asyncio import Redis

    from services.common.commands.sender import Delivered
    from services.publisher.core import Publisher
    from services.scorer.standings import StandingsUpdater
    from services.scorer.store import ScorerStore, geo_fingerprint

    async def send(topic: str, key: bytes, value: bytes) -> Delivered:
        return Delivered(0, 0)

    registry = load_registry()
    redis = Redis.from_url(redis_url)
    try:
        store = ScorerStore(redis, ViewKeys(0))
        await store.views.ensure_geo(registry, geo_fingerprint(registry))
        updater = StandingsUpdater(store, registry)
        publisher = Publisher(
            redis, ViewKeys(0), registry, send, grace_hours=24, command_keys=COMMAND_KEYS
        )
        await publisher.load()
        departements = registry.by_category("departements")
        for offset, territory in enumerate(departements):
            handle = f"bench.dep.{territory.code.lower()}"
            await updater.apply_account(territory.id, handle, True, version=offset)
            record = build_account_record(
                territory_id=territory.id,
                handle=handle,
                changed_at="2021-05-01T00:00:00Z",
                simulated=True,
            )
            await publisher.links.apply_account(AccountRecord.model_validate(record))
        for month, moment in (("05", "2021-05-28T06:00:00Z"), ("06", "2021-06-28T06:00:00Z")):
            batch = [
                _snapshot(
                    f"bench.dep.{t.code.lower()}",
                    moment,
                    followers=1000 + (index * 7919 + int(month) * 104729) % 90000,
                    posts=5 + (index * 13 + int(month)) % 25,
                )
                for index, t in enumerate(departements)
            ]
            await updater.apply_snapshots(batch)
            await publisher.links.apply_snapshots(batch)
            await publisher.ranks.refresh_all()
        late = [_snapshot("bench.dep.01", "2021-07-02T06:00:00Z", 50000, 20)]
        await updater.apply_snapshots(late)
        command = build_command(
            command="publish_edition",
            args={"edition": "2021-05"},
            requested_by="cli",
            requested_at="2021-07-02T08:00:00Z",
            key=COMMAND_KEY,
        )
        result = await publisher.commands.execute(Command.model_validate(command))
        assert result is not None and result["status"] == "done", result
        return int(await redis.zcard("obs:{cat:departements}:cur:rank"))
    finally:
        await redis.aclose()


def bare(port: int) -> None:
    """A bare FastAPI endpoint returning a constant, served like the API (main.run_api)."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.get(BARE_PATH)
    async def constant() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=3,
        lifespan="on",
        loop=API_LOOP,
    )


def wrk(url: str, seconds: int) -> dict[str, float]:
    """Requests/s and latency percentiles (ms) of one wrk run."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    percentiles = {}
    for label, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
        percentiles[f"p{label}_ms"] = round(float(value) * scale, 2)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = re.search(r"(\d+) requests in", out)
    return {
        "requests": int(requests.group(1)) if requests else 0,
        "requests_per_second": rps,
        **percentiles,
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def _median(runs: list[dict[str, float]]) -> dict[str, Any]:
    """The run with the median requests/s, with every round's figure beside it."""
    ordered = sorted(runs, key=lambda run: run["requests_per_second"])
    return {**ordered[len(ordered) // 2], "rounds_rps": [r["requests_per_second"] for r in runs]}


def _view_reads(port: int) -> float:
    """Redis reads of live standings so far (the API's obs_api_view_reads_total)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    return sum(
        float(value)
        for value in re.findall(r"^obs_api_view_reads_total\{[^}]*\} ([\d.e+]+)$", text, re.M)
    )


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready within 30 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run() -> dict[str, Any]:
    """Seed, serve, load; returns the figures."""
    if shutil.which("wrk") is None:
        raise SystemExit("bench api needs wrk (Debian package `wrk`: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        redis = RedisServer(free_port(), Path(tmp) / "redis.log").start()
        processes: list[subprocess.Popen[bytes]] = []
        try:
            ranked = asyncio.run(seed(redis.url))
            api_port, bare_port = free_port(), free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("OBS_")} | {
                "OBS_REDIS_URL": redis.url,
                "OBS_API_PORT": str(api_port),
                "OBS_API_WORKERS": "1",
                "OBS_RATE_LIMIT_ENABLED": "false",
                "OBS_LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(REPO_ROOT),
            }
            log = open(Path(tmp) / "servers.log", "ab")  # noqa: SIM115 (closed below)
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "services.cli", "service", "api"],
                    env=env,
                    cwd=REPO_ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.api", "bare", str(bare_port)],
                    env=env,
                    cwd=REPO_ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            api_url = f"http://127.0.0.1:{api_port}{PATH}"
            bare_url = f"http://127.0.0.1:{bare_port}{BARE_PATH}"
            _wait_ready(api_url, processes[0])
            _wait_ready(bare_url, processes[1])
            items = len(httpx.get(api_url).json()["items"])
            wrk(bare_url, WARMUP_SECONDS)
            wrk(api_url, WARMUP_SECONDS)
            reads_before = _view_reads(api_port)
            bare_runs, api_runs = [], []
            for _ in range(ROUNDS):
                bare_runs.append(wrk(bare_url, DURATION_SECONDS))
                api_runs.append(wrk(api_url, DURATION_SECONDS))
            reads = _view_reads(api_port) - reads_before
            baseline, standings = _median(bare_runs), _median(api_runs)
            served = sum(run["requests"] for run in api_runs)
            log.close()
        finally:
            for process in processes:
                _stop(process)
            redis.stop()
    ratio = standings["requests_per_second"] / baseline["requests_per_second"]
    return {
        "load": f"wrk -t1 -c{CONNECTIONS} -d{DURATION_SECONDS}s --latency, {ROUNDS} rounds "
        f"alternating bare/API (median round reported), after a {WARMUP_SECONDS} s warm-up "
        "each",
        "server": f"uvicorn 1 worker process, h11, {API_LOOP}, access log off; rate limiting off",
        "dataset": f"{ranked} départements ranked; {items} items per response",
        "standings": {"path": PATH, **standings},
        "baseline": {"path": BARE_PATH, **baseline},
        "ratio": round(ratio, 3),
        "redis_reads_per_request": round(reads / max(1, served), 3),
        "targets": {
            "ratio_at_least": TARGET_RATIO,
            "p99_ms_below": TARGET_P99_MS,
            "met": ratio >= TARGET_RATIO and standings.get("p99_ms", 1e9) < TARGET_P99_MS,
        },
    }


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "bare":
        bare(int(sys.argv[2]))
    else:
        import json

        print(json.dumps(run(), indent=2))
