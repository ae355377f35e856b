"""A deterministic simulated world: marked accounts and plausible snapshots, never in the future.

Same seed, same world: every number is drawn from a generator seeded by (seed, handle[, day]),
so a snapshot of an account at a given time is always the same event. Simulated accounts are
registered with `simulated: true` and a `sim.` handle, and are shown as simulated everywhere.

What is simulated (docs/collector.md, "Simulator"):
- one account for a share of each category's territories (all régions, départements,
  métropoles and grandes villes by default), chosen by the seed, never for a territory that
  has a real handle;
- followers grow with population (sub-linearly, lognormal spread) and drift daily; engagement
  is lognormal; each account has its posting habit (a Poisson rate, quieter weekends) and some
  hide their like counts;
- incidents: dead links (from some moment the account answers `not_found`, like the seed's
  La Ténarèze) and renames (the old handle answers `not_found`, then the territory is
  registered under its new handle, same account id).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.common.clock import format_timestamp
from services.common.events import build_account_record, build_metrics_event
from services.common.territories import Registry, Territory

# Categories that get a simulated account by default when no real handle is known.
DEFAULT_CATEGORIES = ("regions", "departements", "metropoles", "grandes-villes")
WINDOW = timedelta(hours=720)
DAY = 86400
# Incidents happen within these days after the epoch (the replay's start).
DEAD_LINK_DAYS = (40.0, 60.0)
RENAME_DAYS = (20.0, 35.0)
# A renamed account is registered under its new handle this long after the rename.
RENAME_NOTICED_AFTER = timedelta(days=2)
RENAMED_SUFFIX = ".r1"


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
    weekend_factor: float = 1.0  # posting rate on Saturdays and Sundays, relative to weekdays


@dataclass(frozen=True, slots=True)
class DeadLink:
    """From `since` on, the account answers `not_found` (deleted or deactivated)."""

    territory_id: str
    handle: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Rename:
    """At `renamed_at` the account takes `new_handle`; it is registered at `registered_at`."""

    territory_id: str
    old_handle: str
    new_handle: str
    renamed_at: datetime
    registered_at: datetime


def _account(seed: int, territory: Territory) -> SimulatedAccount:
    handle = simulated_handle(territory)
    rng = random.Random(f"{seed}:{handle}")
    population = max(territory.population, 1)
    # Followers grow with population (sub-linearly), with a spread between accounts (×/÷ 1.35
    # for one standard deviation) that keeps population the main driver in every category,
    # even within the narrow population range of the villes moyennes.
    base = 0.6 * population**0.85 * rng.lognormvariate(0.0, 0.3)
    habits = random.Random(f"{seed}:{handle}:habits")
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
        weekend_factor=habits.uniform(0.2, 1.0),
    )


def _draw(seed: int, what: str) -> float:
    """A uniform [0, 1) number fixed by (seed, what): cheap for tens of thousands of draws."""
    digest = hashlib.blake2b(f"{seed}:{what}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def chosen_territories(
    seed: int, territories: Iterable[Territory], share: float
) -> list[Territory]:
    """The `share` of `territories` that get a simulated account (seeded; in id order)."""
    members = list(territories)
    if share <= 0 or not members:
        return []
    if share >= 1:
        return members
    count = max(1, round(share * len(members)))
    ranked = sorted(members, key=lambda t: (_draw(seed, f"share:{t.id}"), t.id))
    chosen = {t.id for t in ranked[:count]}
    return [t for t in members if t.id in chosen]


class SimulatedWorld:
    """The simulated accounts of a registry and their snapshots at any moment.

    `shares` (category -> share of its territories) overrides `categories` (each of them at
    share 1). `dead_links` and `renames` are how many accounts suffer each incident; they
    happen a few weeks after `epoch` (DEAD_LINK_DAYS, RENAME_DAYS), drawn from the seed.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        seed: int,
        real_handles: Iterable[str] = (),
        categories: Iterable[str] = DEFAULT_CATEGORIES,
        epoch: datetime,
        shares: Mapping[str, float] | None = None,
        dead_links: int = 0,
        renames: int = 0,
    ) -> None:
        taken = set(real_handles)  # territory ids that already have a real account
        self.seed = seed
        self.epoch = epoch
        self.shares = dict(shares) if shares is not None else dict.fromkeys(categories, 1.0)
        self.accounts = [
            _account(seed, territory)
            for category, share in self.shares.items()
            for territory in chosen_territories(seed, registry.by_category(category), share)
            if territory.id not in taken
        ]
        self.dead_links: dict[str, DeadLink] = {}
        self.renames: dict[str, Rename] = {}
        self._incidents(dead_links, renames)

    def _incidents(self, dead_links: int, renames: int) -> None:
        rng = random.Random(f"{self.seed}:incidents")
        pool = sorted(self.accounts, key=lambda a: a.territory_id)
        picked = rng.sample(pool, min(len(pool), dead_links + renames))
        for account in picked[:dead_links]:
            since = self.epoch + timedelta(days=rng.uniform(*DEAD_LINK_DAYS))
            self.dead_links[account.territory_id] = DeadLink(
                account.territory_id, account.handle, since.replace(microsecond=0)
            )
        for account in picked[dead_links:]:
            renamed_at = (self.epoch + timedelta(days=rng.uniform(*RENAME_DAYS))).replace(
                microsecond=0
            )
            self.renames[account.territory_id] = Rename(
                account.territory_id,
                account.handle,
                account.handle + RENAMED_SUFFIX,
                renamed_at,
                renamed_at + RENAME_NOTICED_AFTER,
            )

    def account_records(self) -> list[dict]:
        """`obs.accounts.v1` records registering every simulated account (stable event ids)."""
        return [
            build_account_record(
                territory_id=a.territory_id, handle=a.handle, changed_at=self.epoch, simulated=True
            )
            for a in self.accounts
        ]

    def account_changes(self, after: datetime, until: datetime) -> list[dict]:
        """Records of the renames registered in (after, until], in time order."""
        return [
            build_account_record(
                territory_id=r.territory_id,
                handle=r.new_handle,
                changed_at=r.registered_at,
                simulated=True,
            )
            for r in sorted(self.renames.values(), key=lambda r: (r.registered_at, r.territory_id))
            if after < r.registered_at <= until
        ]

    def snapshots(self, moment: datetime) -> list[dict]:
        """One snapshot of every account, observed within the hour before `moment`."""
        return [self.snapshot(account, moment) for account in self.accounts]

    def snapshot(self, account: SimulatedAccount, moment: datetime) -> dict:
        """The snapshot of one account observed at (a jittered time just before) `moment`.

        The handle observed is the one registered at that time; it answers `not_found` once
        the account is dead, or renamed and not yet registered under its new handle.
        """
        jitter = random.Random(f"{self.seed}:{account.handle}:{int(moment.timestamp())}")
        observed = moment.replace(microsecond=0) - timedelta(seconds=jitter.randrange(3600))
        handle, answers = self._handle_at(account, observed)
        if not answers:
            return build_metrics_event(
                handle=handle, observed_at=observed, status="not_found", source="sim"
            )
        days = (observed - self.epoch).total_seconds() / DAY
        followers = max(0, int(account.base_followers * (1 + account.daily_growth) ** days))
        posts = list(self._posts(account, observed, followers))
        return build_metrics_event(
            handle=handle,
            account_id=account.account_id,
            observed_at=observed,
            status="ok",
            source="sim",
            followers=followers,
            follows=account.follows,
            media_count=int(400 + account.posts_per_day * (days + 900)),
            recent_posts=posts,
        )

    def _handle_at(self, account: SimulatedAccount, observed: datetime) -> tuple[str, bool]:
        """The handle registered at `observed` and whether the platform answers for it."""
        dead = self.dead_links.get(account.territory_id)
        if dead is not None and observed >= dead.since:
            return account.handle, False
        rename = self.renames.get(account.territory_id)
        if rename is None or observed < rename.renamed_at:
            return account.handle, True
        if observed < rename.registered_at:
            return rename.old_handle, False
        return rename.new_handle, True

    def _posts(
        self, account: SimulatedAccount, observed: datetime, followers: int
    ) -> Iterator[dict]:
        """Posts published in (observed - 720 h, observed], newest first, at most 200."""
        end = int(observed.timestamp())
        start = end - int(WINDOW.total_seconds())
        out: list[dict] = []
        for day in range(end // DAY, start // DAY - 1, -1):
            rng = random.Random(f"{self.seed}:{account.handle}:day:{day}")
            weekend = (day + 3) % 7 >= 5  # 1970-01-01 (day 0) was a Thursday
            rate = account.posts_per_day * (account.weekend_factor if weekend else 1.0)
            count = _poisson(rng, rate)
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
