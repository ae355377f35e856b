"""A deterministic simulated world: marked accounts and plausible snapshots, never in the future.

Same seed, same world: every number is drawn from a generator seeded by (seed, handle[, day]),
so a snapshot of an account at a given time is always the same event. Simulated accounts are
registered with `simulated: true` and a `sim.` handle, and are shown as simulated everywhere.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.common.clock import format_timestamp
from services.common.events import build_account_record, build_metrics_event
from services.common.territories import Registry, Territory

# Categories that get a simulated account by default when no real handle is known.
DEFAULT_CATEGORIES = ("regions", "departements", "metropoles", "grandes-villes")
WINDOW = timedelta(hours=720)
DAY = 86400


def simulated_handle(territory: Territory) -> str:
    """`sim.<kind>.<code>`: visibly simulated, valid, unique per territory."""
    return f"sim.{territory.kind}.{territory.code.lower()}"


@dataclass(frozen=True, slots=True)
class SimulatedAccount:
    """An account's hidden traits, from which every snapshot is derived."""

    territory_id: str
    handle: str
    account_id: str
    base_followers: float
    daily_growth: float
    follows: int
    posts_per_day: float
    engagement_rate: float
    hides_likes: bool
    comment_share: float


def _account(seed: int, territory: Territory) -> SimulatedAccount:
    handle = simulated_handle(territory)
    rng = random.Random(f"{seed}:{handle}")
    population = max(territory.population, 1)
    # Followers grow with population (sub-linearly), with a wide spread between accounts.
    base = 0.6 * population**0.72 * rng.lognormvariate(0.0, 0.45)
    return SimulatedAccount(
        territory_id=territory.id,
        handle=handle,
        account_id=str(17_841_400_000_000_000 + rng.randrange(10**12)),
        base_followers=max(base, 40.0),
        daily_growth=rng.uniform(-0.0002, 0.0015),
        follows=int(rng.lognormvariate(5.5, 0.8)),
        posts_per_day=min(2.5, rng.lognormvariate(-0.6, 0.6)),
        engagement_rate=min(0.25, rng.lognormvariate(math.log(0.025), 0.6)),
        hides_likes=rng.random() < 0.12,
        comment_share=rng.uniform(0.01, 0.06),
    )


class SimulatedWorld:
    """The simulated accounts of a registry and their snapshots at any moment."""

    def __init__(
        self,
        registry: Registry,
        *,
        seed: int,
        real_handles: Iterable[str] = (),
        categories: Iterable[str] = DEFAULT_CATEGORIES,
        epoch: datetime,
    ) -> None:
        taken = set(real_handles)  # territory ids that already have a real account
        self.seed = seed
        self.epoch = epoch
        self.accounts = [
            _account(seed, territory)
            for category in categories
            for territory in registry.by_category(category)
            if territory.id not in taken
        ]

    def account_records(self) -> list[dict]:
        """`obs.accounts.v1` records registering every simulated account (stable event ids)."""
        return [
            build_account_record(
                territory_id=a.territory_id, handle=a.handle, changed_at=self.epoch, simulated=True
            )
            for a in self.accounts
        ]

    def snapshots(self, moment: datetime) -> list[dict]:
        """One `ok` snapshot of every account, observed within the hour before `moment`."""
        return [self.snapshot(account, moment) for account in self.accounts]

    def snapshot(self, account: SimulatedAccount, moment: datetime) -> dict:
        """The snapshot of one account observed at (a jittered time just before) `moment`."""
        jitter = random.Random(f"{self.seed}:{account.handle}:{int(moment.timestamp())}")
        observed = moment.replace(microsecond=0) - timedelta(seconds=jitter.randrange(3600))
        days = (observed - self.epoch).total_seconds() / DAY
        followers = max(0, int(account.base_followers * (1 + account.daily_growth) ** days))
        posts = list(self._posts(account, observed, followers))
        return build_metrics_event(
            handle=account.handle,
            account_id=account.account_id,
            observed_at=observed,
            status="ok",
            source="sim",
            followers=followers,
            follows=account.follows,
            media_count=int(400 + account.posts_per_day * (days + 900)),
            recent_posts=posts,
        )

    def _posts(
        self, account: SimulatedAccount, observed: datetime, followers: int
    ) -> Iterator[dict]:
        """Posts published in (observed - 720 h, observed], newest first, at most 200."""
        end = int(observed.timestamp())
        start = end - int(WINDOW.total_seconds())
        out: list[dict] = []
        for day in range(end // DAY, start // DAY - 1, -1):
            rng = random.Random(f"{self.seed}:{account.handle}:day:{day}")
            count = _poisson(rng, account.posts_per_day)
            for index in range(count):
                published = day * DAY + rng.randrange(DAY)
                interactions = followers * account.engagement_rate * rng.lognormvariate(0, 0.5)
                comments = int(interactions * account.comment_share)
                likes = 0 if account.hides_likes else int(interactions) - comments
                if start < published <= end:
                    out.append(
                        {
                            "id": f"{account.account_id}{day:06d}{index:02d}",
                            "published_at": format_timestamp(
                                datetime.fromtimestamp(published, UTC)
                            ),
                            "likes": max(likes, 0),
                            "comments": comments,
                            "likes_hidden": likes == 0 and comments > 0,
                        }
                    )
        out.sort(key=lambda post: post["published_at"], reverse=True)
        yield from out[:200]


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: fine for the small means of posting habits."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
