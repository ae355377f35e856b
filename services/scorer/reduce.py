"""Reduce a whole `obs.metrics.v1` log to what a rebuild writes, validating only what can win.

A rebuild keeps, per account and Paris day, the valid `ok` snapshots of the day's last second
(the daily history's point), per account and edition month the newest (and so per account),
and the K accounts with the newest `observed_at` of any valid snapshot (the watermark's,
services/common/watermark.py). Full validation (schema, event id) costs five to seven times
parsing a record, and a record is often superseded by a later one of its key. So each record
is first read for its account, `observed_at`, `event_id` and status only, and held; it is
validated when it might be the answer:

- held records of one key are validated newest first until one is valid; the older ones are
  then dropped unexamined, since they cannot win against a valid newer one (for a day: of an
  older second);
- a later record older than that valid one is dropped at once;
- an `ok` record whose day's winners the live scorer recorded (`covered`: services/scorer/
  day_summaries.py; their summaries are put in the plan first, each counted for the
  watermark) is not validated at all: those winners stand for it. Its day's point is among
  them, its account's newest valid time of the day is theirs, and its month's and account's
  newest are derived from the days at the end (a month's newest is its last day's last
  second's: `BatchPlan.keep_newest_of_days`);
- a record that is not `ok` only counts for the watermark: dropped at once when not newer
  than the K-th newest account time of the valid records seen (it cannot be among the K
  newest), otherwise held and validated the same way, newest first, until K accounts are
  valid above the next one. While fewer than K accounts are valid, every such record is
  validated.

The result is exactly the eager one (validate everything, then reduce): every record is
either validated or older than a valid record of its own key (or, not `ok`, than the K-th
newest valid account time, which only grows); property tests compare both on logs with
invalid records, with and without recorded day summaries (tests/unit/test_reduce.py,
test_day_summaries.py). A record whose first reading fails is validated at once (and
rejected). Holding is bounded per key and in bytes, so memory stays bounded on any log: held
records are copied into one arena (a bytearray emptied when everything is settled) rather
than kept as the consumer's objects scattered over the heap (a full-France worker peaks at
~730 MB, 512 MB of it the arena).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from services.common.history import day_of_epoch
from services.common.validation import MetricsPeek, Rejection, peek_metrics, validate_metrics
from services.common.view.entries import entry_version, version_epoch
from services.scorer.plan import BatchPlan, plan_batch

HELD_PER_KEY: Final = 16
HELD_BYTES: Final = 512 * 1024 * 1024

Key = tuple[str, str, int]  # (platform, handle, Paris day)
Held = tuple[bytes, int, int, int | None]  # (version, start, end in the arena, timestamp)


class LogReducer:
    """Feed records in any order with `add`; `finish` returns the plan the rebuild applies."""

    def __init__(
        self,
        reject: Callable[[Rejection], None],
        *,
        held_per_key: int = HELD_PER_KEY,
        held_bytes: int = HELD_BYTES,
    ) -> None:
        self.plan = BatchPlan()
        self.read = 0
        self.validated = 0
        self._reject = reject
        self._per_key = held_per_key
        self._budget = held_bytes
        self._arena = bytearray()
        self._held = 0
        self._keys: dict[Key, list[Held]] = {}
        self._others: list[Held] = []  # records not `ok`: they count for the watermark only

    @property
    def skipped(self) -> int:
        """Records dropped unexamined so far (older than a valid record that counts)."""
        return self.read - self.validated - self._held

    def add(
        self,
        raw: bytes | None,
        timestamp_ms: int | None,
        peek: MetricsPeek | None = None,
        *,
        covered: bool = False,
    ) -> None:
        """One record of the log (its value and timestamp), and its `peek_metrics` reading
        when the caller already made it (a rebuild reads each record once for every fold).

        `covered`: the record's day's winners are already in the plan (the live scorer
        recorded them: services/scorer/day_summaries.py); an `ok` one is then never
        validated (the module docstring says why), one of another status still counts for
        the watermark."""
        self.read += 1
        if peek is None and raw is not None:
            peek = peek_metrics(raw)
        if raw is None or peek is None:
            self._validate(raw, timestamp_ms)
            return
        key: Key | None = None
        if peek.status == "ok":
            if covered:
                return
            key = (peek.platform, peek.handle, day_of_epoch(peek.epoch)[0])
        version = entry_version(peek.epoch, peek.event_id)
        if self._superseded(key, version):
            return
        held = self._others if key is None else self._keys.setdefault(key, [])
        start = len(self._arena)
        self._arena += raw
        held.append((version, start, len(self._arena), timestamp_ms))
        self._held += 1
        if len(held) > self._per_key:
            self._settle(key, held)
        if len(self._arena) > self._budget:
            self._settle_all()

    def finish(self) -> BatchPlan:
        """Validate what may still win; the plan of the whole log."""
        self._settle_all()
        self.plan.keep_newest_of_days()
        return self.plan

    # --- internals ---------------------------------------------------------------------
    def _superseded(self, key: Key | None, version: bytes) -> bool:
        """Whether a record of this version can no longer change the plan: an `ok` one (key:
        its account and Paris day) when the plan holds a valid one of a later second that day,
        another when the plan's K-th newest account time is not older (K accounts already
        newer or as new: the watermark cannot depend on it). A worker that reads a share of
        the partitions judges against its own K-th newest, never above the whole log's."""
        if key is None:
            kth = self.plan.newest.watermark
            return kth is not None and version_epoch(version) <= kth
        winners = self.plan.daily.get(key)
        # The day's history point is among the snapshots of its last second: only an older
        # second is superseded (the month's and the account's winners are among those too).
        return winners is not None and version_epoch(version) < version_epoch(
            self.plan.version(winners[0])
        )

    def _settle_all(self) -> None:
        for key, held in self._keys.items():
            if held:
                self._settle(key, held)
        self._settle(None, self._others)
        self._arena = bytearray()  # nothing is held any more
        self.plan.forget_replaced()

    def _settle(self, key: Key | None, held: list[Held]) -> None:
        """Validate held records newest first until the plan holds one at least as new (a
        valid one was found); drop the rest unexamined."""
        ordered = sorted(held, key=lambda item: item[0], reverse=True)
        held.clear()
        self._held -= len(ordered)
        for version, start, end, timestamp_ms in ordered:
            if self._superseded(key, version):
                break  # and so are the older ones after it
            self._validate(bytes(self._arena[start:end]), timestamp_ms)

    def _validate(self, raw: bytes | None, timestamp_ms: int | None) -> None:
        """Validate one record: a rejection is reported, a valid snapshot reduced into the
        plan (which keeps the newest per account and month, and the watermark)."""
        self.validated += 1
        result = validate_metrics(raw, timestamp_ms)
        if isinstance(result, Rejection):
            self._reject(result)
        else:
            plan_batch([result], into=self.plan)
