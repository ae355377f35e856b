"""Commands and editions with real processes: the scorer and the publisher on the real broker
and Redis, driven through the CLI (`accounts set`, `edition publish`) as an operator would.

The story, in file order: three départements get accounts; four months of snapshots make
dep-01 #1 three months running, then dep-02 overtakes; one account dies. Editions are refused
while too recent, out of order or without data, published in order (movement, streaks, handle
and link status per entry, full parts), published twice (a no-op that says so), frozen for
good; the publisher stops within 10 s and `rebuild` restores exactly what it had.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis
from typer.testing import CliRunner

from services.cli import accounts as accounts_cli
from services.cli import edition as edition_cli
from services.common.clock import to_epoch, utcnow
from services.common.commands.protocol import submit_command, wait_for_result
from services.common.contracts import (
    CATEGORY_IDS,
    TOPIC_EDITIONS,
    TOPIC_METRICS,
    TOPIC_RANK_CHANGES,
)
from services.common.events import EditionPart, RankChange, build_command, build_metrics_event
from services.common.kafka import make_producer
from services.common.localstack import RedisServer, TansuBroker, free_port
from services.common.settings import Settings, get_settings
from services.common.view.entries import decode_account_link
from services.common.view.keys import ViewKeys
from services.common.view.values import decode_watermark
from services.rebuild import rebuild_view
from tests.kafka_read import read_all
from tests.services import ServiceProcess, fresh_stack, isolated_settings, service_env, wait_for
from tests.signing import COMMAND_KEY
from tests.witnesses import witnesses

rk = ViewKeys(0)  # the generation a fresh view starts in

HANDLES = {"dep-01": "pub.alpha", "dep-02": "pub.beta", "dep-03": "pub.gamma"}
MONTHS = ["2021-03", "2021-04", "2021-05", "2021-06"]
WATERMARK = "2021-07-05T06:00:00Z"


def publisher_process(env: dict[str, str], log_path: Path) -> ServiceProcess:
    """`observatoire service publisher` as a child process."""
    return ServiceProcess(["service", "publisher"], env, log_path)


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    scorer: ServiceProcess
    publisher: ServiceProcess
    redis: redis.Redis

    def logs(self) -> str:
        scorer, publisher = self.scorer.log()[-1500:], self.publisher.log()[-2500:]
        return f"--- scorer\n{scorer}\n--- publisher\n{publisher}"


@pytest.fixture(scope="module")
def stack(broker: TansuBroker, redis_server: RedisServer, tmp_path_factory) -> Iterator[Stack]:
    tmp: Path = tmp_path_factory.mktemp("publisher-editions")
    settings = isolated_settings(
        broker,
        redis_server,
        tmp / "run",
        7,
        scorer_metrics_port=free_port(),
        publisher_metrics_port=free_port(),
        command_key=COMMAND_KEY,
    )
    client = fresh_stack(settings)  # no bundled accounts seeded
    env = service_env(settings, OBS_PUBLISHER_METRICS_PORT=str(settings.publisher_metrics_port))
    scorer = ServiceProcess(["service", "scorer"], env, tmp / "scorer.log").start()
    publisher = publisher_process(env, tmp / "publisher.log").start()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            if name.startswith("OBS_"):
                patch.setenv(name, value)
        get_settings.cache_clear()
        try:
            yield Stack(settings, env, scorer, publisher, client)
        finally:
            get_settings.cache_clear()
            scorer.kill()
            publisher.kill()
            client.flushdb()
            client.close()


def cli(app, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def snapshot(handle: str, observed_at: str, status: str = "ok", followers: int = 0) -> dict:
    counts = {"followers": followers, "follows": 100, "media_count": 10} if status == "ok" else {}
    return build_metrics_event(
        handle=handle,
        observed_at=observed_at,
        status=status,  # type: ignore[arg-type]
        source="graph",
        recent_posts=[],
        **counts,
    )


def produce_metrics(settings: Settings, events: list[dict]) -> None:
    producer = make_producer(settings)
    for event in events:
        producer.send(
            settings.topic(TOPIC_METRICS),
            key=f"instagram:{event['handle']}".encode(),
            value=orjson.dumps(event),
        )
    producer.flush()
    producer.close()


def edition_parts(settings: Settings) -> dict[tuple[str, str], list[dict]]:
    records = read_all(settings, settings.topic(TOPIC_EDITIONS), timeout=20)
    parts: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        part = orjson.loads(record.value)
        EditionPart.model_validate(part)
        assert record.key == f"{part['category']}:{part['edition']}:{part['part']}".encode()
        parts.setdefault((part["category"], part["edition"]), []).append(part)
    return parts


def test_accounts_set_waits_until_the_scorer_applied_it(stack: Stack):
    for territory_id, handle in HANDLES.items():
        code, output = cli(accounts_cli.app, "set", territory_id, f"@{handle}", "--timeout", "60")
        assert code == 0, f"{output}\n{stack.logs()}"
        assert f"uses @{handle}" in output and "applied to the standings" in output
        applied = decode_account_link(stack.redis.hget(rk.ACCOUNTS_KEY, territory_id))
        assert applied == (handle, False)  # the scorer's mapping already shows it
    code, output = cli(accounts_cli.app, "set", "dep-32", "not a handle")
    assert code == 2 and "contains a space" in output
    # The publisher refuses what it cannot apply, and says why.
    command = build_command(
        command="set_account",
        args={"id": "dep-99", "handle": "nobody"},
        requested_by="api",
        requested_at=utcnow(),
        key=COMMAND_KEY,
    )
    submit_command(stack.settings, command)
    result = wait_for_result(stack.settings, command["event_id"], timeout=30)
    assert result is not None and result["status"] == "refused"
    assert "unknown territory dep-99" in result["reason"]
    stored = orjson.loads(stack.redis.hget(rk.COMMAND_RESULTS_KEY, command["event_id"]))
    assert stored == result  # what the API serves


def test_editions_are_published_in_order_with_movement_streaks_and_link_status(stack: Stack):
    settings = stack.settings
    followers = {m: {"dep-01": 50_000, "dep-02": 20_000, "dep-03": 5_000} for m in MONTHS}
    followers["2021-06"] = {"dep-01": 50_000, "dep-02": 90_000, "dep-03": 5_000}
    events = [
        snapshot(HANDLES[tid], f"{month}-15T06:00:00Z", followers=count)
        for month in MONTHS
        for tid, count in followers[month].items()
    ]
    events += [
        snapshot("pub.gamma", "2021-07-02T06:00:00Z", "not_found"),
        snapshot("pub.gamma", "2021-07-03T06:00:00Z", "error"),
        snapshot("pub.gamma", "2021-07-04T06:00:00Z", "not_found"),
        snapshot("pub.alpha", WATERMARK, followers=50_000),
        *witnesses(WATERMARK),  # the watermark is the 3rd newest account's time
    ]
    produce_metrics(settings, events)
    wait_for(
        lambda: (
            decode_watermark(stack.redis.zrange(rk.WATERMARK_KEY, 0, -1, withscores=True))
            == to_epoch(WATERMARK)
            and all(
                stack.redis.zcard(rk.rank_key(rk.view_prefix("departements", m))) == 3
                for m in MONTHS
            )
        ),
        timeout=60,
        what=f"the scorer to apply every snapshot\n{stack.logs()}",
    )
    wait_for(
        lambda: stack.redis.hget(rk.link_status_key("departements"), "dep-03") == b"dead",
        timeout=60,
        what=f"the publisher to judge pub.gamma dead\n{stack.logs()}",
    )

    code, output = cli(edition_cli.app, "publish", "2021-07")
    assert code == 2 and "cannot be published yet" in output, output
    code, output = cli(edition_cli.app, "publish", "2021-04")
    assert code == 2 and "2021-03 must be published first" in output, output
    code, output = cli(edition_cli.app, "publish", "2020-01")
    assert code == 2 and "has no data" in output, output
    code, output = cli(edition_cli.app, "publish", "2021-13")
    assert code == 2 and "refused" in output, output
    for month in MONTHS:
        code, output = cli(edition_cli.app, "publish", month)
        assert code == 0 and output.startswith(f"published {month} at"), f"{output}\n{stack.logs()}"
    code, output = cli(edition_cli.app, "publish", "2021-03")
    assert code == 0 and "already published" in output and "nothing changed" in output, output

    parts = edition_parts(settings)
    for month in MONTHS:
        for category in CATEGORY_IDS:
            found = parts[(category, month)]
            assert [(p["part"], p["parts"]) for p in found] == [(1, 1)], (category, month)
            if category != "departements":
                assert found[0]["standings"] == []
    leaders, streaks = [], []
    for month in MONTHS:
        (part,) = parts[("departements", month)]
        standings = part["standings"]
        assert [s["rank"] for s in standings] == [1, 2, 3]
        leaders.append(standings[0]["id"])
        streaks.append(standings[0]["streak"])
        assert all(s["streak"] == 0 for s in standings[1:])
        assert {s["id"]: s["handle"] for s in standings} == HANDLES
        links = {s["id"]: s["link_status"] for s in standings}
        assert links == {"dep-01": "ok", "dep-02": "ok", "dep-03": "dead"}
        assert all(s["observed_at"] == f"{month}-15T06:00:00Z" for s in standings)
    assert leaders == ["dep-01", "dep-01", "dep-01", "dep-02"]
    assert streaks == [1, 2, 3, 1]  # three in a row, broken by the fourth
    first, last = parts[("departements", "2021-03")][0], parts[("departements", "2021-06")][0]
    assert [s["movement"] for s in first["standings"]] == [None, None, None]
    assert {s["id"]: s["movement"] for s in last["standings"]} == {
        "dep-02": 1,
        "dep-01": -1,
        "dep-03": 0,
    }
    # Redis: the published editions (what the API serves) and the frozen months.
    assert set(stack.redis.hkeys(rk.EDITIONS_KEY)) == {m.encode() for m in MONTHS}
    assert stack.redis.smembers(rk.FROZEN_MONTHS_KEY) == {m.encode() for m in MONTHS}
    for category in CATEGORY_IDS:
        for month in MONTHS:
            assert stack.redis.exists(rk.edition_frozen_key(category, month))
    june = stack.redis.zrange(rk.latest_published_rank_key("departements"), 0, -1, withscores=True)
    assert june == [(b"dep-02", 1.0), (b"dep-01", 2.0), (b"dep-03", 3.0)]
    entry = orjson.loads(
        stack.redis.hget(rk.published_entry_key("departements", "2021-06"), "dep-02")
    )
    assert entry == last["standings"][0]


def test_a_published_month_never_changes_again(stack: Stack):
    march = rk.view_prefix("departements", "2021-03")
    # Served from the publisher's copy: the scorer's frozen view was dropped at publication.
    assert not stack.redis.exists(rk.rank_key(march), rk.entry_key(march))
    before_pub = stack.redis.hgetall(rk.published_entry_key("departements", "2021-03"))
    # A late snapshot for March, then (same account, so after it) one for July.
    produce_metrics(
        stack.settings,
        [
            snapshot("pub.gamma", "2021-03-20T06:00:00Z", followers=900_000),
            snapshot("pub.gamma", "2021-07-04T18:00:00Z", followers=5_000),
        ],
    )
    wait_for(
        lambda: stack.redis.hexists(
            rk.entry_key(rk.view_prefix("departements", "2021-07")), "dep-03"
        ),
        timeout=30,
        what=f"the July snapshot to be applied\n{stack.logs()}",
    )
    assert not stack.redis.exists(rk.rank_key(march), rk.entry_key(march))  # never rewritten
    assert stack.redis.hgetall(rk.published_entry_key("departements", "2021-03")) == before_pub
    wait_for(
        lambda: stack.redis.hget(rk.link_status_key("departements"), "dep-03") == b"ok",
        timeout=30,
        what="pub.gamma alive again",
    )


def test_rank_changes_follow_the_live_standings_of_the_real_scorer(stack: Stack):
    settings = stack.settings

    def published() -> list[str] | None:
        state = stack.redis.hgetall(rk.rank_changes_state_key("departements"))
        live = [
            t.decode()
            for t in stack.redis.zrange(rk.rank_key(rk.view_prefix("departements", None)), 0, 49)
        ]
        return live if state and orjson.loads(state[b"top"]) == live else None

    top = wait_for(published, timeout=30, what=f"the published list\n{stack.logs()}")
    assert top == ["dep-02", "dep-01", "dep-03"]
    records = read_all(settings, settings.topic(TOPIC_RANK_CHANGES), timeout=10)
    events = [orjson.loads(r.value) for r in records if r.key == b"departements"]
    for event in events:
        RankChange.model_validate(event)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["top"] == top


def _publisher_view(client: redis.Redis, rk: ViewKeys) -> dict[str, object]:
    """Every key the publisher owns in a generation, as comparable data (named without the
    generation's root)."""
    view: dict[str, object] = {}
    patterns = [
        f"{rk.category_tag(c)}:{p}"
        for c in CATEGORY_IDS
        for p in ("rc:*", "pub:*", "link", "ed:*:frozen")
    ]
    patterns += [f"{rk.root}:acct:*:link"]
    for pattern in patterns:
        for key in client.scan_iter(match=pattern):
            name = key.decode()
            kind = client.type(key)
            if kind == b"hash":
                value: object = client.hgetall(key)
                if name.endswith(":rc:state"):  # scores after a rebuild are what the log told
                    value = {k: v for k, v in client.hgetall(key).items() if k != b"scores"}
            elif kind == b"zset":
                value = client.zrange(key, 0, -1, withscores=True)
            else:
                value = client.get(key)
            view[name.removeprefix(rk.root)] = value
    for key in (
        rk.COMMAND_RESULTS_KEY,
        rk.DEAD_LINKS_KEY,
        rk.PUBLISHER_ACCOUNTS_KEY,
        rk.PUBLISHER_OFFSETS_KEY,
    ):
        view[key.removeprefix(rk.root)] = client.hgetall(key)
    view[rk.FROZEN_MONTHS_KEY.removeprefix(rk.root)] = client.smembers(rk.FROZEN_MONTHS_KEY)
    view[rk.EDITIONS_KEY.removeprefix(rk.root)] = {
        month: {k: v for k, v in orjson.loads(raw).items() if k != "command_id"}
        for month, raw in client.hgetall(rk.EDITIONS_KEY).items()
    }
    return view


def test_the_publisher_stops_within_10_s_and_rebuild_restores_its_view(stack: Stack):
    took = stack.publisher.terminate(timeout=10)
    assert took < 10
    assert "stopped cleanly" in stack.publisher.log(), stack.publisher.log()[-2000:]
    before = _publisher_view(stack.redis, rk)
    assert before[rk.EDITIONS_KEY.removeprefix("obs")]
    assert before[rk.COMMAND_RESULTS_KEY.removeprefix("obs")]
    report = asyncio.run(rebuild_view(stack.settings, grace_seconds=0))
    assert report.generation == 1 and not report.publisher_held  # no live publisher
    assert report.publisher.recovery.editions == MONTHS
    after = _publisher_view(stack.redis, ViewKeys(report.generation))
    assert sorted(after) == sorted(before)
    for key in before:
        assert after[key] == before[key], key
    assert "4 published editions" in report.publisher.summary()
    # generation 0 is dropped: none of its keys is left
    assert not any(_publisher_view(stack.redis, rk).values())
