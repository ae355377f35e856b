"""The watermark: the K-th newest of the accounts' newest `observed_at` (pure: no I/O).

ARCHITECTURE.md ("Eligibility", contract v4): over every valid `obs.metrics.v1` event (any
status, any handle; an account is `platform:handle`), take each account's newest
`observed_at`; the watermark is the K-th newest of those (K = 3); while fewer than K accounts
have valid events there is none. No single account, however wrong its clock, can move time
for everyone: an account with a 2099 clock is one of the K newest, and the K-th is still an
honest one.

`NewestAccounts` keeps only the K accounts with the newest times. That is exact, whatever
the order of the events and however they are split: an account's newest time only grows; the
K-th newest only grows; an account dropped from the K kept had a time below the K-th, so any
older event of it cannot matter, and a newer one enters with its own time. Merging two sets
(per-account newest, then the K newest) is exact too, since an account among the K newest of
the whole is among the K newest of the part that holds its newest event. Taking the greater of
two parts' K-th would not be: three accounts seen by three different workers give none.

The Redis form is the same set (services/common/view/scripts/scorer.py, ADVANCE_WATERMARK:
`ZADD GT` then trim to K), so live processing, a rebuild and `replay --batch` agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

K: Final = 3  # accounts that must agree before time moves

NO_WATERMARK_REASON: Final = f"fewer than {K} accounts observed: no watermark yet"


def account_of(platform: str, handle: str) -> str:
    """An account as the watermark counts it: `platform:handle`."""
    return f"{platform}:{handle}"


class NewestAccounts:
    """The K accounts with the newest `observed_at` (epoch seconds) seen so far."""

    __slots__ = ("_k", "_lowest", "_newest")

    def __init__(self, k: int = K) -> None:
        self._k = k
        self._newest: dict[str, int] = {}
        # (epoch, account) of the K-th newest while K are held, found again after a change
        # (a rebuild offers a million events, nearly all older than it)
        self._lowest: tuple[int, str] | None = None

    def add(self, account: str, epoch: int) -> None:
        """One valid event of `account` observed at `epoch`."""
        held = self._newest.get(account)
        if held is not None:
            if epoch > held:
                self._newest[account] = epoch
                self._lowest = None
            return
        if len(self._newest) >= self._k:
            lowest = self._lowest
            if lowest is None:
                lowest = self._lowest = _order(min(self._newest.items(), key=_order))
            if (epoch, account) <= lowest:
                return  # older than the K-th newest: it cannot count
            del self._newest[lowest[1]]
            self._lowest = None
        self._newest[account] = epoch

    def merge(self, other: NewestAccounts) -> None:
        """Add another part's accounts (a batch, a rebuild worker)."""
        for account, epoch in other.items():
            self.add(account, epoch)

    def items(self) -> list[tuple[str, int]]:
        """The accounts kept with their newest time, newest first."""
        return sorted(self._newest.items(), key=_order, reverse=True)

    @property
    def watermark(self) -> int | None:
        """The K-th newest account time, or None while fewer than K accounts are known."""
        if len(self._newest) < self._k:
            return None
        return min(self._newest.values())

    def __len__(self) -> int:
        return len(self._newest)

    def __bool__(self) -> bool:
        return bool(self._newest)


def _order(item: tuple[str, int]) -> tuple[int, str]:
    # Ties broken by account, as Redis orders a sorted set's equal scores: the value of the
    # K-th is the same whichever of the tied accounts is kept.
    return item[1], item[0]


def kth_newest(newest: Iterable[int], k: int = K) -> int | None:
    """The K-th greatest of the accounts' newest times (one per account), None with fewer."""
    ordered = sorted(newest, reverse=True)
    return ordered[k - 1] if len(ordered) >= k else None
