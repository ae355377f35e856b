"""A publisher that starts while a rebuild's hold is pending writes nothing until it has
answered the hold and resumed: the rebuild may have looked for a live publisher before this
one took the lease, read the topics, and would not see what it produced meanwhile (found by
the Redis flush drill: the restarted publisher published a category's missed change on the old
generation, the rebuild restored the seq before it, and the next event repeated that seq).

The scorer's side is played as in test_publisher_streams.py (`FakeScorer`), the rebuild's by
the generation pointer (`begin_next`, `request_hold`, `abandon`), on the real broker and Redis.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis
import redis.asyncio

from services.common.contracts import TOPIC_RANK_CHANGES
from services.common.kafka import create_topics
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view import generations as gen
from tests.integration.test_publisher_streams import (
    FakeScorer,
    Stack,
    publisher_process,
    rank_change_events,
    wait_published,
)
from tests.kafka_read import read_all
from tests.services import service_env, wait_for

CATEGORY = "regions"


def _pointer(settings: Settings, *steps: str) -> None:
    """Move the generation pointer as a rebuild of generation 1 does."""

    async def run() -> None:
        client = redis.asyncio.Redis.from_url(settings.redis_url)
        try:
            for step in steps:
                if step == "begin":
                    assert await gen.begin_next(client, 1)
                elif step == "hold":
                    await gen.request_hold(client, 1)
                elif step == "abandon":
                    await gen.abandon(client, 1)
        finally:
            await client.aclose()

    asyncio.run(run())


def test_a_publisher_starting_during_a_rebuild_produces_nothing_until_it_resumes(
    settings: Settings, tmp_path: Path
):
    assert all(report.ok for report in create_topics(settings))
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    env = service_env(settings, OBS_PUBLISHER_METRICS_PORT="0")
    stack = Stack(
        settings, env, publisher_process(env, tmp_path / "publisher.log"), client, tmp_path
    )
    scorer = FakeScorer(stack, CATEGORY)
    try:
        # The standings moved while no publisher ran; then a rebuild asks for a hold and,
        # nobody holding the lease, goes on reading the topics.
        ids = [t.id for t in load_registry().by_category(CATEGORY)][:5]
        scorer.apply({tid: 50.0 + n for n, tid in enumerate(ids)})
        _pointer(settings, "begin", "hold")

        stack.publisher.start()
        wait_for(
            lambda: "holding while a rebuild builds generation 1" in stack.publisher.log(),
            timeout=60,
            what=f"the publisher to answer the hold:\n{stack.publisher.log()[-3000:]}",
        )
        # Nothing produced, not even the change missed while it was stopped.
        assert read_all(settings, TOPIC_RANK_CHANGES) == []
        assert "a rebuild is under way: holding until it is done" in stack.publisher.log()

        # The rebuild gives up: the publisher resumes on its generation and publishes then.
        _pointer(settings, "abandon")
        assert wait_published(stack, CATEGORY) == 1
        events = rank_change_events(settings, CATEGORY)
        assert [e["seq"] for e in events] == [1]
        assert events[0]["top"] == list(reversed(ids))
    finally:
        scorer.close()
        stack.publisher.terminate()
        client.flushdb()
        client.close()
