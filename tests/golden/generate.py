"""A deterministic golden log: realistic `obs.metrics.v1` traffic with every awkward case planted.

`generate(seed, n_events, end=...)` returns the same log for the same arguments (one seeded
`random.Random`, no set iteration, no wall clock). The log is what the streaming scorer is
checked against the reference batch computation on (services/common/reference.py):

- a few hundred accounts over the eight categories (régions, départements, métropoles, CA,
  CC, grandes, moyennes and petites villes), the bundled seed accounts among them, some
  handles shared by two territories (Paris, Corse, Alsace, métropoles and their city...);
- ~3 months of snapshots ending at `end` (never after it), ~5-30 posts each;
- duplicates (the same event re-emitted later), out-of-order and backfilled events (old events
  placed late, some at the very end), equal `observed_at` with different content, a late `ok`
  placed after a `not_found` of the same account with a greater `observed_at`, hidden likes,
  zero followers, a territory of population 0 (com-55039), `not_found` runs (dead links) and
  `error` snapshots, accounts no longer observed for more than 30 days (inactive), snapshots at
  both sides of each month boundary in Europe/Paris time (e.g. 21:59:59Z and 22:00:00Z on
  30 June), and a territory changing handle mid-stream (and one losing its account).

Every event is built by `build_metrics_event`, so each is valid with a correct event_id: the
log holds no poison (tested elsewhere).

    python -m tests.golden.generate --seed 7 --events 50000 --out /tmp/golden
"""

from __future__ import annotations

import argparse
import bisect
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from services.common.accounts import load_accounts
from services.common.clock import edition_bounds, edition_of, format_timestamp, utcnow
from services.common.events import (
    SnapshotStatus,
    build_account_record,
    build_metrics_event,
    build_recent_post,
)
from services.common.territories import Registry, Territory, load_registry

SPAN_DAYS = 92  # observed_at spread over [end - 92 days, end]
POST_HISTORY_DAYS = 31  # posts start before the first snapshot so early windows are full
WINDOW_SECONDS = 720 * 3600
DAY = 86400
MIN_EVENTS = 1000  # below this, the planted cases would crowd out the regular traffic

# Territories drawn per category (on top of the bundled accounts and the shared pairs).
DRAWN_PER_CATEGORY: dict[str, int] = {
    "regions": 12,
    "departements": 40,
    "metropoles": 10,
    "communautes-agglomeration": 40,
    "communautes-communes": 50,
    "grandes-villes": 20,
    "villes-moyennes": 50,
    "petites-villes": 70,
}
# Handles shared by two territories, as in real life (one collectivity serving both).
SHARED_HANDLES: tuple[tuple[str, tuple[str, str]], ...] = (
    ("isula.corsica", ("dep-2A", "dep-2B")),
    ("alsace.cea", ("dep-67", "dep-68")),
    ("toulouse", ("epci-243100518", "com-31555")),
    ("bordeaux", ("epci-243300316", "com-33063")),
    ("nantes", ("epci-244400404", "com-44109")),
)
RANDOM_SHARED_PAIRS = (  # (category of the first, category of the second), drawn at random
    ("communautes-agglomeration", "villes-moyennes"),
    ("communautes-communes", "petites-villes"),
    ("communautes-communes", "petites-villes"),
)
POPULATION_ZERO = "com-55039"  # Beaumont-en-Verdunois, one of the six Meuse communes with 0
POPULATION_ZERO_HANDLE = "beaumont.en.verdunois"
HANDLE_PREFIX = {"reg": "region", "dep": "departement", "epci": "interco", "com": "ville"}

# Shares of the log.
DUPLICATE_SHARE = 0.015
OUT_OF_ORDER_SHARE = 0.02
BACKFILL_SHARE = 0.005
ERROR_SHARE = 0.005
HIDDEN_LIKES_SHARE = 0.03
INACTIVE_SHARE = 0.06
# Planted cases (numbers of accounts).
DEAD_ACCOUNTS = 4
LATE_OK_ACCOUNTS = 4
EQUAL_TIME_PAIRS = 6
BOUNDARY_ACCOUNTS = 5
ZERO_FOLLOWER_ACCOUNTS = 2


