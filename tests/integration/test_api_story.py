"""The story the API tests read, written into Redis by the real scorer and publisher code.

Seven départements get accounts (one simulated); May and June 2021 are observed; Ariège's
account disappears (two `not_found`: dead); Paris then Haute-Marne surge in early July;
May and June are published. The scorer's `StandingsUpdater` writes the standings views, the
publisher's `Publisher` (link tracker, rank-change tracker, command executor) writes link
status, rank-change events and the published editions. Only the publisher's transport is
replaced: a `Sender` that records what would have gone to the broker, so these tests need
Redis but no broker.

`tell_story`, `push_rank_change` and `live_api` (the API on a real port, in a thread) are
shared by tests/integration/test_api_*.py, test_sse.py, test_schemathesis.py and
tests/e2e/test_pages_chromium.py.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import uvicorn
from redis.asyncio import Redis

from services.api.app import create_app
from services.api.connections import ApiConfig, ConnectionLimits
from services.api.options import ApiOptions
from services.common.clock import format_timestamp, parse_timestamp
from services.common.commands.sender import Delivered
from services.common.events import (
    AccountRecord,
    Command,
    MetricsSnapshot,
    build_account_record,
    build_command,
    build_metrics_event,
)
from services.common.localstack import free_port
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.keys import ViewKeys
from services.publisher.core import Publisher
from services.scorer.standings import StandingsUpdater
from services.scorer.store import ScorerStore, geo_fingerprint
from tests.signing import COMMAND_KEY, COMMAND_KEYS
from tests.witnesses import with_witnesses

rk = ViewKeys(0)  # the generation a fresh view starts in

# Versions of the account records applied (their offsets in obs.accounts.v1): increasing.
OFFSETS = itertools.count()

ACCOUNTS = {
    "dep-32": "gersledepartement",
    "dep-75": "paris_maville",
    "dep-38": "isere.le.departement",
    "dep-52": "haute_marne",
    "dep-31": "hautegaronne",
    "dep-09": "ariegeledpt",
    "dep-01": "sim.dep.01",
}
SIMULATED = {"dep-01"}
DEAD = "dep-09"
OCCITANIE = {"dep-32", "dep-31", "dep-09"}  # région 76
FOLLOWERS = {
    "2021-05-20T06:00:00Z": {
        "dep-32": 15000,
        "dep-75": 900000,
        "dep-38": 12000,
        "dep-52": 8000,
        "dep-31": 2000,
        "dep-09": 5000,
        "dep-01": 3000,
    },
    "2021-06-28T06:00:00Z": {
        "dep-32": 16000,
        "dep-75": 910000,
        "dep-38": 30000,
        "dep-52": 8500,
        "dep-31": 2500,
        "dep-09": 5200,
        "dep-01": 3100,
    },
}
SURGES = [("2021-07-02T06:00:00Z", "dep-75", 2_000_000), ("2021-07-03T06:00:00Z", "dep-52", 60000)]
# Interactions per post as a share of followers: Gers engages best, as in the seed article.
ENGAGEMENT = {
    "dep-32": 0.05,
    "dep-75": 0.012,
    "dep-38": 0.02,
    "dep-52": 0.03,
    "dep-31": 0.01,
    "dep-09": 0.015,
    "dep-01": 0.01,
}
PUBLISHED = ["2021-05", "2021-06"]
WATERMARK = "2021-07-03T06:00:00Z"


def posts(observed_at: str, interactions: int) -> list[dict]:
    """Twenty posts, one a day, in the 30 days before `observed_at`."""
    moment = parse_timestamp(observed_at)
    return [
        {
            "id": f"{observed_at[:10]}-{i}",
            "published_at": format_timestamp(moment - timedelta(days=i + 1)),
            "likes": max(1, interactions - 10),
            "comments": 10,
            "likes_hidden": False,
        }
        for i in range(20)
    ]


def snapshot(tid: str, observed_at: str, followers: int | None = None, status: str = "ok") -> dict:
    handle = ACCOUNTS[tid]
    if status != "ok" or followers is None:
        return build_metrics_event(
            handle=handle,
            observed_at=observed_at,
            status=status,  # type: ignore[arg-type]
            source="graph",
        )
    return build_metrics_event(
        handle=handle,
        observed_at=observed_at,
        status="ok",
        source="graph",
        followers=followers,
        follows=300,
        media_count=1200,
        recent_posts=posts(observed_at, round(followers * ENGAGEMENT[tid])),
    )


class RecordingSender:
    """The publisher's transport, in memory: what it would have produced, per topic."""

    def __init__(self) -> None:
        self.records: dict[str, list[tuple[bytes, bytes]]] = defaultdict(list)

    async def __call__(self, topic: str, key: bytes, value: bytes) -> Delivered:
        self.records[topic].append((key, value))
        return Delivered(0, len(self.records[topic]) - 1)


