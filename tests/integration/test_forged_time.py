"""One forged record cannot move time: the watermark is the 3rd newest account's (contract v4).

On the local broker (which keeps the producer's record timestamp: Tansu ignores
LogAppendTime), two records dated 2099 with a record timestamp of 2099 are valid: a
`not_found` for a handle no territory uses and an `ok` for a mapped one. Before contract v4
either emptied every ranking. Here, with the real scorer, publisher and API, every other
territory keeps its place and score, every category keeps its `as_of`, and no rank-change
event is dated after it, live and after `observatoire rebuild`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from services.cli.topics import seed_bundled_accounts
from services.common.clock import format_timestamp, parse_timestamp, utcnow
from services.common.contracts import TOPIC_METRICS
from services.common.events import build_metrics_event
from services.common.kafka import create_topics, make_producer
from services.common.localstack import RedisServer, TansuBroker, free_port
from services.common.settings import Settings
from tests.services import ServiceProcess, committed_offsets, service_env, wait_for

FORGED_AT = "2099-01-01T00:00:00Z"
FORGED_MS = int(parse_timestamp(FORGED_AT).timestamp() * 1000)
FORGED_HANDLE = "hautevienne_dep"  # dep-87, a bundled account
FORGED_TERRITORY = "dep-87"
LATE_HANDLE = "ma_charente_maritime"  # dep-17: observed 25 days before the others
CATEGORIES = ("departements", "grandes-villes", "communautes-communes")
HANDLES = [
    "gersledepartement",
    "paris_maville",
    "isere.le.departement",
    "haute_marne",
    "eureennormandie",
    "departement.ardeche",
    "ariegeledpt",
    "hautevienne_dep",
    "ma_charente_maritime",
    "cc_comtal_lot_truyere",
    "paysbigouden",
    "lescoevrons",
    "isignyomahaintercom",
    "latenareze",
]


def _snapshot(handle: str, observed_at: str, followers: int, status: str = "ok") -> dict:
    if status != "ok":
        return build_metrics_event(
            handle=handle,
            observed_at=observed_at,
            status=status,  # type: ignore[arg-type]
            source="sim",
        )
    moment = parse_timestamp(observed_at)
    posts = [
        {
            "id": f"{handle}-{i}",
            "published_at": format_timestamp(moment - timedelta(days=i + 1)),
            "likes": followers // 50 + i,
            "comments": 3,
            "likes_hidden": False,
        }
        for i in range(12)
    ]
    return build_metrics_event(
        handle=handle,
        observed_at=observed_at,
        status="ok",
        source="sim",
        followers=followers,
        follows=250,
        media_count=900,
        recent_posts=posts,
    )


@pytest.fixture(scope="module")
def forged(broker: TansuBroker, redis_server: RedisServer, tmp_path_factory) -> Iterator[dict]:
    tmp: Path = tmp_path_factory.mktemp("forged-time")
    settings = Settings(
        _env_file=None,
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}-",
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/9",
        api_port=free_port(),
        scorer_metrics_port=free_port(),
        publisher_metrics_port=free_port(),
        collector_metrics_port=free_port(),
        run_dir=tmp / "run",
        spool_dir=tmp / "spool",
        rebuild_grace_seconds=0,
    )
    import redis

    redis.Redis.from_url(settings.redis_url).flushdb()
    assert all(report.ok for report in create_topics(settings))
    seed_bundled_accounts(settings)
    env = service_env(settings)
    procs = {
        name: ServiceProcess(["service", name], env, tmp / f"{name}.log").start()
        for name in ("scorer", "publisher", "api")
    }
    try:
        wait_for(
            lambda: httpx.get(f"{settings.api_url}/readyz").status_code == 200,
            timeout=30,
            what=f"the API to be ready:\n{procs['api'].log()[-2000:]}",
        )
        yield {"settings": settings, "env": env, "tmp": tmp, "procs": procs}
    finally:
        for proc in procs.values():
            proc.kill()


def _send(settings: Settings, events: list[tuple[dict, int | None]]) -> None:
    producer = make_producer(settings)
    for event, timestamp_ms in events:
        producer.send(
            settings.topic(TOPIC_METRICS),
            key=f"instagram:{event['handle']}".encode(),
            value=orjson.dumps(event),
            timestamp_ms=timestamp_ms,
        )
    producer.flush()
    producer.close()


def _consumed(settings: Settings, count: int, procs: dict) -> None:
    group = f"{settings.topic_prefix}observatoire-scorer"
    wait_for(
        lambda: committed_offsets(settings, group) >= count,
        timeout=60,
        what=f"{count} snapshots consumed:\n{procs['scorer'].log()[-2000:]}",
    )


def _view(settings: Settings) -> dict[str, dict]:
    """Per category: the ranked (id, score) in order, `as_of`, the last rank-change `at`."""
    view = {}
    for category in CATEGORIES:
        base = f"{settings.api_url}/api/v1"
        standings = httpx.get(f"{base}/standings/{category}", params={"limit": 100}).json()
        changes = httpx.get(f"{base}/rank-changes", params={"category": category}).json()
        view[category] = {
            "ranked": [(item["id"], item["score"]) for item in standings["items"]],
            "as_of": standings["as_of"],
            "at": [event["at"] for event in changes["events"]],
        }
    return view


def _settled(settings: Settings, seqs_at_least: int = 1) -> dict[str, dict]:
    """The view once every category has published its list (the publisher is asynchronous)."""
    return wait_for(
        lambda: (
            (v := _view(settings))
            and all(len(c["at"]) >= seqs_at_least and c["ranked"] for c in v.values())
            and v
        ),
        timeout=30,
        what="every category ranked and announced",
    )


def _without(ranked: list[tuple[str, float]], territory: str) -> list[tuple[str, float]]:
    return [(tid, score) for tid, score in ranked if tid != territory]


def test_forged_far_future_records_move_time_for_nobody_live_and_after_a_rebuild(forged):
    settings: Settings = forged["settings"]
    procs = forged["procs"]
    now = utcnow().replace(microsecond=0)
    honest = []
    for i, handle in enumerate(HANDLES):
        # The three newest accounts observe at the same second, as a collector's round does;
        # the others a few minutes earlier.
        moment = now - timedelta(days=2, minutes=max(0, i - 2))
        if handle == LATE_HANDLE:
            moment -= timedelta(days=25)  # still ranked: 25 days behind the watermark
        honest.append((_snapshot(handle, format_timestamp(moment), 4_000 + 1_000 * i), None))
    _send(settings, honest)
    _consumed(settings, len(honest), procs)
    before = _settled(settings)
    honest_watermark = format_timestamp(now - timedelta(days=2))  # the 3rd newest account
    assert {c["as_of"] for c in before.values()} == {honest_watermark}
    assert any(tid == "dep-17" for tid, _ in before["departements"]["ranked"])

    # The forged records: valid, since the producer chose their record timestamp too.
    _send(
        settings,
        [
            (_snapshot("faussaire_2099", FORGED_AT, 0, status="not_found"), FORGED_MS),
            (_snapshot(FORGED_HANDLE, FORGED_AT, 99_000), FORGED_MS),
        ],
    )
    _consumed(settings, len(honest) + 2, procs)
    # The forged `ok` replaces dep-87's entry (a later observed_at wins) and the publisher
    # announces the new list: wait for both.
    was = dict(before["departements"]["ranked"])[FORGED_TERRITORY]

    def announced() -> dict[str, dict] | None:
        view = _view(settings)
        departements = view["departements"]
        moved = dict(departements["ranked"]).get(FORGED_TERRITORY) != was
        return (
            view if moved and len(departements["at"]) > len(before["departements"]["at"]) else None
        )

    live = wait_for(announced, timeout=30, what="the forged snapshot applied and announced")
    _check(before, live)

    # A rebuild replays the forged records (the topic keeps them): time still does not move.
    for proc in (procs["scorer"], procs["publisher"]):
        proc.terminate()
    rebuild = ServiceProcess(["rebuild"], forged["env"], forged["tmp"] / "rebuild.log").start()
    assert rebuild.wait(180) == 0, rebuild.log()[-3000:]
    rebuilt = _view(settings)
    _check(before, rebuilt)
    assert rebuilt == live


def _check(before: dict[str, dict], after: dict[str, dict]) -> None:
    for category in CATEGORIES:
        was, now = before[category], after[category]
        assert now["as_of"] == was["as_of"], category
        assert _without(now["ranked"], FORGED_TERRITORY) == _without(
            was["ranked"], FORGED_TERRITORY
        ), category
        assert all(at < "2090" for at in now["at"]), (category, now["at"])
        # Events since the forgery are dated by the category's `as_of`, not by the forgery.
        assert set(now["at"][len(was["at"]) :]) <= {was["as_of"]}, (category, now["at"])
    # The forged territory is frozen at its forged snapshot, still ranked (docs/security.md).
    assert FORGED_TERRITORY in dict(after["departements"]["ranked"])
