"""Reduce a batch of valid snapshots to what must be written (pure: no I/O).

Within a batch only the newest `ok` snapshot per account (and per account and edition month)
can win the compare-and-set, so older ones are dropped before anything reaches Redis.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from services.common.clock import edition_of, parse_timestamp, to_epoch
from services.common.events import MetricsSnapshot
from services.common.history import date_of, day_of_epoch
from services.common.methodology import SnapshotSummary, summarise_snapshot
from services.common.view.entries import entry_version
from services.common.watermark import NewestAccounts, account_of

AccountKey = tuple[str, str]  # (platform, handle)


def version_of(summary: SnapshotSummary) -> bytes:
    """The compare-and-set version (services.common.view.entries.entry_version)."""
    return entry_version(int(parse_timestamp(summary.observed_at).timestamp()), summary.event_id)


@dataclass(slots=True)
class BatchPlan:
    """The newest `ok` summaries of a batch, and the K accounts with the newest event time of
    any status (what the batch brings to the watermark, services/common/watermark.py)."""

    newest: NewestAccounts = field(default_factory=NewestAccounts)
    current: dict[AccountKey, SnapshotSummary] = field(default_factory=dict)
    monthly: dict[tuple[str, str, str], SnapshotSummary] = field(default_factory=dict)
    # per account and Paris day: the `ok` summaries observed last that day (usually one;
    # several of the same second all go to the history, whose script keeps one by its rule)
    daily: dict[tuple[str, str, int], list[SnapshotSummary]] = field(default_factory=dict)
    versions: dict[str, bytes] = field(default_factory=dict)  # event_id -> version

    def version(self, summary: SnapshotSummary) -> bytes:
        """Version of a summary of this plan (computed once per event)."""
        return self.versions[summary.event_id]

    def add_day_summary(self, platform: str, handle: str, summary: SnapshotSummary) -> None:
        """A day winner recorded by the live scorer (services/scorer/day_summaries.py): kept
        as `plan_batch` keeps one it validates for its day, and counted for the watermark
        (its account's newest valid time of the day). Its month's and account's newest are
        derived from the days at the end (`keep_newest_of_days`)."""
        epoch = to_epoch(summary.observed_at)
        self.newest.add(account_of(platform, handle), epoch)
        self.versions.setdefault(summary.event_id, entry_version(epoch, summary.event_id))
        _keep_last_second(self.daily, (platform, handle, day_of_epoch(epoch)[0]), summary, epoch)

    def keep_newest_of_days(self) -> None:
        """Per account and per (account, month), keep the newest of the day points too: a
        month's newest valid `ok` snapshot is its last day's last second's, so a plan whose
        days hold every day winner (a rebuild that read the recorded ones instead of the
        snapshots they stand for) gets the months and accounts `plan_batch` would give."""
        # `_keep_newest` inlined, with each key's newest version held aside: a rebuild's
        # plan holds every day of every account.
        newest: dict[tuple[str, ...], bytes] = {}
        versions = self.versions
        for into in (self.current, self.monthly):
            for key, summary in into.items():
                newest[key] = versions[summary.event_id]
        for (platform, handle, day), same in self.daily.items():
            account = (platform, handle)
            month = (platform, handle, _month_of_day(day))
            for summary in same:
                version = versions[summary.event_id]
                held = newest.get(account)
                if held is None or held < version:
                    self.current[account] = summary
                    newest[account] = version
                held = newest.get(month)
                if held is None or held < version:
                    self.monthly[month] = summary
                    newest[month] = version

    def forget_replaced(self) -> None:
        """Drop the versions of summaries no longer held, once they outnumber the held ones
        (a long-lived plan stays small; the cost is amortised over the snapshots added)."""
        if len(self.versions) <= 2 * (len(self.current) + len(self.monthly) + len(self.daily)):
            return
        held = {s.event_id for s in self.current.values()}
        held.update(s.event_id for s in self.monthly.values())
        held.update(s.event_id for same in self.daily.values() for s in same)
        self.versions = {event_id: self.versions[event_id] for event_id in held}


def plan_batch(snapshots: Iterable[MetricsSnapshot], into: BatchPlan | None = None) -> BatchPlan:
    """Keep, per account and per (account, month), the `ok` snapshot that would win, and per
    (account, day) those of the day's last second (adding to `into` when given: a rebuild
    reduces a whole log chunk by chunk)."""
    plan = BatchPlan() if into is None else into
    for snap in snapshots:
        moment = parse_timestamp(snap.observed_at)
        epoch = int(moment.timestamp())
        plan.newest.add(account_of(snap.platform, snap.handle), epoch)
        if snap.status != "ok":
            continue
        summary = summarise_snapshot(
            observed_at=snap.observed_at,
            event_id=snap.event_id,
            followers=snap.followers or 0,
            follows=snap.follows or 0,
            recent_posts=snap.recent_posts or (),
        )
        version = entry_version(epoch, snap.event_id)
        plan.versions[snap.event_id] = version
        account = (snap.platform, snap.handle)
        _keep_newest(plan, plan.current, account, summary, version)
        _keep_newest(plan, plan.monthly, (*account, edition_of(moment)), summary, version)
        _keep_last_second(plan.daily, (*account, day_of_epoch(epoch)[0]), summary, epoch)
    return plan


@lru_cache(maxsize=1 << 12)
def _month_of_day(day: int) -> str:
    """The edition month (`YYYY-MM`, Europe/Paris) of a Paris day (clock.edition_of)."""
    value = date_of(day)
    return f"{value.year:04d}-{value.month:02d}"


def _keep_last_second(
    into: dict[tuple[str, str, int], list[SnapshotSummary]],
    key: tuple[str, str, int],
    summary: SnapshotSummary,
    epoch: int,
) -> None:
    held = into.get(key)
    if held is None or to_epoch(held[0].observed_at) < epoch:
        into[key] = [summary]
    elif to_epoch(held[0].observed_at) == epoch and all(
        s.event_id != summary.event_id for s in held
    ):
        held.append(summary)


def _keep_newest(
    plan: BatchPlan, into: dict, key: tuple, summary: SnapshotSummary, version: bytes
) -> None:
    held = into.get(key)
    if held is None or plan.versions[held.event_id] < version:
        into[key] = summary
