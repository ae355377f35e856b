"""Produce events with confirmed delivery, refusing any event from the future.

`EventProducer` sends and waits (replay, tools). `SpooledProducer` is the collector's: every
record goes through the on-disk spool first, so a broker outage or a restart loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError

from services.collector import metrics as m
from services.collector.spool import Spool, SpoolEntry
from services.common.clock import parse_timestamp, to_epoch, utcnow
from services.common.contracts import FUTURE_TOLERANCE_SECONDS, TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.kafka import BrokerUnreachable, TopicsNotReady, make_producer, verify_topics
from services.common.kafka.compat import force_close_producer
from services.common.localstack import port_is_open
from services.common.settings import Settings

log = logging.getLogger("producer")
FUTURE = timedelta(seconds=FUTURE_TOLERANCE_SECONDS)


class FutureEventError(ValueError):
    """An event whose time is more than 5 minutes ahead of the producer's clock."""


class EventProducer:
    """A kafka-python producer (acks=all, idempotent) that waits for every delivery."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        self._producer = make_producer(settings)

    def send(
        self,
        topic: str,
        events: Iterable[dict],
        *,
        key: Callable[[dict], str],
        time_field: str,
    ) -> int:
        """Send events to a contract topic, in order; returns how many were confirmed."""
        limit = self.clock() + FUTURE
        futures = []
        for event in events:
            if parse_timestamp(event[time_field]) > limit:
                raise FutureEventError(
                    f"refusing event {event['event_id']}: {time_field} {event[time_field]} is "
                    "more than 5 minutes ahead of this clock"
                )
            futures.append(
                self._producer.send(
                    self.settings.topic(topic), key=key(event).encode(), value=orjson.dumps(event)
                )
            )
        self._producer.flush()
        for future in futures:
            future.get(timeout=60)  # raises on a failed delivery: nothing counts as sent
        return len(futures)

    def close(self) -> None:
        """Flush and close the underlying producer."""
        self._producer.close(timeout=5)


def metrics_key(event: dict) -> str:
    """`platform:handle`, the key of `obs.metrics.v1`."""
    return f"{event['platform']}:{event['handle']}"


def territory_key(event: dict) -> str:
    """The territory id, the key of `obs.accounts.v1`."""
    return str(event["id"])


# Outage-friendly client settings: fail a delivery within seconds rather than minutes (the
# spool keeps the record and the sender tries again), reconnect quickly when the broker is back.
SENDER_OVERRIDES: dict[str, Any] = {
    "bootstrap_timeout_ms": 3000,
    "max_block_ms": 5000,
    "request_timeout_ms": 10_000,
    "delivery_timeout_ms": 30_000,
    "reconnect_backoff_max_ms": 1000,
}
SEND_BATCH = 500
_BACKOFF_INITIAL = 0.2
_BACKOFF_MAX = 2.0


class SpooledProducer:
    """Spool first, send in the background, confirm, then forget (services/collector/spool.py).

    `submit` refuses events from the future and returns once the records are durably
    spooled; a sender thread delivers them in spool order with kafka-python (acks=all,
    idempotent where the broker grants producer ids) and commits each batch only after every
    record of it was acknowledged. A snapshot counts as produced (metrics) only then.
    """

    def __init__(
        self,
        settings: Settings,
        spool: Spool,
        *,
        source: str,
        clock: Callable[[], datetime] = utcnow,
        overrides: dict[str, Any] | None = None,
        on_delivered: Callable[[int], None] | None = None,
        on_fatal: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.spool = spool
        self.source = source
        self.clock = clock
        self.overrides = SENDER_OVERRIDES | (overrides or {})
        self.on_delivered = on_delivered
        self.on_fatal = on_fatal
        self.delivered = 0
        self.fatal: Exception | None = None  # topics not as contracted: the collector must stop
        self._closing = threading.Event()  # no new delivery attempt; acknowledgements awaited
        self._stop = threading.Event()  # stop waiting for acknowledgements too
        self._producer: KafkaProducer | None = None
        self._topics_verified = False
        self._available: bool | None = None
        self._newest_observed = 0
        self._thread = threading.Thread(target=self._run, name="collector-sender", daemon=True)

    def start(self) -> SpooledProducer:
        self._thread.start()
        return self

    # --- the collector's side --------------------------------------------------------------
    def submit(
        self,
        topic: str,
        events: Iterable[dict],
        *,
        key: Callable[[dict], str],
        time_field: str,
        stop: threading.Event | None = None,
    ) -> int:
        """Spool events for a contract topic, in order; returns how many were spooled.

        Raises FutureEventError (nothing spooled) if any event is more than 5 minutes ahead
        of this clock, SpoolInterrupted if `stop` is set while the spool is full.
        """
        limit = self.clock() + FUTURE
        records = []
        for event in events:
            if parse_timestamp(event[time_field]) > limit:
                raise FutureEventError(
                    f"refusing event {event['event_id']}: {time_field} {event[time_field]} is "
                    "more than 5 minutes ahead of this clock"
                )
            records.append((topic, key(event), event))
        return self.spool.append(records, stop)

    def wait_drained(self, timeout: float | None) -> bool:
        """Wait until every spooled record is confirmed (False on timeout or a fatal error)."""
        self.spool.wait_until(lambda s: s.records == 0 or self.fatal is not None, timeout)
        return self.spool.records == 0

    def close(self, timeout: float = 3.0, grace: float = 1.0) -> None:
        """Stop sending (what is not confirmed stays spooled for the next run).

        Deliveries in flight get `grace` seconds to be acknowledged: a record the broker
        wrote but whose acknowledgement was abandoned would be sent again by the next run.
        """
        self._closing.set()
        self._thread.join(grace)
        self._stop.set()
        self._thread.join(max(0.0, timeout - grace) / 2)
        self._discard_producer(max(0.0, timeout - grace) / 2)
        if self.spool.records:
            log.info(
                "collector: %d record(s) not confirmed yet stay in the spool %s",
                self.spool.records,
                self.spool.directory,
            )

    # --- the sender thread -----------------------------------------------------------------
    def _run(self) -> None:
        while not self._closing.is_set():
            if self.spool.records == 0:
                self.spool.wait_until(lambda s: s.records > 0 or self._closing.is_set(), 0.5)
                continue
            batch = self.spool.peek(SEND_BATCH)
            if not self._deliver_all(batch.entries):
                return
            self.spool.commit(batch)
            self._count(batch.entries)

    def _deliver_all(self, entries: list[SpoolEntry]) -> bool:
        """Send until every entry is acknowledged; False when stopped first."""
        pending = entries
        delay = _BACKOFF_INITIAL
        while pending:
            if self._closing.is_set():
                return False  # no new attempt once closing
            producer = self._ensure_producer()
            failed = pending if producer is None else self._send(producer, pending)
            if failed and producer is not None:
                self._discard_producer(0)  # a fresh producer id after an outage: no stale state
            if failed and not self._stop.is_set():
                self._closing.wait(delay)
                delay = min(_BACKOFF_MAX, delay * 2)
            pending = failed
        self._set_available(True, None)
        return True

    def _send(self, producer: KafkaProducer, entries: list[SpoolEntry]) -> list[SpoolEntry]:
        """Send entries, wait for every acknowledgement; returns those not acknowledged."""
        futures = []
        failed: list[SpoolEntry] = []
        error: Exception | None = None
        for index, entry in enumerate(entries):
            try:
                future = producer.send(
                    self.settings.topic(entry.topic),
                    key=entry.key.encode(),
                    value=orjson.dumps(entry.value),
                )
            except Exception as exc:  # KafkaTimeoutError (no metadata in max_block_ms), closed…
                failed, error = entries[index:], exc
                break
            futures.append((entry, future))
        deadline = time.monotonic() + self.overrides["delivery_timeout_ms"] / 1000 + 5
        acknowledged: list[SpoolEntry] = []
        stopped = False
        for entry, future in futures:
            # Poll rather than block in get(): a stop must not wait for a delivery timeout.
            while not future.is_done and not self._stop.is_set():
                if time.monotonic() > deadline:
                    break
                self._stop.wait(0.005)
            if not future.is_done:
                stopped = self._stop.is_set()
                error = error or TimeoutError("no acknowledgement within the delivery timeout")
                continue
            try:
                future.get(timeout=0)
                acknowledged.append(entry)
            except Exception as exc:  # any failed delivery: keep it spooled and retry
                error = exc
        if error is not None:
            done = {id(entry) for entry in acknowledged}
            failed = [entry for entry in entries if id(entry) not in done]
            if not stopped:
                self._set_available(False, error)
        return failed

    def _ensure_producer(self) -> KafkaProducer | None:
        if self._producer is not None:
            return self._producer
        try:
            if not any(port_is_open(*_host_port(s)) for s in self.settings.kafka_servers):
                raise ConnectionRefusedError(f"nothing listens on {self.settings.kafka_bootstrap}")
            if not self._topics_verified:
                verify_topics(
                    self.settings,
                    [self.settings.topic(TOPIC_METRICS), self.settings.topic(TOPIC_ACCOUNTS)],
                )
                self._topics_verified = True
            self._producer = make_producer(self.settings, **self.overrides)
        except BrokerUnreachable as exc:
            self._set_available(False, exc)
        except TopicsNotReady as exc:
            log.error("collector: %s", exc)
            self.fatal = exc
            self._closing.set()
            self._stop.set()
            if self.on_fatal is not None:
                self.on_fatal()
        except (KafkaError, OSError) as exc:
            self._set_available(False, exc)
        return self._producer

    def _discard_producer(self, timeout: float) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=timeout)
        except Exception:
            # kafka-python 3.0 flushes before closing and raises when the flush times out,
            # leaving its I/O thread running: force it closed. The records stay spooled.
            force_close_producer(producer)

    def _set_available(self, available: bool, error: Exception | None) -> None:
        m.BROKER_AVAILABLE.set(1 if available else 0)
        if available == self._available:
            return
        self._available = available
        if available:
            log.info(
                "collector: delivering to the broker %s (%d record(s) spooled)",
                self.settings.kafka_bootstrap,
                self.spool.records,
            )
        else:
            log.warning(
                "collector: cannot deliver to the broker %s (%s: %s); %d record(s) wait in the "
                "spool %s and will be sent when it is back",
                self.settings.kafka_bootstrap,
                type(error).__name__,
                str(error)[:200],
                self.spool.records,
                self.spool.directory,
            )

    def _count(self, entries: list[SpoolEntry]) -> None:
        newest = None
        for entry in entries:
            if entry.topic == TOPIC_METRICS:
                value = entry.value
                m.SNAPSHOTS_PRODUCED.labels(
                    value.get("source", "?"), value.get("status", "?")
                ).inc()
                observed = value.get("observed_at")
                if isinstance(observed, str) and (newest is None or observed > newest):
                    newest = observed
            elif entry.topic == TOPIC_ACCOUNTS:
                m.ACCOUNTS_REGISTERED.labels(self.source).inc()
        if newest is not None and to_epoch(newest) > self._newest_observed:
            self._newest_observed = to_epoch(newest)
            m.LAST_OBSERVED.set(self._newest_observed)
        self.delivered += len(entries)
        if self.on_delivered is not None:
            self.on_delivered(len(entries))


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host or "127.0.0.1", int(port or 9092)