@dataclass(frozen=True)
class GoldenLog:
    """A generated log: account records to produce first, metrics in order, records after."""

    seed: int
    end: str
    metrics: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    accounts_after: list[tuple[int, dict[str, Any]]]  # produced once metrics[:i] are produced

    def final_accounts(self) -> list[dict[str, Any]]:
        """Every account record in production order (the batch oracle's ACCOUNTS file)."""
        return [*self.accounts, *(record for _, record in self.accounts_after)]

    def write(self, directory: Path | str) -> tuple[Path, Path]:
        """Write `metrics.jsonl` and `accounts.jsonl` (JSON lines) into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        metrics_path = directory / "metrics.jsonl"
        accounts_path = directory / "accounts.jsonl"
        metrics_path.write_bytes(_json_lines(self.metrics))
        accounts_path.write_bytes(_json_lines(self.final_accounts()))
        return metrics_path, accounts_path


def _json_lines(events: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(event) + b"\n" for event in events)


@dataclass
class _Post:
    epoch: int
    published_at: str
    post_id: str
    likes: int  # final counts; a young post shows a part of them
    comments: int
    hidden: bool


@dataclass
class _Account:
    handle: str
    account_id: str
    territories: list[Territory]
    followers: int  # at the start of the span
    growth_per_day: float
    follows: int
    media_count: int
    posts_per_day: float
    first: int  # epoch seconds: the account is observed in [first, last]
    last: int
    zero_followers: bool = False
    dead_from: int | None = None  # from then on every snapshot is not_found
    posts: list[_Post] = field(default_factory=list)
    post_epochs: list[int] = field(default_factory=list)


@dataclass
class _Entry:
    """A metrics event with its place in the log (sorted by log time, then tiebreak)."""

    log_time: float
    tiebreak: float
    event: dict[str, Any]


class _Generator:
    def __init__(self, seed: int, n_events: int, end: datetime) -> None:
        if n_events < MIN_EVENTS:
            raise ValueError(f"n_events must be at least {MIN_EVENTS}")
        if end.tzinfo is None:
            raise ValueError("end must be timezone-aware")
        self.rng = random.Random(seed)
        self.seed = seed
        self.n_events = n_events
        self.end = int(end.timestamp())
        self.start = self.end - SPAN_DAYS * DAY
        self.registry: Registry = load_registry()
        self.accounts: list[_Account] = []
        self.post_counter = 17_900_000_000_000_000
        self.entries: list[_Entry] = []

    # --- accounts ------------------------------------------------------------------------

    def plan_accounts(self) -> dict[str, str | None]:
        """Draw the territories and their handles; returns the initial mapping."""
        rng = self.rng
        used: dict[str, str | None] = {}  # territory id -> handle
        by_handle: dict[str, list[Territory]] = {}

        def assign(handle: str, territory: Territory) -> None:
            used[territory.id] = handle
            by_handle.setdefault(handle, []).append(territory)

        for territory_id, handle in load_accounts().accounts:
            assign(handle, self.registry[territory_id])
        for handle, pair in SHARED_HANDLES:
            for territory_id in pair:
                assign(handle, self.registry[territory_id])
        assign(POPULATION_ZERO_HANDLE, self.registry[POPULATION_ZERO])
        for first_category, second_category in RANDOM_SHARED_PAIRS:
            first = self._draw(first_category, used)
            second = self._draw(second_category, used)
            handle = _handle_of(first)
            assign(handle, first)
            assign(handle, second)
        for category, count in DRAWN_PER_CATEGORY.items():
            for _ in range(count):
                territory = self._draw(category, used)
                assign(_handle_of(territory), territory)

        for handle, territories in by_handle.items():
            self.accounts.append(self._new_account(handle, territories))
        # Inactive accounts: no longer observed for more than 30 days before the end.
        regular = self._regular_accounts()
        for account in rng.sample(regular, max(2, round(INACTIVE_SHARE * len(regular)))):
            account.last = self.end - rng.randint(31 * DAY + 3600, 60 * DAY)
        for account in rng.sample(self._regular_accounts(), ZERO_FOLLOWER_ACCOUNTS):
            account.zero_followers = True
        for index, account in enumerate(rng.sample(self._regular_accounts(), DEAD_ACCOUNTS)):
            # The last one died long ago: dead and inactive; the others still ranked.
            days = rng.randint(40, 55) if index == DEAD_ACCOUNTS - 1 else rng.randint(3, 20)
            account.dead_from = self.end - days * DAY
        return used

    def _draw(self, category: str, used: dict[str, str | None]) -> Territory:
        members = self.registry.by_category(category)
        while True:
            territory = members[self.rng.randrange(len(members))]
            if territory.id not in used:
                return territory

    def _new_account(self, handle: str, territories: list[Territory]) -> _Account:
        rng = self.rng
        population = max(t.population for t in territories)
        # Followers grow with the population, with a wide spread (a village of 100 may lead).
        base = max(population, 300) * math.exp(rng.uniform(math.log(0.003), math.log(0.2)))
        followers = int(min(max(base, 40), 3_000_000))
        return _Account(
            handle=handle,
            account_id=str(17_841_400_000_000_000 + rng.randrange(10**12)),
            territories=territories,
            followers=followers,
            growth_per_day=followers * rng.uniform(-0.0005, 0.003),
            follows=rng.randint(20, 2500),
            media_count=rng.randint(50, 4000),
            posts_per_day=rng.uniform(0.17, 1.0),
            first=self.start + rng.randint(0, 3 * DAY),
            last=self.end - rng.randint(0, DAY // 2),
        )

    def _regular_accounts(self) -> list[_Account]:
        """Accounts with nothing special planted yet (active, alive, with followers)."""
        return [
            account
            for account in self.accounts
            if account.last >= self.end - DAY
            and account.dead_from is None
            and not account.zero_followers
            and account.handle != POPULATION_ZERO_HANDLE
        ]

    def _posts(self, account: _Account) -> None:
        rng = self.rng
        moment = account.first - POST_HISTORY_DAYS * DAY
        posts: list[_Post] = []
        while True:
            moment += int(rng.expovariate(account.posts_per_day / DAY)) + 1
            if moment > account.last:
                break
            rate = math.exp(rng.gauss(math.log(0.02), 0.8))
            likes = int(max(account.followers, 50) * rate)
            comments = int(likes * rng.uniform(0.0, 0.08))
            hidden = rng.random() < HIDDEN_LIKES_SHARE
            if hidden:
                comments = max(comments, 1)
            self.post_counter += rng.randint(1, 999)
            posts.append(
                _Post(moment, _ts(moment), str(self.post_counter), likes, comments, hidden)
            )
        account.posts = posts
        account.post_epochs = [post.epoch for post in posts]

    # --- snapshots -----------------------------------------------------------------------

    def snapshot(
        self, account: _Account, moment: int, *, status: SnapshotStatus | None = None
    ) -> dict[str, Any]:
        """One metrics event of this account observed at `moment` (epoch seconds)."""
        rng = self.rng
        if status is None:
            if account.dead_from is not None and moment >= account.dead_from:
                status = "not_found"
            elif rng.random() < ERROR_SHARE:
                status = "error"
            else:
                status = "ok"
        observed_at = _ts(moment)
        if status != "ok":
            return build_metrics_event(
                handle=account.handle,
                observed_at=observed_at,
                status=status,
                source="sim",
                account_id=account.account_id,
            )
        days = (moment - self.start) / DAY
        followers = (
            0
            if account.zero_followers
            else int(max(account.followers + account.growth_per_day * days, 0))
        )
        low = bisect.bisect_right(account.post_epochs, moment - WINDOW_SECONDS)
        high = bisect.bisect_right(account.post_epochs, moment)
        window = account.posts[max(low, high - 200) : high]
        recent = []
        for post in window:
            seen = min(1.0, 0.35 + (moment - post.epoch) / (72 * 3600))
            comments = int(post.comments * seen)
            likes = 0 if post.hidden else int(post.likes * seen)
            if post.hidden:
                comments = max(comments, 1)
            recent.append(
                build_recent_post(
                    post_id=post.post_id,
                    published_at=post.published_at,
                    likes=likes,
                    comments=comments,
                )
            )
        return build_metrics_event(
            handle=account.handle,
            observed_at=observed_at,
            status="ok",
            source="sim",
            account_id=account.account_id,
            followers=followers,
            follows=account.follows,
            media_count=account.media_count + high,
            recent_posts=recent,
        )

    def add(self, event: dict[str, Any], log_time: float | None = None) -> None:
        if log_time is None:
            log_time = _epoch(event["observed_at"])
        self.entries.append(_Entry(log_time, self.rng.random(), event))

    # --- the log -------------------------------------------------------------------------

    def build(self) -> GoldenLog:
        rng = self.rng
        mapping = self.plan_accounts()
        changes = self._plan_changes()
        for account in self.accounts:
            self._posts(account)

        planted = self._plant_special_cases()
        duplicates = round(DUPLICATE_SHARE * self.n_events)
        budget = self.n_events - len(planted) - duplicates
        for account, count in zip(self.accounts, self._allocate(budget), strict=True):
            for moment in self._observation_times(account, count):
                self.add(self.snapshot(account, moment))
        # Out of order (a little late) and backfilled (old events placed at the very end).
        # Planted cases keep their places: each must stay what it was planted to be.
        regular = self.entries
        for entry in rng.sample(regular, round(OUT_OF_ORDER_SHARE * len(regular))):
            entry.log_time += rng.uniform(3600, 10 * DAY)
        for entry in rng.sample(regular, round(BACKFILL_SHARE * len(regular))):
            entry.log_time = max(entry.log_time, self.end) + rng.uniform(0, 2 * DAY)
        self.entries = regular + planted
        # Duplicates: the same event again, later.
        for entry in rng.sample(self.entries, duplicates):
            self.entries.append(
                _Entry(entry.log_time + rng.uniform(60, 20 * DAY), rng.random(), entry.event)
            )

        self.entries.sort(key=lambda entry: (entry.log_time, entry.tiebreak))
        metrics = [entry.event for entry in self.entries]
        log_times = [entry.log_time for entry in self.entries]
        assert len(metrics) == self.n_events
        assert max(event["observed_at"] for event in metrics) <= _ts(self.end)

        seeded_at = _ts(self.start - DAY)
        accounts = [
            build_account_record(territory_id=territory_id, handle=handle, changed_at=seeded_at)
            for territory_id, handle in mapping.items()
        ]
        accounts_after = [
            (
                bisect.bisect_left(log_times, moment),
                build_account_record(
                    territory_id=territory_id, handle=handle, changed_at=_ts(moment)
                ),
            )
            for moment, territory_id, handle in changes
        ]
        return GoldenLog(self.seed, _ts(self.end), metrics, accounts, accounts_after)

    def _plan_changes(self) -> list[tuple[int, str, str | None]]:
        """A territory moves to a new handle mid-stream; one of a shared pair loses its account."""
        rng = self.rng
        exclusive = [a for a in self._regular_accounts() if len(a.territories) == 1]
        old = rng.choice(exclusive)
        territory = old.territories[0]
        moment = self.start + int(SPAN_DAYS * DAY * rng.uniform(0.45, 0.6))
        new = self._new_account(f"{old.handle[:21]}.officiel", [territory])
        new.first = moment + 600
        old.last = moment
        self.accounts.append(new)
        shared = [a for a in self._regular_accounts() if len(a.territories) == 2]
        leaving = rng.choice(shared).territories[1]
        removal = self.start + int(SPAN_DAYS * DAY * rng.uniform(0.65, 0.8))
        return [(moment, territory.id, new.handle), (removal, leaving.id, None)]

    def _plant_special_cases(self) -> list[_Entry]:
        """The planted cases, as log entries kept apart from the regular traffic."""
        rng = self.rng
        planted: list[_Entry] = []

        def plant(event: dict[str, Any], log_time: float | None = None) -> None:
            time = _epoch(event["observed_at"]) if log_time is None else log_time
            planted.append(_Entry(time, rng.random(), event))

        regular = self._regular_accounts()
        # Both sides of every month boundary in the span (Europe/Paris time).
        boundaries = _month_boundaries(self.start + 4 * DAY, self.end)
        for account in rng.sample(regular, BOUNDARY_ACCOUNTS):
            for boundary in boundaries:
                plant(self.snapshot(account, boundary - 1, status="ok"))
                plant(self.snapshot(account, boundary, status="ok"))
        # Equal observed_at, different content (e.g. two collectors): the greater id wins.
        for account in rng.sample(regular, EQUAL_TIME_PAIRS):
            moment = rng.randint(account.first, account.last)
            plant(self.snapshot(account, moment, status="ok"))
            account.followers += rng.randint(1, 50)
            plant(self.snapshot(account, moment, status="ok"))
        # A not_found, then later in the log an older ok of the same account.
        for account in rng.sample(regular, LATE_OK_ACCOUNTS):
            moment = self.end - rng.randint(DAY, 5 * DAY)
            plant(self.snapshot(account, moment, status="not_found"))
            late = self.snapshot(account, moment - rng.randint(600, 6 * 3600), status="ok")
            plant(late, log_time=moment + rng.uniform(60, 3600))
        return planted

    def _allocate(self, budget: int) -> list[int]:
        """Regular snapshots per account (at least two each), proportional to observed days."""
        spans = [max(account.last - account.first, DAY) for account in self.accounts]
        floor = 2 * len(self.accounts)
        if budget < floor:
            raise ValueError(f"n_events too small for {len(self.accounts)} accounts")
        total = sum(spans)
        shares = [(budget - floor) * span / total for span in spans]
        counts = [2 + int(share) for share in shares]
        by_remainder = sorted(range(len(shares)), key=lambda i: (int(shares[i]) - shares[i], i))
        for i in by_remainder[: budget - sum(counts)]:
            counts[i] += 1
        return counts

    def _observation_times(self, account: _Account, count: int) -> Iterator[int]:
        step = (account.last - account.first) / count
        for k in range(count):
            yield min(account.last, account.first + int((k + self.rng.random()) * step))


def _month_boundaries(start: int, end: int) -> list[int]:
    """Epoch seconds of each Europe/Paris month start in (start, end]."""
    result: list[int] = []
    month = edition_of(datetime.fromtimestamp(start, UTC))
    while True:
        _, boundary = edition_bounds(month)
        moment = int(boundary.timestamp())
        if moment > end:
            return result
        result.append(moment)
        month = edition_of(boundary)


def _handle_of(territory: Territory) -> str:
    kind, code = territory.id.split("-", 1)
    return f"{HANDLE_PREFIX[kind]}{code.lower()}"


def _ts(epoch: int) -> str:
    return format_timestamp(datetime.fromtimestamp(epoch, UTC))


def _epoch(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp).timestamp())


def generate(seed: int, n_events: int = 50_000, *, end: datetime) -> GoldenLog:
    """The golden log of this seed: `n_events` metrics events over ~3 months ending at `end`."""
    return _Generator(seed, n_events, end).build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--end", help="YYYY-MM-DDTHH:MM:SSZ (default: now)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    end = datetime.fromisoformat(args.end) if args.end else utcnow()
    log = generate(args.seed, args.events, end=end)
    metrics_path, accounts_path = log.write(args.out)
    print(f"{len(log.metrics)} events -> {metrics_path}; accounts -> {accounts_path}")


if __name__ == "__main__":
    main()
