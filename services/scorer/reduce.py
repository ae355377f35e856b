"""Reduce a whole `obs.metrics.v1` log to what a rebuild writes, validating only what can win.

A rebuild keeps, per account and edition month, the newest valid `ok` snapshot, and the newest
`observed_at` of any valid snapshot (the watermark). Full validation (schema, event id) costs
five to seven times parsing a record, and in a log of daily snapshots nearly every record is
superseded by a later one of the same account and month. So each record is first read for
its account, `observed_at`, `event_id` and status only, and held; it is validated when it
might be the answer:

- held records of one (account, month) are validated newest first until one is valid; the
  older ones are then dropped unexamined, since they cannot win against a valid newer one;
- a later record older than that valid one is dropped at once;
- a record that is not `ok` only counts for the watermark: dropped at once when not newer
  than the newest valid record seen, otherwise held and validated the same way.

The result is exactly the eager one (validate everything, then reduce): every record is
either validated or older than a valid record of its own account and month (or, not `ok`,
than the watermark); a property test compares both on logs with invalid records. A record
whose first reading fails is validated at once (and rejected). Holding is bounded per key and
in bytes, so memory stays bounded on any log: held records are copied into one arena (a
bytearray emptied when everything is settled) rather than kept as the consumer's objects
scattered over the heap (a full-France worker peaks at ~730 MB, 512 MB of it the arena).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from services.common.clock import edition_of, parse_timestamp
from services.common.events import MetricsSnapshot
from services.common.standings_entry import entry_version
from services.common.validation import Rejection, peek_metrics, validate_metrics
from services.scorer.plan import BatchPlan, plan_batch

HELD_PER_KEY: Final = 16
HELD_BYTES: Final = 512 * 1024 * 1024

Key = tuple[str, str, str]  # (platform, handle, month)
Held = tuple[bytes, int, int, int | None]  # (version, start, end in the arena, timestamp)


@dataclass(slots=True)
class _Pending:
    best: bytes | None = None  # version of the newest valid record of the key
    held: list[Held] = field(default_factory=list)


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
        self._keys: dict[Key, _Pending] = {}
        self._others = _Pending()  # records not `ok`: they count for the watermark only
        self._newest = -1  # newest observed_at epoch of a valid record

    @property
    def skipped(self) -> int:
        """Records dropped unexamined so far (older than a valid record that counts)."""
        return self.read - self.validated - self._held

    def add(self, raw: bytes | None, timestamp_ms: int | None) -> None:
        """One record of the log (its value and timestamp)."""
        self.read += 1
        peek = None if raw is None else peek_metrics(raw)
        if raw is None or peek is None:
            self._validate(raw, timestamp_ms)
            return
        epoch, status = peek.epoch, peek.status
        version = entry_version(epoch, peek.event_id)
        key: Key | None = None
        if status != "ok":
            if epoch <= self._newest:
                return
            pending = self._others
        else:
            key = (peek.platform, peek.handle, peek.month)
            found = self._keys.get(key)
            if found is None:
                pending = self._keys[key] = _Pending()
            elif found.best is not None and version <= found.best:
                return
            else:
                pending = found
        start = len(self._arena)
        self._arena += raw
        pending.held.append((version, start, len(self._arena), timestamp_ms))
        self._held += 1
        if len(pending.held) > self._per_key:
            self._settle(key, pending)
        if len(self._arena) > self._budget:
            self._settle_all()

    def finish(self) -> BatchPlan:
        """Validate what may still win; the plan of the whole log."""
        self._settle_all()
        return self.plan

    # --- internals ---------------------------------------------------------------------
    def _settle_all(self) -> None:
        for key, pending in self._keys.items():
            if pending.held:
                self._settle(key, pending)
        self._settle(None, self._others)
        self._arena = bytearray()  # nothing is held any more
        self.plan.forget_replaced()

    def _settle(self, key: Key | None, pending: _Pending) -> None:
        """Validate held records newest first until one is valid; drop the rest unexamined."""
        held = sorted(pending.held, key=lambda item: item[0], reverse=True)
        pending.held = []
        self._held -= len(held)
        for _, start, end, timestamp_ms in held:
            snapshot = self._validate(bytes(self._arena[start:end]), timestamp_ms)
            if snapshot is None:
                continue
            if key is not None and snapshot.status == "ok":
                epoch = int(parse_timestamp(snapshot.observed_at).timestamp())
                version = entry_version(epoch, snapshot.event_id)
                month = edition_of(parse_timestamp(snapshot.observed_at))
                # The first reading is the validated content (same bytes, same parser);
                # checked anyway, since dropping the older records relies on it.
                if key == (snapshot.platform, snapshot.handle, month) and (
                    pending.best is None or version > pending.best
                ):
                    pending.best = version
                    break
            elif key is None:
                break

    def _validate(self, raw: bytes | None, timestamp_ms: int | None) -> MetricsSnapshot | None:
        """Validate one record: a rejection is reported, a valid snapshot reduced into the
        plan (which keeps the newest per account and month, and the watermark)."""
        self.validated += 1
        result = validate_metrics(raw, timestamp_ms)
        if isinstance(result, Rejection):
            self._reject(result)
            return None
        plan_batch([result], into=self.plan)
        if self.plan.newest_epoch is not None:
            self._newest = self.plan.newest_epoch
        return result
