"""The `graph` source: observe the accounts of `obs.accounts.v1` through the Graph API.

Follows `obs.accounts.v1` for the handles to observe, derives each account's last attempt
from `obs.metrics.v1` and the spool (services/collector/recent_attempts.py), then runs the
`GraphCollector` under the tokens' rate budget. The schedule is never saved: a restart
against the same log goes on where it stopped, one against a new broker observes every
account at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

from services.collector.accounts_follower import AccountsFollower
from services.collector.budget import BudgetPool, NoUsableToken
from services.collector.delivery import CollectorUnavailable
from services.collector.graph import GraphClient, GraphPolicy
from services.collector.graph_source import GraphCollector
from services.collector.producer import SpooledProducer, metrics_key
from services.collector.progress import Progress
from services.collector.recent_attempts import RecentAttempts, read_recent_attempts
from services.collector.scheduler import Schedule
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.settings import Settings

# Where earlier versions saved the schedule. It outlived the in-memory broker of the local
# stack, so a second `observatoire run` took every account as observed and collected nothing
# for a cadence; a file left from them is removed at start.
OBSOLETE_SCHEDULE_FILES = ("graph-schedule.json", "graph-schedule.tmp")


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
            remove_obsolete_schedule(producer.spool.directory, log)
            progress.begin("reading what obs.metrics.v1 says was observed recently")
            recent = await read_recent_attempts(
                settings,
                producer.spool,
                now=time.time(),
                cadence_seconds=settings.collector_cadence_hours * 3600,
            )
            log_recent(recent, log)
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
                recent=recent.attempts,
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


def remove_obsolete_schedule(directory: Path, log: logging.Logger) -> None:
    """Delete a schedule file left by an earlier version (the log is the schedule now)."""
    for name in OBSOLETE_SCHEDULE_FILES:
        path = directory / name
        if path.exists():
            path.unlink()
            log.info(
                "graph: removed %s: the schedule is derived from %s at start",
                path,
                TOPIC_METRICS,
            )


def log_recent(recent: RecentAttempts, log: logging.Logger) -> None:
    """Say what the start read to find the accounts observed recently."""
    log.info(
        "graph: read %d record(s) of %s (from %s) and %d snapshot(s) waiting in the spool "
        "in %.1f s: last attempts of %d account(s)",
        recent.log_records,
        TOPIC_METRICS,
        recent.read_from,
        recent.spooled,
        recent.seconds,
        len(recent.attempts),
    )
