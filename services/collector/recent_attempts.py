"""Where the Graph collector's schedule comes from at start: the snapshots themselves.

The schedule belongs to the log it describes. Each account's last attempt is the newest
`observed_at` (and that snapshot's status: an `error` is retried sooner) among the snapshots
of `obs.metrics.v1` and those still waiting in the collector's spool (produced by an earlier
run, not confirmed yet: they will be delivered, so they count as observed). A collector
started against a new, empty broker therefore finds nothing and observes every account at
once; one restarted against the same log goes on where it stopped. Nothing else is kept.

Cost: `obs.metrics.v1` is kept forever, but only the snapshots observed within the cadence can
make an account not due. Consumers refuse a snapshot observed more than 5 minutes after its
record timestamp (the `future` rule), so every snapshot that counts is stamped at or after
`now - cadence - 5 min`: each partition is read from the first record stamped then
(`TopicReader(since_ms=…)`), a cadence of records plus a margin. The local Tansu 0.6.0 broker
cannot answer that (measured: it answers offset 0 for any time, even one after its newest
record; `Profile.offsets_by_time`), so there the topic is read from its beginning; that
broker keeps its log in memory, so the log holds one `observatoire run` at most.
Records are only peeked (`peek_metrics`, a tenth of the cost of validating them): a snapshot
the consumers would dead-letter for its shape still counts as an attempt of its handle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from aiokafka.errors import KafkaError

from services.collector.scheduler import Attempt, last_attempts
from services.collector.spool import Spool, SpoolEntry
from services.common.clock import from_epoch, to_epoch
from services.common.contracts import FUTURE_TOLERANCE_SECONDS, PLATFORM_INSTAGRAM, TOPIC_METRICS
from services.common.kafka.clients import profile
from services.common.kafka.reader import TopicReader
from services.common.settings import Settings
from services.common.validation import peek_metrics

log = logging.getLogger("collector.graph")

# Beyond the `future` rule's 5 minutes: record timestamps are in milliseconds, `observed_at`
# in whole seconds, and a minute costs a few more records only.
READ_MARGIN_SECONDS = FUTURE_TOLERANCE_SECONDS + 60


@dataclass(frozen=True, slots=True)
class RecentAttempts:
    """The last attempt of each handle found at start, and what was read to find them."""

    attempts: dict[str, Attempt]
    log_records: int  # records of obs.metrics.v1 read
    spooled: int  # snapshots waiting in the spool
    seconds: float
    read_from: str  # the record time the log was read from, or "the beginning"


async def read_recent_attempts(
    settings: Settings, spool: Spool, *, now: float, cadence_seconds: float
) -> RecentAttempts:
    """Each handle's last attempt according to the spool and `obs.metrics.v1`."""
    started = time.monotonic()
    # The spool first: a record confirmed while the log is read is then in one or the other.
    spooled = list(spooled_attempts(spool.pending()))
    since_ms = int((now - cadence_seconds - READ_MARGIN_SECONDS) * 1000)
    from_log: list[Attempt] = []
    records = 0
    try:
        async with TopicReader(settings, TOPIC_METRICS, since_ms=since_ms) as reader:
            async for chunk in reader:
                records += len(chunk)
                from_log.extend(logged_attempts((r.value, r.timestamp) for r in chunk))
    except (KafkaError, OSError) as exc:
        # Collecting goes on (the spool keeps what the broker cannot take yet); the price is
        # observing again, once, the accounts observed within the cadence.
        log.warning(
            "graph: cannot read %s (%s: %s): the accounts observed recently will be observed again",
            settings.topic(TOPIC_METRICS),
            type(exc).__name__,
            str(exc)[:200],
        )
        from_log, records = [], 0
    by_time = profile(settings).offsets_by_time
    return RecentAttempts(
        attempts=last_attempts([*from_log, *spooled], now=now),
        log_records=records,
        spooled=len(spooled),
        seconds=time.monotonic() - started,
        read_from=from_epoch(since_ms // 1000) if by_time else "the beginning",
    )


def logged_attempts(records: Iterable[tuple[bytes | None, int]]) -> Iterator[Attempt]:
    """The Instagram attempts of `obs.metrics.v1` records (value, timestamp in ms), except
    those the consumers refuse as from the future (they never counted)."""
    for value, timestamp_ms in records:
        peek = None if value is None else peek_metrics(value)
        if peek is None or peek.platform != PLATFORM_INSTAGRAM:
            continue
        if peek.epoch * 1000 > timestamp_ms + FUTURE_TOLERANCE_SECONDS * 1000:
            continue
        yield Attempt(peek.handle, float(peek.epoch), peek.status)


def spooled_attempts(entries: Iterable[SpoolEntry]) -> Iterator[Attempt]:
    """The Instagram attempts among spooled `obs.metrics.v1` records."""
    for entry in entries:
        value = entry.value
        if entry.topic != TOPIC_METRICS or value.get("platform") != PLATFORM_INSTAGRAM:
            continue
        handle, observed_at, status = (value.get(k) for k in ("handle", "observed_at", "status"))
        if not (isinstance(handle, str) and isinstance(observed_at, str)):
            continue
        try:
            at = to_epoch(observed_at)
        except ValueError:
            continue
        yield Attempt(handle, float(at), str(status))
