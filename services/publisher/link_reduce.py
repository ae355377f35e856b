"""Fold a whole `obs.metrics.v1` log into each account's link state, validating little.

The live publisher applies every valid snapshot of an account, in log order, to its link state
(services/common/dead_links.py `apply_snapshot`): a snapshot counts only if it is newer than the
last one counted, `error` snapshots never count, an `ok` one resets the state. A rebuild must
reach the same states, but validating every record (schema, event id) costs five to seven
times parsing it. So records are first read cheaply (`peek_metrics`) and held per account; when
settled, the last record to count is the valid one with the highest position; the state before
it is the same question asked of the records before it in the log, and an `ok` record ends the
walk (nothing before it matters). In a healthy account's daily log that is one validation per
settle; a dead account's run of `not_found` is validated record by record.

The transitions to and from `dead` (what the live publisher announces and keeps per account,
services/publisher/links.py) come from the same walk: it goes on past an `ok` while a
`not_found` is held before it, or while the state it started from is `dead` (the records it
then reaches may announce something). A healthy account's walk still stops at its last `ok`:
from a state that is not `dead`, `ok` snapshots announce nothing. The last TRANSITIONS_KEPT
of each account are kept.

Dropped without validation: `error` records, and records not newer than the account's state
(they cannot count, valid or not). A property test compares the result with validating and
applying every record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from services.common.dead_links import (
    TRANSITIONS_KEPT,
    LinkState,
    LinkTransition,
    apply_snapshot,
    position_of,
)
from services.common.events import MetricsSnapshot
from services.common.validation import MetricsPeek, Rejection, peek_metrics, validate_metrics

HELD_PER_ACCOUNT: Final = 16
HELD_BYTES: Final = 512 * 1024 * 1024

Account = tuple[str, str]  # (platform, handle)


# A record held: its position, its bytes in the arena (start, end), its timestamp. A tuple:
# one is made for nearly every record of the log.
_Held = tuple[str, int, int, int | None]


@dataclass(slots=True)
class _Account:
    state: LinkState = field(default_factory=LinkState)
    held: list[_Held] = field(default_factory=list)  # log order
    first_not_found: int | None = None  # the index in `held` of its first `not_found`
    transitions: list[LinkTransition] = field(default_factory=list)  # the last kept


class LinkReducer:
    """Feed records in log order with `add`; `finish` returns every account's link state."""

    def __init__(
        self,
        reject: Callable[[Rejection], None],
        *,
        held_per_account: int = HELD_PER_ACCOUNT,
        held_bytes: int = HELD_BYTES,
    ) -> None:
        self.read = 0
        self.validated = 0
        self._reject = reject
        self._per_account = held_per_account
        self._budget = held_bytes
        self._arena = bytearray()
        self._accounts: dict[Account, _Account] = {}

    def add(
        self, raw: bytes | None, timestamp_ms: int | None, peek: MetricsPeek | None = None
    ) -> None:
        """One record of the log (its value and timestamp), in log order, and its
        `peek_metrics` reading when the caller already made it (a rebuild reads each record
        once for every fold)."""
        self.read += 1
        if peek is None and raw is not None:
            peek = peek_metrics(raw)
        if raw is None or peek is None:
            snapshot = self._validate(raw, timestamp_ms)
            if snapshot is not None:  # not expected: a valid record always reads
                account = self._account((snapshot.platform, snapshot.handle))
                self._settle(account)
                account.state, transition = apply_snapshot(
                    account.state,
                    observed_at=snapshot.observed_at,
                    event_id=snapshot.event_id,
                    status=snapshot.status,
                )
                if transition is not None:
                    account.transitions = [*account.transitions, transition][-TRANSITIONS_KEPT:]
            return
        if peek.status not in ("ok", "not_found"):
            return  # `error` never counts, and any other status is invalid
        account = self._account((peek.platform, peek.handle))
        position = position_of(peek.observed_at, peek.event_id)
        if account.state.position is not None and position <= account.state.position:
            return
        start = len(self._arena)
        self._arena += raw
        if peek.status == "not_found" and account.first_not_found is None:
            account.first_not_found = len(account.held)
        account.held.append((position, start, len(self._arena), timestamp_ms))
        if len(account.held) > self._per_account:
            self._settle(account)
        if len(self._arena) > self._budget:
            self._settle_all()

    def finish(self) -> dict[Account, LinkState]:
        """Every account seen with a snapshot that may count, and its state."""
        self._settle_all()
        return {key: account.state for key, account in self._accounts.items()}

    def transitions(self) -> dict[Account, list[LinkTransition]]:
        """After `finish`: each account's last transitions (TRANSITIONS_KEPT at most), in
        order; accounts without any are left out."""
        return {key: a.transitions for key, a in self._accounts.items() if a.transitions}

    @property
    def skipped(self) -> int:
        """Records read but never validated (they could not change a state)."""
        return self.read - self.validated - sum(len(a.held) for a in self._accounts.values())

    # --- internals ---------------------------------------------------------------------
    def _account(self, key: Account) -> _Account:
        account = self._accounts.get(key)
        if account is None:
            account = self._accounts[key] = _Account()
        return account

    def _settle_all(self) -> None:
        for account in self._accounts.values():
            if account.held:
                self._settle(account)
        self._arena = bytearray()

    def _settle(self, account: _Account) -> None:
        """The state after the held records, from the account's state; nothing held after."""
        held, account.held = account.held, []
        first_not_found, account.first_not_found = account.first_not_found, None
        from_dead = account.state.status == "dead"
        valid: dict[int, MetricsSnapshot | None] = {}

        def snapshot(index: int) -> MetricsSnapshot | None:
            if index not in valid:
                _, start, end, timestamp_ms = held[index]
                valid[index] = self._validate(bytes(self._arena[start:end]), timestamp_ms)
            return valid[index]

        # Newest first, and only what is newer than the state: the rest cannot count.
        floor = account.state.position
        newest_first = [
            index
            for index in sorted(range(len(held)), key=lambda i: held[i][0], reverse=True)
            if floor is None or held[index][0] > floor
        ]
        chain: list[MetricsSnapshot] = []  # the records that count, last first
        end = len(held)  # the next one to count came before this one in the log
        while True:
            last = next(
                ((i, s) for i in newest_first if i < end and (s := snapshot(i)) is not None),
                None,
            )
            if last is None:
                break
            chain.append(last[1])
            if last[1].status == "ok" and not (
                from_dead or (first_not_found is not None and first_not_found < last[0])
            ):
                break  # an `ok` resets the state, and nothing before it announces anything
            end = last[0]
        transitions = account.transitions
        for counted in reversed(chain):
            account.state, transition = apply_snapshot(
                account.state,
                observed_at=counted.observed_at,
                event_id=counted.event_id,
                status=counted.status,
            )
            if transition is not None:
                transitions.append(transition)
        if len(transitions) > TRANSITIONS_KEPT:
            del transitions[:-TRANSITIONS_KEPT]

    def _validate(self, raw: bytes | None, timestamp_ms: int | None) -> MetricsSnapshot | None:
        self.validated += 1
        result = validate_metrics(raw, timestamp_ms)
        if isinstance(result, Rejection):
            self._reject(result)
            return None
        return result
