"""Server time of the public pages: every page type of the accessibility test
(tests/e2e/test_accessibility_chromium.py: home, lists, territory, search, comparison, data,
methodology, coverage, an error page), `REQUESTS` sequential requests each over HTTP to the
API served by uvicorn in its own process, against `/healthz` (the baseline: the same client,
connection and server, no work) measured in the same run (target: p99 < 30 ms per page type).

Each request is timed in the client, end to end on localhost (connection kept alive, the whole
body read): an upper bound of the server's time. The API's own measure, the histogram
`obs_api_request_seconds` read from `/metrics` before and after each batch, gives the server's
mean and the bucket its 99th percentile falls in; the API process's CPU time (/proc) over each
batch gives its CPU per request, which other processes on a shared machine do not inflate (they
do inflate latencies: the load average is reported). Pages and baseline alternate in `ROUNDS`
rounds, so that a noisy moment on the machine is shared. A page that does not answer 200 as
expected (a page not built yet answers 404) is reported as such, without timings.

Setup: a private Redis holding the browser tests' data (the story of
tests/integration/test_api_story.py with its published editions, 250 petites villes, Méailles
and its neighbours), written by the scorer's and publisher's own code; the API as
`observatoire service api` (one worker, rate limiting off, logs at WARNING).

Usage: python -m bench pages   (or: python -m bench.pages [--requests N])
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.api import REPO_ROOT, _stop, _wait_ready
from services.common.localstack import RedisServer, free_port

REQUESTS = 300  # per page type
ROUNDS = 3  # the requests of each page are spread over this many rounds
WARMUP = 10  # requests per page before the measured ones
TARGET_P99_MS = 30.0
BASELINE = ("healthz", "/healthz", 200)
HTML = {"Accept": "text/html"}
_SERIES = re.compile(r"^obs_api_request_seconds_(bucket|sum|count)\{(.*?)\} (\S+)$", re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _pages() -> list[tuple[str, str, int]]:
    """The page types of the accessibility test (one list for both)."""
    from tests.e2e.test_accessibility_chromium import PAGES

    return list(PAGES)


def _seed(redis_url: str) -> None:
    from tests.e2e.test_find_territory_chromium import seed

    asyncio.run(seed(redis_url))


def _histograms(client: httpx.Client) -> dict[str, dict[str, float]]:
    """Per route: the request-duration histogram's cumulative buckets, sum and count."""
    found: dict[str, dict[str, float]] = {}
    for kind, labels, value in _SERIES.findall(client.get("/metrics").text):
        label = dict(_LABEL.findall(labels))
        series = found.setdefault(label["route"], {})
        key = f"le={label['le']}" if kind == "bucket" else kind
        series[key] = float(value)
    return found


