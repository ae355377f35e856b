"""What every collector run shares, whatever its source: the refusal, the report, the broker.

Before a run, `check_topics` refuses missing topics (an unreachable broker only delays
delivery); after it, `drain` waits, bounded, for the broker to confirm what was spooled.
`CollectorReport` says what the run did; `CollectorUnavailable` is raised, before anything is
collected or while reading what to collect, by a source that cannot run.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from services.collector.producer import SpooledProducer
from services.collector.progress import Progress
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.kafka import BrokerUnreachable, verify_topics
from services.common.localstack import port_is_open
from services.common.settings import Settings


class CollectorUnavailable(RuntimeError):
    """A source that cannot run with the current settings (the message says what to set)."""


@dataclass(slots=True)
class CollectorReport:
    """What a run did; `pending` records were still spooled when it ended."""

    source: str
    spooled: int = 0
    delivered: int = 0
    pending: int = 0
    skipped_rows: list[str] = field(default_factory=list)
    stopped: bool = False  # a stop signal ended the run


def check_topics(settings: Settings, log: logging.Logger) -> None:
    """Refuse to start on missing topics; an unreachable broker only delays delivery."""
    servers = [server.rpartition(":") for server in settings.kafka_servers]
    if not any(port_is_open(host or "127.0.0.1", int(port or 9092)) for host, _, port in servers):
        log.warning(
            "broker %s unreachable: collecting anyway, snapshots wait in the spool %s",
            settings.kafka_bootstrap,
            settings.spool_dir,
        )
        return
    try:
        verify_topics(settings, [settings.topic(TOPIC_METRICS), settings.topic(TOPIC_ACCOUNTS)])
    except BrokerUnreachable as exc:
        log.warning("%s; collecting anyway, snapshots wait in the spool", exc)


def drain(
    settings: Settings,
    producer: SpooledProducer,
    stop: threading.Event,
    progress: Progress,
    log: logging.Logger,
) -> None:
    """Wait (bounded) until the broker confirmed everything spooled."""
    pending = producer.spool.records
    if not pending:
        return
    progress.begin("delivering to the broker", total=pending)
    log.info("waiting for the broker to confirm %d record(s)", pending)
    delivered_before = producer.delivered
    waited = 0.0
    while waited < settings.collector_drain_timeout_seconds and not stop.is_set():
        if producer.wait_drained(0.25) or producer.fatal is not None:
            break
        waited += 0.25
        progress.update(producer.delivered - delivered_before)
    progress.update(producer.delivered - delivered_before)
    if producer.fatal is not None:
        raise producer.fatal