@dataclass
class Story:
    """What the story produced, for the tests to compare with."""

    rank_change_seqs: dict[str, int] = field(default_factory=dict)
    sent: RecordingSender = field(default_factory=RecordingSender)
    publisher: Publisher | None = None
    updater: StandingsUpdater | None = None


async def apply(story: Story, events: list[dict]) -> None:
    """One batch through the scorer, then the publisher (links, then the live lists). Each
    batch is corroborated (tests/witnesses.py): time moves to its newest snapshot."""
    assert story.updater is not None and story.publisher is not None
    snapshots = [MetricsSnapshot.model_validate(event) for event in with_witnesses(events)]
    await story.updater.apply_snapshots(snapshots)
    await story.publisher.links.apply_snapshots(snapshots)
    for event in await story.publisher.ranks.refresh_all():
        story.rank_change_seqs[event["category"]] = event["seq"]


async def tell_story(redis_url: str) -> Story:
    """Empty the database, then write the whole story into it."""
    redis = Redis.from_url(redis_url)
    try:
        await redis.flushdb()
        registry = load_registry()
        store = ScorerStore(redis, ViewKeys(0))
        await store.views.ensure_geo(registry, geo_fingerprint(registry))
        story = Story()
        story.updater = StandingsUpdater(store, registry)
        story.publisher = Publisher(
            redis, ViewKeys(0), registry, story.sent, grace_hours=24, command_keys=COMMAND_KEYS
        )
        await story.publisher.load()
        for tid, handle in ACCOUNTS.items():
            record = build_account_record(
                territory_id=tid,
                handle=handle,
                changed_at="2021-05-01T00:00:00Z",
                simulated=tid in SIMULATED,
            )
            await story.updater.apply_account(tid, handle, tid in SIMULATED, version=next(OFFSETS))
            await story.publisher.links.apply_account(AccountRecord.model_validate(record))
        for observed_at, followers in FOLLOWERS.items():
            await apply(
                story,
                [snapshot(tid, observed_at, count) for tid, count in followers.items()],
            )
        await apply(story, [snapshot(DEAD, "2021-06-29T06:00:00Z", status="not_found")])
        await apply(story, [snapshot(DEAD, "2021-06-30T06:00:00Z", status="not_found")])
        moment, tid, count = SURGES[0]
        await apply(story, [snapshot(tid, moment, count)])
        for month in PUBLISHED:
            command = build_command(
                command="publish_edition",
                args={"edition": month},
                requested_by="cli",
                requested_at="2021-07-02T08:00:00Z",
                key=COMMAND_KEY,
            )
            result = await story.publisher.commands.execute(Command.model_validate(command))
            assert result is not None and result["status"] == "done", result
        moment, tid, count = SURGES[1]
        await apply(story, [snapshot(tid, moment, count)])
        return story
    finally:
        await redis.aclose()


async def push_rank_change(redis_url: str, tid: str, followers: int, observed_at: str) -> int:
    """A later snapshot of one territory through the scorer and the publisher; returns the
    category's rank-change seq afterwards (a new event when the list changed)."""
    redis = Redis.from_url(redis_url)
    try:
        registry = load_registry()
        story = Story()
        story.updater = StandingsUpdater(ScorerStore(redis, ViewKeys(0)), registry)
        story.publisher = Publisher(
            redis, ViewKeys(0), registry, story.sent, grace_hours=24, command_keys=COMMAND_KEYS
        )
        await story.publisher.load()
        await apply(story, [snapshot(tid, observed_at, followers)])
        return story.publisher.ranks.state(registry[tid].category).seq
    finally:
        await redis.aclose()


@contextlib.contextmanager
def live_api(settings: Settings, options: ApiOptions | None = None) -> Iterator[str]:
    """The API served by uvicorn on a free port in a thread, with the connection guards of
    `observatoire service api`; yields its base URL."""
    app = create_app(settings, options)
    port = free_port()
    config = ApiConfig(
        app,
        limits=ConnectionLimits.from_settings(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        hub = getattr(app.state, "hub", None)
        if hub is not None:
            hub.request_stop()
        server.should_exit = True
        thread.join(15)


async def test_the_story_leaves_every_view_the_api_reads(redis_server):

    url = f"{redis_server.url.rsplit('/', 1)[0]}/12"
    story = await tell_story(url)
    redis = Redis.from_url(url)
    try:
        assert set(await redis.hkeys(rk.EDITIONS_KEY)) == {m.encode() for m in PUBLISHED}
        assert await redis.hget(rk.link_status_key("departements"), DEAD) == b"dead"
        assert await redis.zcard(rk.rank_key(rk.view_prefix("departements", None))) == 7
        assert story.rank_change_seqs["departements"] == 2
        await redis.flushdb()
    finally:
        await redis.aclose()
