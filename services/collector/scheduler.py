"""Which account to observe next: the scheduling policy of the Graph collector. Pure.

Every account is observed once per `cadence` seconds. An account is *due* when it was never
attempted, or when its last attempt is at least `cadence` old (`retry_after` when that attempt
ended in `error`). Among due accounts the stalest goes first: the oldest last attempt, never
attempted before all, ties by handle. A taken account is in flight (never taken twice), and
its attempt, once recorded, sends it to the back of the line: when the budget is smaller than
the work the accounts are served round-robin, none starves, each is attempted at least once
every N grants (N accounts).

The call budget itself is not decided here (services/collector/budget.py grants calls); the
collector asks for the next due account only once a call can be made.

Times are wall-clock epoch seconds, the time of `observed_at`: at start, the last attempts
come from the snapshots themselves (`last_attempts`, fed by services/collector/recent_attempts.py
from `obs.metrics.v1` and the spool), so the schedule never outlives the log it describes.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass

STATUSES = ("ok", "not_found", "error")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One observation of an account, as a snapshot records it: when, and how it ended."""

    handle: str
    at: float  # epoch seconds of `observed_at`
    status: str  # ok, not_found or error


def last_attempts(attempts: Iterable[Attempt], *, now: float) -> dict[str, Attempt]:
    """The newest attempt of each handle; a time ahead of `now` counts as `now`.

    At equal times an `ok` or `not_found` beats an `error`: the account was observed then.
    """
    newest: dict[str, Attempt] = {}
    for attempt in attempts:
        if attempt.status not in STATUSES:
            continue
        if attempt.at > now:  # a clock ahead of ours must not silence an account for long
            attempt = Attempt(attempt.handle, now, attempt.status)
        known = newest.get(attempt.handle)
        if known is None or _recency(attempt) > _recency(known):
            newest[attempt.handle] = attempt
    return newest


def _recency(attempt: Attempt) -> tuple[float, bool]:
    return (attempt.at, attempt.status != "error")


@dataclass(slots=True)
class AccountSchedule:
    """What the scheduler knows about one handle."""

    handle: str
    last_attempt: float | None = None
    last_status: str | None = None
    in_flight: bool = False


class Schedule:
    """The accounts to observe, their last attempts, and the stalest-first choice."""

    def __init__(self, cadence_seconds: float, retry_after_seconds: float | None = None) -> None:
        if cadence_seconds <= 0:
            raise ValueError("cadence_seconds must be positive")
        self.cadence = cadence_seconds
        self.retry_after = min(retry_after_seconds or cadence_seconds, cadence_seconds)
        self._accounts: dict[str, AccountSchedule] = {}

    def __len__(self) -> int:
        return len(self._accounts)

    def __contains__(self, handle: object) -> bool:
        return handle in self._accounts

    def handles(self) -> list[str]:
        return sorted(self._accounts)

    def get(self, handle: str) -> AccountSchedule | None:
        return self._accounts.get(handle)

    def sync(self, handles: Iterable[str]) -> tuple[set[str], set[str]]:
        """Follow the account mapping: add new handles (due at once), drop the others."""
        wanted = set(handles)
        added = wanted - self._accounts.keys()
        removed = self._accounts.keys() - wanted
        for handle in removed:
            del self._accounts[handle]
        for handle in added:
            self._accounts[handle] = AccountSchedule(handle)
        return added, removed

    def due_at(self, account: AccountSchedule) -> float:
        """When the account is next due (-inf: never attempted)."""
        if account.last_attempt is None:
            return -math.inf
        wait = self.retry_after if account.last_status == "error" else self.cadence
        return account.last_attempt + wait

    def due(self, now: float) -> list[str]:
        """Handles due at `now` and not in flight, stalest first."""
        accounts = [a for a in self._accounts.values() if not a.in_flight and self.due_at(a) <= now]
        accounts.sort(key=_staleness)
        return [a.handle for a in accounts]

    def take(self, now: float, among: Container[str] | None = None) -> str | None:
        """The stalest due account (of `among`, if given), marked in flight; or None."""
        best: AccountSchedule | None = None
        for account in self._accounts.values():
            if account.in_flight or self.due_at(account) > now:
                continue
            if among is not None and account.handle not in among:
                continue
            if best is None or _staleness(account) < _staleness(best):
                best = account
        if best is None:
            return None
        best.in_flight = True
        return best.handle

    def record(self, handle: str, now: float, status: str) -> None:
        """The observation of `handle` ended at `now` with `status` (ok, not_found, error)."""
        account = self._accounts.get(handle)
        if account is None:  # dropped from the mapping while in flight
            return
        account.in_flight = False
        account.last_attempt = now
        account.last_status = status

    def release(self, handle: str) -> None:
        """The observation of `handle` was abandoned (shutdown): due again as before."""
        account = self._accounts.get(handle)
        if account is not None:
            account.in_flight = False

    def next_due(self) -> float | None:
        """The earliest time an account not in flight becomes due (None: no such account)."""
        times = [self.due_at(a) for a in self._accounts.values() if not a.in_flight]
        return min(times, default=None)

    def restore(self, attempts: Mapping[str, Attempt]) -> int:
        """Take the last attempts known from before this process (`last_attempts`) for the
        scheduled handles this process has not attempted yet; returns how many."""
        restored = 0
        for account in self._accounts.values():
            known = attempts.get(account.handle)
            if known is None or account.last_attempt is not None or account.in_flight:
                continue
            account.last_attempt = known.at
            account.last_status = known.status
            restored += 1
        return restored


def _staleness(account: AccountSchedule) -> tuple[float, str]:
    last = -math.inf if account.last_attempt is None else account.last_attempt
    return (last, account.handle)
