"""Drill: the API under load (OBS_DRILL_API_CLIENTS concurrent clients for
OBS_DRILL_API_SECONDS) while the scorer ingests a replay.

The scorer, the publisher and the API run as processes. A first part of the golden log is
applied, then `observatoire replay` produces the rest while the clients, each with its own
keep-alive connection, send a mix of requests: standings JSON of any category, territory
pages, searches (JSON) and, for one client in eight, Server-Sent Events of rank changes
(connect, read what comes for a second, disconnect: at most 8 streams at once of 64 clients,
within the API's 16 per client address).

The rate limiter is off for the drill (OBS_RATE_LIMIT_ENABLED=false; every client shares
127.0.0.1, so it would limit the machine, not a client) and the open connections allowed per
address are raised to 4 per client (OBS_API_MAX_CONNECTIONS_PER_ADDRESS, for the same reason).
The load generator shares the machine's cores with the stack: latencies include its queueing.

Verdict: sent = requests, applied = answered 200, lost = errors (a 5xx, any other unexpected
status, a connection error or a timeout), 429s counted separately; p50/p99 per kind and
overall in the figures, and the snapshots the scorer applied during the load.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from services.common.clock import utcnow
from services.common.contracts import CATEGORY_IDS, TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.kafka import make_producer
from services.common.localstack import RedisServer, TansuBroker, free_port
from services.common.settings import Settings
from services.common.territories import load_registry
from tests.drills.a_helpers import (
    caught_up,
    group_committed,
    percentile,
    replay,
    scorer_group,
    tracebacks,
)
from tests.drills.plugin import Drill
from tests.drills.settings import drill_settings
from tests.golden.generate import GoldenLog, generate
from tests.services import ServiceProcess, fresh_stack, isolated_settings, service_env, wait_for

SEED = 31
DB = 8  # the Redis database of this drill
FIRST = 0.3  # share of the log applied before the load; the rest is replayed under it
SSE_EVERY = 8  # one client in this many follows event streams
SSE_HOLD_SECONDS = 1.0
TIMEOUT_SECONDS = 10.0
MIX = (("standings", 4), ("territory page", 3), ("search", 3))


@dataclass
class Tally:
    """What the clients saw: latencies by kind, statuses, errors."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    stream_events: int = 0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + len(self.errors)

    def record(self, kind: str, status: int, seconds: float, url: str) -> None:
        self.statuses[status] += 1
        self.seconds[kind].append(seconds)
        if status != 200 and status != 429:
            self.errors.append(f"{status} {url}")


@dataclass(frozen=True)
class Targets:
    territories: list[str]
    queries: list[str]


def _targets(log: GoldenLog) -> Targets:
    registry = load_registry()
    mapped = sorted({r["id"] for r in log.final_accounts() if r["handle"] is not None})
    queries = sorted({registry[tid].name.split()[0][:6] for tid in mapped})
    return Targets(mapped, [q for q in queries if len(q) >= 2])


async def _client(
    number: int, client: httpx.AsyncClient, deadline: float, targets: Targets, tally: Tally
) -> None:
    rng = random.Random(number)
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    while time.monotonic() < deadline:
        if number % SSE_EVERY == 0:
            await _stream(client, rng, tally)
            continue
        kind = rng.choice(kinds)
        if kind == "standings":
            url = f"/api/v1/standings/{rng.choice(CATEGORY_IDS)}"
        elif kind == "territory page":
            url = f"/territoires/{rng.choice(targets.territories)}"
        else:
            url = f"/api/v1/search?q={rng.choice(targets.queries)}"
        started = time.perf_counter()
        try:
            response = await client.get(url)
        except httpx.HTTPError as exc:
            tally.errors.append(f"{url}: {exc!r}")
            continue
        tally.record(kind, response.status_code, time.perf_counter() - started, url)


async def _stream(client: httpx.AsyncClient, rng: random.Random, tally: Tally) -> None:
    """Connect to a category's event stream, time its first bytes, read for a moment."""
    url = f"/api/v1/rank-changes/stream?category={rng.choice(CATEGORY_IDS)}"
    started = time.perf_counter()
    try:
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                tally.record("SSE connect", response.status_code, 0.0, url)
                return
            chunks = response.aiter_bytes()
            first = await asyncio.wait_for(anext(chunks), TIMEOUT_SECONDS)
            tally.record("SSE connect", 200, time.perf_counter() - started, url)
            assert first.startswith(b"retry:"), first[:100]
            until = time.monotonic() + SSE_HOLD_SECONDS
            while (left := until - time.monotonic()) > 0:
                try:
                    chunk = await asyncio.wait_for(anext(chunks), left)
                except TimeoutError:
                    break
                tally.stream_events += chunk.count(b"event: rank-change")
    except (httpx.HTTPError, TimeoutError, StopAsyncIteration) as exc:
        tally.errors.append(f"{url}: {exc!r}")


async def _load(base: str, clients: int, seconds: float, targets: Targets) -> Tally:
    """`clients` clients, each with its own keep-alive connection, for `seconds`."""
    tally = Tally()
    # Made before the clock starts (each builds TLS settings it never uses: ~0.1 s of this
    # loop's time apiece on a busy machine, which would count as the API's latency).
    sessions = [
        httpx.AsyncClient(
            base_url=base, timeout=TIMEOUT_SECONDS, limits=httpx.Limits(max_connections=1)
        )
        for _ in range(clients)
    ]
    try:
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(_client(n, s, deadline, targets, tally) for n, s in enumerate(sessions))
        )
    finally:
        for session in sessions:
            await session.aclose()
    return tally


