"""Follow `obs.accounts.v1` at run time: which handle each territory uses, as it changes.

A background thread reads the topic from the beginning (it is compacted: the latest record
of a territory wins, in log order) and keeps reading. `AccountsView` is the pure part: apply
a record, list the handles to observe. Invalid records are skipped and counted; the scorer,
which owns the topic's dead-letter queue, reports them there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from services.common.contracts import TOPIC_ACCOUNTS
from services.common.events import AccountRecord
from services.common.kafka.clients import make_consumer
from services.common.settings import Settings
from services.common.validation import Rejection, validate_account

log = logging.getLogger("collector.accounts")


@dataclass(frozen=True, slots=True)
class AccountMapping:
    """A territory's current account."""

    handle: str | None
    simulated: bool


class AccountsView:
    """Territory id -> its current account, from `obs.accounts.v1` records in log order."""

    def __init__(self) -> None:
        self._by_territory: dict[str, AccountMapping] = {}
        self.version = 0

    def apply(self, record: AccountRecord) -> bool:
        """Take a record into account; True when the mapping changed."""
        new = AccountMapping(record.handle, record.simulated)
        if self._by_territory.get(record.id) == new:
            return False
        self._by_territory[record.id] = new
        self.version += 1
        return True

    def handles(self, *, include_simulated: bool = False) -> dict[str, list[str]]:
        """Handle -> the territories using it (no handle, no entry), sorted."""
        out: dict[str, list[str]] = {}
        for territory, mapping in sorted(self._by_territory.items()):
            if mapping.handle is None or (mapping.simulated and not include_simulated):
                continue
            out.setdefault(mapping.handle, []).append(territory)
        return out

    def __len__(self) -> int:
        return len(self._by_territory)


class AccountsFollower:
    """Reads `obs.accounts.v1` in a thread; `handles()` is the mapping as of now."""

    def __init__(
        self,
        settings: Settings,
        *,
        include_simulated: bool = False,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.include_simulated = include_simulated
        self.on_change = on_change
        self.ready = threading.Event()  # set once the records present at start were read
        self.rejected = 0
        self._view = AccountsView()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="accounts-follower", daemon=True)

    def start(self) -> AccountsFollower:
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def version(self) -> int:
        return self._view.version

    def handles(self) -> dict[str, list[str]]:
        """Handle -> territories, for every account to observe."""
        with self._lock:
            return self._view.handles(include_simulated=self.include_simulated)

    def _run(self) -> None:
        topic = self.settings.topic(TOPIC_ACCOUNTS)
        failing = False
        while not self._stop.is_set():
            consumer: KafkaConsumer | None = None
            try:
                consumer = make_consumer(self.settings, bootstrap_timeout_ms=3000)
                partitions = consumer.partitions_for_topic(topic) or set()
                if not partitions:
                    raise KafkaError(f"topic {topic} has no partitions (yet)")
                tps = [TopicPartition(topic, p) for p in sorted(partitions)]
                consumer.assign(tps)
                consumer.seek_to_beginning(*tps)
                if failing:
                    log.info("accounts: reading %s again", topic)
                    failing = False
                self._follow(consumer, tps)
            except Exception as exc:  # broker away: try again, the mapping read so far stays
                if not failing:
                    log.warning("accounts: cannot read %s (%s); retrying", topic, exc)
                    failing = True
                self._stop.wait(1.0)
            finally:
                if consumer is not None:
                    consumer.close()

    def _follow(self, consumer: KafkaConsumer, tps: list[TopicPartition]) -> None:
        ends = consumer.end_offsets(tps)
        while not self._stop.is_set():
            batch = consumer.poll(timeout_ms=300)
            changed = False
            for records in batch.values():
                for record in records:
                    result = validate_account(record.value, record.timestamp)
                    if isinstance(result, Rejection):
                        self.rejected += 1
                        log.warning(
                            "accounts: skipping record at offset %d: %s (%s)",
                            record.offset,
                            result.reason,
                            result.detail,
                        )
                        continue
                    with self._lock:
                        changed |= self._view.apply(result)
            if not self.ready.is_set() and all(consumer.position(tp) >= ends[tp] for tp in tps):
                log.info("accounts: %d territories mapped from %s", len(self._view), tps[0].topic)
                self.ready.set()
                changed = True
            if changed and self.ready.is_set() and self.on_change is not None:
                self.on_change()
