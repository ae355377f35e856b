"""Run a collector source and produce its snapshots to `obs.metrics.v1`."""

from __future__ import annotations

import signal
import threading
from datetime import datetime, timedelta

from prometheus_client import start_http_server

from services.collector import metrics as m
from services.collector.producer import EventProducer, metrics_key, territory_key
from services.collector.simulator import SimulatedWorld
from services.common.accounts import load_accounts
from services.common.clock import parse_timestamp, utcnow
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.kafka import verify_topics
from services.common.lifecycle import arm_shutdown_watchdog, configure_logging, log_stopped
from services.common.settings import Settings
from services.common.territories import load_registry

SERVICE = "collector"
DEFAULT_HISTORY = timedelta(days=75)


class CollectorUnavailable(RuntimeError):
    """A source that cannot run with the current settings."""


def run_collector(settings: Settings, source: str, *, once: bool = False) -> None:
    """Run the collector in the foreground until SIGTERM/SIGINT (or one round with `once`)."""
    log = configure_logging(SERVICE, settings.log_level)
    if source != "sim":
        raise CollectorUnavailable(
            f"source {source!r} is not available in this version: use --source sim"
        )
    verify_topics(settings, [settings.topic(TOPIC_METRICS), settings.topic(TOPIC_ACCOUNTS)])
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        arm_shutdown_watchdog(SERVICE, settings.shutdown_watchdog_seconds, log)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    now = utcnow()
    start = parse_timestamp(settings.sim_start) if settings.sim_start else now - DEFAULT_HISTORY
    real = {territory_id for territory_id, _ in load_accounts().accounts}
    world = SimulatedWorld(load_registry(), seed=settings.sim_seed, real_handles=real, epoch=start)
    if settings.collector_metrics_port:
        start_http_server(settings.collector_metrics_port, addr=settings.metrics_host)
    producer = EventProducer(settings)
    try:
        registered = producer.send(
            TOPIC_ACCOUNTS, world.account_records(), key=territory_key, time_field="changed_at"
        )
        m.ACCOUNTS_REGISTERED.labels("sim").inc(registered)
        log.info(
            "simulator: %d simulated accounts registered (seed %d), replaying from %s",
            registered,
            settings.sim_seed,
            start.isoformat(),
        )
        step = timedelta(hours=settings.sim_step_hours)
        moment = start
        while not stop.is_set():
            moment = min(moment + step, utcnow())
            sent = producer.send(
                TOPIC_METRICS, world.snapshots(moment), key=metrics_key, time_field="observed_at"
            )
            m.SNAPSHOTS_PRODUCED.labels("sim", "ok").inc(sent)
            m.LAST_OBSERVED.set(moment.timestamp())
            log.info("simulator: %d snapshots up to %s", sent, _fmt(moment))
            if once:
                break
            stop.wait(settings.sim_interval_seconds)
    finally:
        producer.close()
        log_stopped(SERVICE, log)


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")
