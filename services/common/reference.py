"""The reference batch computation of the standings: the oracle the streaming scorer must match.

`compute_standings` reads a whole log of `obs.metrics.v1` events (and `obs.accounts.v1`
records) and derives, in one pass and in memory, the standings ARCHITECTURE.md's "Methodology
v1" defines: the current ranking per category and every edition month as if unpublished.
`observatoire replay FILE --batch` prints it; tests compare the streaming path against it.

It is written independently of `services/scorer/` on purpose and shares only the pure
building blocks (validation, event models, methodology, registry, accounts, clock): a bug in
the scorer's plan, store or Lua script cannot hide here, and one here cannot hide there.
No I/O: callers pass the lines (bytes, one event each) and the clock.

How it reads the log (ARCHITECTURE "Idempotent by construction" and "Methodology v1"):

- every metrics line is validated as a consumer would, the `future` rule using `now_ms` as
  the record time; invalid lines are recorded in `rejected` and ignored; blank lines are
  skipped (`replay` never produces them) but still counted in the line numbers;
- the account mapping is the bundled one, then the account records in file order (last
  record per territory wins; `handle: null` means no account); a record naming a territory
  the registry does not know is rejected as `unknown_territory`;
- the watermark is the K-th newest (K = 3) of the accounts' newest `observed_at` over the valid
  metrics events, whatever their status (an account is `platform:handle`); none while fewer
  than K accounts have valid events (then nobody is inactive). Computed here by keeping every
  account's newest time and sorting them, not with the scorer's bounded set;
- per account the applied `ok` snapshot is the one winning the compare-and-set order (later
  `observed_at`, then greater `event_id`), whatever the order of the log: duplicates and
  late events change nothing they should not; likewise per account and edition month;
- `not_found` and `error` snapshots only move the watermark.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.common.clock import edition_of, parse_timestamp
from services.common.contracts import CATEGORY_IDS
from services.common.events import MetricsSnapshot
from services.common.methodology import (
    SnapshotSummary,
    is_active,
    is_newer,
    rank,
    score_summary,
    summarise_snapshot,
)
from services.common.validation import Rejection, validate_account, validate_metrics
from services.common.watermark import K

__all__ = ["UNKNOWN_TERRITORY", "ReferenceResult", "compute_standings"]

UNKNOWN_TERRITORY = "unknown_territory"

Standings = dict[str, list[dict[str, Any]]]  # category -> [{"rank", "id", "score"}, ...]


@dataclass(frozen=True)
class ReferenceResult:
    """The standings of a log: current, per edition month, its watermark and what was refused."""

    current: Standings  # every ranked territory; categories without any omitted
    editions: dict[str, Standings]  # "YYYY-MM" -> standings of that month, as if unpublished
    watermark: str | None  # K-th newest account time; None while fewer than K accounts
    rejected: list[tuple[int, str, str]]  # (line number, reason, detail) of invalid metrics
    rejected_accounts: list[tuple[int, str, str]] = field(default_factory=list)  # same, accounts

    def to_json_object(self) -> dict[str, Any]:
        """The `replay --batch` output: `{"current": {...}, "editions": {...}}`."""
        return {"current": self.current, "editions": self.editions}


def compute_standings(
    metrics_lines: Iterable[bytes],
    *,
    account_lines: Iterable[bytes] = (),
    now_ms: int,
    registry: Any = None,
    bundled: Iterable[tuple[str, str]] | None = None,
) -> ReferenceResult:
    """Compute current and edition standings of a metrics log (and account records) in batch.

    `registry` defaults to the territory registry, `bundled` to the bundled accounts
    (`load_accounts().accounts`); pass `bundled=()` to start from no account at all.
    """
    if registry is None:
        from services.common.territories import load_registry

        registry = load_registry()
    if bundled is None:
        from services.common.accounts import load_accounts

        bundled = load_accounts().accounts

    handles, rejected_accounts = _account_mapping(account_lines, now_ms, registry, bundled)
    latest, latest_in_month, watermark, rejected = _read_metrics(metrics_lines, now_ms)

    summaries: dict[str, SnapshotSummary] = {}  # event_id -> summary (shared by territories)

    def summary_of(snapshot: MetricsSnapshot) -> SnapshotSummary:
        found = summaries.get(snapshot.event_id)
        if found is None:
            found = summaries[snapshot.event_id] = _summarise(snapshot)
        return found

    territories_of: dict[str, list[Any]] = {}  # handle -> territories using it
    for territory_id, handle in sorted(handles.items()):
        if handle is not None:
            territories_of.setdefault(handle, []).append(registry[territory_id])

    current: dict[str, list[tuple[str, float]]] = {}
    for handle, snapshot in latest.items():
        if watermark is not None and not is_active(snapshot.observed_at, watermark):
            continue  # without a watermark nobody is inactive
        for territory in territories_of.get(handle, ()):
            score = score_summary(summary_of(snapshot), territory.population).score
            current.setdefault(territory.category, []).append((territory.id, score))

    editions: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for (handle, month), snapshot in latest_in_month.items():
        for territory in territories_of.get(handle, ()):
            score = score_summary(summary_of(snapshot), territory.population).score
            month_entries = editions.setdefault(month, {})
            month_entries.setdefault(territory.category, []).append((territory.id, score))

    return ReferenceResult(
        current=_ranked(current),
        editions={month: _ranked(editions[month]) for month in sorted(editions)},
        watermark=watermark,
        rejected=rejected,
        rejected_accounts=rejected_accounts,
    )


def _account_mapping(
    account_lines: Iterable[bytes],
    now_ms: int,
    registry: Any,
    bundled: Iterable[tuple[str, str]],
) -> tuple[dict[str, str | None], list[tuple[int, str, str]]]:
    """Territory id -> handle (None: no account): the bundled pairs, then the records in order."""
    handles: dict[str, str | None] = {}
    for territory_id, handle in bundled:
        if territory_id in registry:  # the bundled file is checked against the same registry
            handles[territory_id] = handle
    rejected: list[tuple[int, str, str]] = []
    for number, raw in enumerate(account_lines, start=1):
        line = raw.strip()
        if not line:
            continue
        record = validate_account(line, now_ms)
        if isinstance(record, Rejection):
            rejected.append((number, record.reason, record.detail))
            continue
        if record.id not in registry:
            detail = f"no territory {record.id} in the registry"
            rejected.append((number, UNKNOWN_TERRITORY, detail))
            continue
        handles[record.id] = record.handle
    return handles, rejected


def _read_metrics(
    metrics_lines: Iterable[bytes], now_ms: int
) -> tuple[
    dict[str, MetricsSnapshot],
    dict[tuple[str, str], MetricsSnapshot],
    str | None,
    list[tuple[int, str, str]],
]:
    """One pass: the winning `ok` snapshot per handle and per (handle, month), the watermark."""
    latest: dict[str, MetricsSnapshot] = {}
    latest_in_month: dict[tuple[str, str], MetricsSnapshot] = {}
    month_of: dict[str, str] = {}  # observed_at -> edition month (many snapshots share one)
    newest: dict[tuple[str, str], str] = {}  # (platform, handle) -> newest observed_at
    rejected: list[tuple[int, str, str]] = []
    for number, raw in enumerate(metrics_lines, start=1):
        line = raw.strip()
        if not line:
            continue
        snapshot = validate_metrics(line, now_ms)
        if isinstance(snapshot, Rejection):
            rejected.append((number, snapshot.reason, snapshot.detail))
            continue
        observed_at = snapshot.observed_at
        account = (snapshot.platform, snapshot.handle)
        held = newest.get(account)
        if held is None or observed_at > held:  # fixed-width: string order is time
            newest[account] = observed_at
        if snapshot.status != "ok":
            continue
        handle = snapshot.handle
        if _wins(snapshot, latest.get(handle)):
            latest[handle] = snapshot
        month = month_of.get(observed_at)
        if month is None:
            month = month_of[observed_at] = edition_of(parse_timestamp(observed_at))
        key = (handle, month)
        if _wins(snapshot, latest_in_month.get(key)):
            latest_in_month[key] = snapshot
    times = sorted(newest.values(), reverse=True)
    watermark = times[K - 1] if len(times) >= K else None
    return latest, latest_in_month, watermark, rejected


def _wins(snapshot: MetricsSnapshot, applied: MetricsSnapshot | None) -> bool:
    """Does this `ok` snapshot replace the applied one (the compare-and-set order)?"""
    if applied is None:
        return True
    return is_newer(snapshot.observed_at, snapshot.event_id, applied.observed_at, applied.event_id)


def _summarise(snapshot: MetricsSnapshot) -> SnapshotSummary:
    # An `ok` snapshot always carries its counts (the model's rule): the asserts say so to mypy.
    assert snapshot.followers is not None and snapshot.follows is not None
    return summarise_snapshot(
        observed_at=snapshot.observed_at,
        event_id=snapshot.event_id,
        followers=snapshot.followers,
        follows=snapshot.follows,
        recent_posts=snapshot.recent_posts,
    )


def _ranked(entries: dict[str, list[tuple[str, float]]]) -> Standings:
    """Rank each category (contract order of categories; empty ones omitted)."""
    return {
        category: [
            {"rank": position, "id": territory_id, "score": score}
            for position, territory_id, score in rank(entries[category])
        ]
        for category in CATEGORY_IDS
        if entries.get(category)
    }