def _server_side(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, Any] | None:
    """The API's own figures for the requests between two scrapes of one page type."""
    moved = {
        route: {key: value - before.get(route, {}).get(key, 0.0) for key, value in series.items()}
        for route, series in after.items()
    }
    moved = {route: series for route, series in moved.items() if series.get("count", 0) > 0}
    moved.pop("/metrics", None)
    if len(moved) != 1:
        return None
    ((route, series),) = moved.items()
    count = series["count"]
    bounds = sorted(
        (float(key[3:]), value) for key, value in series.items() if key.startswith("le=")
    )
    p99_bucket = next((bound for bound, seen in bounds if seen >= 0.99 * count), None)
    return {
        "route": route,
        "requests": int(count),
        "mean_ms": round(series["sum"] / count * 1000, 3),
        "p99_at_most_ms": None if p99_bucket is None else round(p99_bucket * 1000, 1),
    }


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "max_ms": round(ordered[-1], 3),
        "samples": len(ordered),
    }


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far (proc(5): utime and stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed_batch(client: httpx.Client, path: str, count: int, expected: int) -> list[float]:
    """`count` requests in a row, each timed end to end; raises if one is not `expected`."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path, headers=HTML)
        response.read()
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != expected:
            raise PageFailed(f"answered {response.status_code} during the run")
    return samples


class PageFailed(Exception):
    """A page stopped answering as expected while it was measured."""


def measure(base_url: str, requests: int, server_pid: int) -> dict[str, Any]:
    """Time every page type and the baseline over HTTP; returns the figures per page."""
    pages = [BASELINE, *_pages()]
    per_round = max(1, requests // ROUNDS)
    served: dict[str, int | str] = {}
    for name, path, _ in pages:
        try:  # a connection of its own: a page that fails may close it
            served[name] = httpx.get(f"{base_url}{path}", headers=HTML).status_code
        except httpx.HTTPError as exc:
            served[name] = f"no answer ({exc})"
    measured = [page for page in pages if served[page[0]] == page[2]]
    samples: dict[str, list[float]] = {name: [] for name, _, _ in measured}
    server: dict[str, list[dict[str, Any] | None]] = {name: [] for name, _, _ in measured}
    cpu: dict[str, float] = {name: 0.0 for name, _, _ in measured}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for round_number in range(ROUNDS + 1):  # round 0 warms up
            for name, path, expected in measured:
                if name not in samples:
                    continue
                try:
                    if round_number == 0:
                        _timed_batch(client, path, WARMUP, expected)
                        continue
                    before = _histograms(client)
                    cpu_before = _cpu_seconds(server_pid)
                    batch = _timed_batch(client, path, per_round, expected)
                    cpu[name] += _cpu_seconds(server_pid) - cpu_before
                    server[name].append(_server_side(before, _histograms(client)))
                    samples[name] += batch
                except (httpx.HTTPError, PageFailed) as exc:  # a page changed under the bench
                    served[name] = f"failed during the run: {exc}"
                    del samples[name]

    if BASELINE[0] not in samples:
        raise RuntimeError(f"the baseline {BASELINE[1]}: {served[BASELINE[0]]}")
    baseline = _summary(samples[BASELINE[0]])
    figures: dict[str, Any] = {}
    for name, path, expected in pages:
        if name not in samples:
            figures[name] = {"path": path, "status": served[name], "expected": expected}
            continue
        client_side = _summary(samples[name])
        rounds = [s for s in server[name] if s is not None]
        server_side = None
        if len(rounds) == ROUNDS:
            count = sum(r["requests"] for r in rounds)
            bounds = [r["p99_at_most_ms"] for r in rounds]
            server_side = {
                "route": rounds[0]["route"],
                "mean_ms": round(sum(r["mean_ms"] * r["requests"] for r in rounds) / count, 3),
                "p99_at_most_ms": None if None in bounds else max(bounds),
                "cpu_ms_per_request": round(cpu[name] * 1000 / len(samples[name]), 3),
            }
        figures[name] = {
            "path": path,
            "status": expected,
            "client": client_side,
            "server": server_side,
            "ratio_to_baseline": {
                "p50": round(client_side["p50_ms"] / baseline["p50_ms"], 1),
                "p99": round(client_side["p99_ms"] / baseline["p99_ms"], 1),
            },
            "p99_below_target": client_side["p99_ms"] < TARGET_P99_MS,
        }
    return figures


def run(requests: int = REQUESTS) -> dict[str, Any]:
    """Seed, serve, measure; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        redis = RedisServer(free_port(), Path(tmp) / "redis.log").start()
        process: subprocess.Popen[bytes] | None = None
        try:
            _seed(redis.url)
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("OBS_")} | {
                "OBS_REDIS_URL": redis.url,
                "OBS_API_PORT": str(port),
                "OBS_API_WORKERS": "1",
                "OBS_RATE_LIMIT_ENABLED": "false",
                "OBS_LOG_LEVEL": "WARNING",
                "OBS_RUN_DIR": str(Path(tmp) / "run"),
                "PYTHONPATH": str(REPO_ROOT),
            }
            with open(Path(tmp) / "api.log", "ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "services.cli", "service", "api"],
                    env=env,
                    cwd=REPO_ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                base_url = f"http://127.0.0.1:{port}"
                try:
                    _wait_ready(f"{base_url}/readyz", process)
                    load_before = os.getloadavg()[0]
                    figures = measure(base_url, requests, process.pid)
                    load_after = os.getloadavg()[0]
                except (httpx.HTTPError, RuntimeError, AssertionError) as exc:
                    tail = (Path(tmp) / "api.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"bench pages: {exc}; the API's log ends:\n{tail}") from exc
        finally:
            if process is not None:
                _stop(process)
            redis.stop()
    timed = {name: f for name, f in figures.items() if "client" in f and name != BASELINE[0]}
    missing = sorted(name for name, f in figures.items() if "client" not in f)
    slowest = max(timed, key=lambda name: timed[name]["client"]["p99_ms"]) if timed else None
    return {
        "load": f"{requests // ROUNDS * ROUNDS} sequential requests per page type in {ROUNDS} "
        f"rounds alternating pages (after {WARMUP} warm-up requests each), one keep-alive "
        "connection, Accept: text/html, the whole body read; timed in the client",
        "server": "uvicorn 1 worker process (observatoire service api), rate limiting off",
        "load_average_1min": {"before": round(load_before, 2), "after": round(load_after, 2)},
        "cores": os.cpu_count(),
        "dataset": "the browser tests' data: 7 départements with two published editions, "
        "263 petites villes ranked",
        "baseline": figures[BASELINE[0]],
        "pages": {name: f for name, f in figures.items() if name != BASELINE[0]},
        "not_served": {name: figures[name]["status"] for name in missing},
        "slowest_p99": None
        if slowest is None
        else {"page": slowest, "p99_ms": timed[slowest]["client"]["p99_ms"]},
        "targets": {
            "p99_ms_below": TARGET_P99_MS,
            "met": bool(timed)
            and not missing
            and all(f["p99_below_target"] for f in timed.values()),
        },
    }


if __name__ == "__main__":
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=REQUESTS, help="per page type")
    print(json.dumps(run(parser.parse_args().requests), indent=2))
