"""The `graph` source: observe the accounts of `obs.accounts.v1` through the Graph API.

Follows `obs.accounts.v1` for the handles to observe, then runs the `GraphCollector` under
the tokens' rate budget; its schedule is kept beside the spool (`SCHEDULE_STATE`) so a
restart keeps every account's schedule.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from services.collector.accounts_follower import AccountsFollower
from services.collector.budget import BudgetPool, NoUsableToken
from services.collector.delivery import CollectorUnavailable
from services.collector.graph import GraphClient, GraphPolicy
from services.collector.graph_source import GraphCollector
from services.collector.producer import SpooledProducer, metrics_key
from services.collector.progress import Progress
from services.collector.scheduler import Schedule
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.settings import Settings

SCHEDULE_STATE = "graph-schedule.json"


def run_graph(
    settings: Settings,
    producer: SpooledProducer,
    stop: threading.Event,
    once: bool,
    progress: Progress,
    log: logging.Logger,
) -> int:
    """Observe the mapped accounts (one round with `once`); return the snapshots spooled."""
    follower = AccountsFollower(settings).start()
    try:
        deadline = settings.collector_drain_timeout_seconds if once else None
        progress.begin("reading obs.accounts.v1")
        waited = 0.0
        while not follower.ready.wait(0.2) and not stop.is_set():
            waited += 0.2
            if deadline is not None and waited >= deadline:
                raise CollectorUnavailable(
                    f"could not read {settings.topic(TOPIC_ACCOUNTS)} within {deadline:.0f} s "
                    f"(broker {settings.kafka_bootstrap}): no account to observe"
                )
        if stop.is_set():
            return 0
        tokens = settings.graph_token_list
        log.info(
            "graph: %d token(s), %d calls per hour each, cadence %g h, %d account(s) mapped",
            len(tokens),
            settings.graph_calls_per_hour,
            settings.collector_cadence_hours,
            len(follower.handles()),
        )
        spooled = 0

        def submit(events: list[dict]) -> int:
            nonlocal spooled
            count = producer.submit(
                TOPIC_METRICS, events, key=metrics_key, time_field="observed_at", stop=stop
            )
            spooled += count
            return count

        async def collect() -> None:
            pool = BudgetPool(
                tokens,
                calls_per_window=settings.graph_calls_per_hour,
                window_seconds=3600.0,
                throttle_pause=settings.graph_throttle_pause_seconds,
            )
            assert settings.graph_ig_user_id is not None
            client = GraphClient(
                base_url=settings.graph_base_url,
                ig_user_id=settings.graph_ig_user_id,
                pool=pool,
                policy=GraphPolicy(
                    timeout=settings.graph_timeout_seconds,
                    max_attempts=settings.graph_max_attempts,
                    page_size=settings.graph_page_size,
                ),
            )
            collector = GraphCollector(
                client,
                Schedule(
                    settings.collector_cadence_hours * 3600,
                    settings.collector_error_retry_hours * 3600,
                ),
                handles=lambda: follower.handles().keys(),
                version=lambda: follower.version,
                submit=submit,
                concurrency=settings.collector_concurrency,
                state_path=producer.spool.directory / SCHEDULE_STATE,
                progress=progress,
            )
            try:
                report = await collector.run(stop, once=once)
            finally:
                await client.aclose()
            log.info(
                "graph: %d call(s); observed %s",
                report.calls,
                ", ".join(f"{n} {status}" for status, n in sorted(report.observed.items()))
                or "nothing",
            )
            if report.no_usable_token is not None:
                raise NoUsableToken(report.no_usable_token)

        try:
            asyncio.run(collect())
        except NoUsableToken as exc:
            raise CollectorUnavailable(str(exc)) from exc
        return spooled
    finally:
        follower.stop()