def _produce_first(settings: Settings, log: GoldenLog, count: int) -> None:
    producer = make_producer(settings, enable_idempotence=False)
    for record in log.final_accounts():
        value = orjson.dumps(record)
        producer.send(settings.topic(TOPIC_ACCOUNTS), key=record["id"].encode(), value=value)
    for event in log.metrics[:count]:
        key = f"instagram:{event['handle']}".encode()
        producer.send(settings.topic(TOPIC_METRICS), key=key, value=orjson.dumps(event))
    producer.flush()
    producer.close()


@pytest.mark.drills
def test_drill_api_load(
    drill: Drill, broker: TansuBroker, redis_server: RedisServer, tmp_path: Path
) -> None:
    sizes = drill_settings()
    settings = isolated_settings(
        broker,
        redis_server,
        tmp_path / "run",
        DB,
        scorer_metrics_port=0,
        publisher_metrics_port=0,
        api_port=free_port(),
        rate_limit_enabled=False,
    )
    fresh_stack(settings).close()
    env = service_env(
        settings,
        OBS_RATE_LIMIT_ENABLED="false",
        OBS_API_MAX_CONNECTIONS_PER_ADDRESS=str(4 * sizes.api_clients),
        OBS_API_MAX_CONNECTIONS=str(max(2048, 4 * sizes.api_clients)),
    )
    timeout = sizes.recover_timeout_seconds

    drill.progress(f"generating the golden log ({sizes.events:,} snapshots)")
    log = generate(SEED, sizes.events, end=utcnow() - timedelta(minutes=10))
    first = int(FIRST * len(log.metrics))
    rest = tmp_path / "rest.jsonl"
    rest.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in log.metrics[first:]))
    targets = _targets(log)

    procs = [
        ServiceProcess(["service", name], env, tmp_path / f"{name}.log").start()
        for name in ("scorer", "publisher", "api")
    ]
    replaying: ServiceProcess | None = None
    try:
        drill.progress(f"scorer, publisher and API up; applying the first {first:,} snapshots")
        _produce_first(settings, log, first)
        wait_for(
            lambda: caught_up(settings),
            timeout=timeout,
            what="the first part applied",
            explain=lambda: procs[0].log()[-2000:],
        )
        wait_for(
            lambda: httpx.get(f"{settings.api_url}/api/v1/standings/departements").json()["total"],
            timeout=30,
            what="the API serving the standings",
        )

        for url in (  # a running server: its caches and search index are warm
            "/api/v1/standings/departements",
            f"/territoires/{targets.territories[0]}",
            f"/api/v1/search?q={targets.queries[0]}",
        ):
            assert httpx.get(f"{settings.api_url}{url}", timeout=30).status_code == 200, url

        replaying = replay(rest, None, env, tmp_path / "replay.log")
        group = scorer_group(settings)
        wait_for(
            lambda: group_committed(settings, group, (TOPIC_METRICS,))[TOPIC_METRICS] > first,
            timeout=timeout,
            what="the scorer ingesting the replay",
        )
        before = group_committed(settings, group, (TOPIC_METRICS,))[TOPIC_METRICS]
        drill.progress(
            f"{sizes.api_clients} clients for {sizes.api_seconds:g} s while the scorer ingests"
        )
        started = time.monotonic()
        tally = asyncio.run(_load(settings.api_url, sizes.api_clients, sizes.api_seconds, targets))
        took = time.monotonic() - started
        ingested = group_committed(settings, group, (TOPIC_METRICS,))[TOPIC_METRICS] - before
        still_replaying = replaying.proc is not None and replaying.proc.poll() is None

        answered = sum(tally.statuses.values())
        everything = [s for values in tally.seconds.values() for s in values]
        drill.sent = tally.sent
        drill.applied = tally.statuses[200]
        drill.lost = len(tally.errors)
        drill.figures["requests/s"] = f"{answered / took:,.0f}"
        drill.figures["p50"] = f"{percentile(everything, 50) * 1000:.0f} ms"
        drill.figures["p99"] = f"{percentile(everything, 99) * 1000:.0f} ms"
        for kind, values in sorted(tally.seconds.items()):
            drill.figures[f"{kind} p50/p99"] = (
                f"{percentile(values, 50) * 1000:.0f}/{percentile(values, 99) * 1000:.0f} ms "
                f"({len(values):,})"
            )
        drill.figures["429"] = f"{tally.statuses[429]:,}"
        drill.figures["stream events"] = f"{tally.stream_events:,}"
        drill.figures["ingested under load"] = f"{ingested:,} snapshots"
        drill.expect(tally.errors == [], f"errors: {tally.errors[:3]}")
        drill.expect(tally.statuses[429] == 0, f"{tally.statuses[429]} answers 429")
        drill.expect(ingested > 0, "the scorer applied nothing during the load")
        drill.figures["replay ran through the load"] = "yes" if still_replaying else "no"
        assert set(tally.seconds) == {"standings", "territory page", "search", "SSE connect"}
        assert all(p.proc is not None and p.proc.poll() is None for p in procs)
        assert tracebacks(*procs) == []
    finally:
        if replaying is not None:
            replaying.kill()
        for proc in procs:
            proc.terminate()
