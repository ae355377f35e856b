"""A territory's detail: where it ranks now (nationally, in its régions and départements),
among whom (percentile, the neighbours above and below), why (the five-indicator breakdown),
what it takes to pass the next one (services/common/gap.py), its follower gains, its link
status, and its history per published edition with its records.

Two reads: the global list of published editions and the territory's account (one pipeline on
the `{meta}` slot), then one pipeline of everything about the territory's category in one
script on the category's slot (services/common/view/scripts/reader.py READ_TERRITORY) and the
account's month summaries (their bucket, by the handle the first read gave).
"""

from __future__ import annotations

from typing import Any, Final, cast

from redis.asyncio import Redis

from services.api.items import breakdown
from services.common.clock import from_epoch
from services.common.contracts import CATEGORIES_BY_ID, PLATFORM_INSTAGRAM
from services.common.gap import gaps_to_pass
from services.common.history import decode_raws, epoch_of
from services.common.methodology import GAIN_PERIODS_DAYS, follower_gains
from services.common.territories import KIND_DEPARTEMENT, KIND_REGION, Registry, Territory
from services.common.view.entries import StoredEntry, decode_entry, decode_month_summaries
from services.common.view.keys import ViewKeys
from services.common.view.scripts import reader
from services.common.view.scripts.reader import Around, TerritoryReply
from services.common.view.values import AccountLink, EditionRecord, decode_editions

# The history covers at most this many published editions (the latest ones): ten years.
MAX_HISTORY: Final = 120
# Neighbours shown on each side of the territory, in every scope.
NEIGHBOURS: Final = 3


def percentile(rank: int | None, total: int) -> float | None:
    """The share (%, one decimal) of the scope's other ranked territories it ranks ahead of:
    100 when alone, None when not ranked."""
    if rank is None:
        return None
    if total <= 1:
        return 100.0
    return round(100 * (total - rank) / (total - 1), 1)


def records(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Its best rank in the published editions of its history (and where it reached it) and
    how many of them it led."""
    ranked = [(point["rank"], point["edition"]) for point in history if point["rank"] is not None]
    best = min((rank for rank, _ in ranked), default=None)
    return {
        "best_rank": None
        if best is None
        else {"rank": best, "editions": [month for rank, month in ranked if rank == best]},
        "months_first": sum(1 for rank, _ in ranked if rank == 1),
        "published": len(history),
    }


class TerritoryReader:
    """Reads one territory's detail."""

    def __init__(self, redis: Redis, rk: ViewKeys, registry: Registry) -> None:
        self.redis = redis
        self.rk = rk
        self.registry = registry
        self._read = reader.READ_TERRITORY.bind(redis)

    def _geo_levels(self, territory: Territory) -> list[tuple[str, str]]:
        """(level, code) of the groups the territory ranks in besides the nation."""
        levels: list[tuple[str, str]] = []
        if territory.kind != KIND_REGION:
            levels += [("reg", code) for code in territory.regions]
        if territory.kind not in (KIND_REGION, KIND_DEPARTEMENT):
            levels += [("dep", code) for code in territory.departements]
        return levels

    async def detail(self, territory: Territory) -> dict[str, Any]:
        """The JSON body of `GET /api/v1/territories/{id}`."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.rk.EDITIONS_KEY)
            pipe.hget(self.rk.ACCOUNTS_KEY, territory.id)
            editions_raw, account_raw = await pipe.execute()
        editions = decode_editions(editions_raw)
        months = sorted(editions)[-MAX_HISTORY:]
        levels = self._geo_levels(territory)
        account = None if account_raw is None else AccountLink.decode(account_raw)
        handle = None if account is None else account.handle
        async with self.redis.pipeline(transaction=False) as pipe:
            await self._read.queue(
                pipe,
                reader.territory_keys(self.rk, territory.category, levels, months),
                [territory.id, len(levels), len(months), NEIGHBOURS],
            )
            if handle is not None:
                pipe.hget(self.rk.summaries_key(PLATFORM_INSTAGRAM, handle), handle)
                pipe.hget(self.rk.account_history_key(PLATFORM_INSTAGRAM, handle), handle)
            replies = await pipe.execute()
        reply = self._read.decode(replies[0])
        summaries_raw, days_raw = replies[1:3] if handle is not None else (None, None)
        earlier: list[tuple[str, int]] = []
        if summaries_raw:
            earlier = [
                (summary.observed_at, summary.followers)
                for summary in decode_month_summaries(cast(bytes, summaries_raw)).values()
            ]
        if days_raw:  # the account's daily points (docs/decisions.md §44)
            earlier += [
                (from_epoch(epoch_of(p.day, p.second)), p.followers)
                for p in decode_raws(cast(bytes, days_raw))
            ]
        return self._assemble(
            territory,
            reply,
            geo=[
                (level, code, rank.position, rank.total, rank.around)
                for (level, code), rank in zip(levels, reply.geo, strict=True)
            ],
            history=[
                (month, editions[month], point.rank, point.entry, point.total)
                for month, point in zip(months, reply.history, strict=True)
            ],
            account=account,
            earlier=earlier,
        )

    def _neighbours(self, around: Around | None) -> dict[str, list[dict[str, Any]]] | None:
        """The neighbours of one scope as the API gives them (scores for their population)."""
        if around is None:
            return None
        return {
            side: [
                {
                    "rank": neighbour.rank,
                    "national_rank": neighbour.national_rank,
                    "id": neighbour.territory_id,
                    "name": self.registry[neighbour.territory_id].name,
                    "score": self._score(neighbour.territory_id, neighbour.entry),
                }
                for neighbour in neighbours
            ]
            for side, neighbours in (("above", around.above), ("below", around.below))
        }

    def _score(self, territory_id: str, entry: StoredEntry) -> float:
        return entry.score(self.registry[territory_id].population).score

    def _name(self, level: str, code: str) -> str:
        territory = self.registry.get(f"{level}-{code}")
        return territory.name if territory is not None else code

    def _assemble(
        self,
        territory: Territory,
        reply: TerritoryReply,
        *,
        geo: list[tuple[str, str, int | None, int, Around | None]],
        history: list[tuple[str, EditionRecord, int | None, Any, int]],
        account: AccountLink | None,
        earlier: list[tuple[str, int]],
    ) -> dict[str, Any]:
        national_rank, published_rank = reply.national_rank, reply.published_rank
        current: dict[str, Any] | None = None
        handle, simulated = (
            (None, False) if account is None else (account.handle, account.simulated)
        )
        entry = None if reply.entry is None else decode_entry(reply.entry)
        if entry is not None:
            score = entry.score(territory.population)
            handle, simulated = entry.handle, entry.simulated
            current = {
                "score": score.score,
                "observed_at": entry.summary.observed_at,
                "likes_hidden": entry.summary.likes_hidden,
                "followers": entry.summary.followers,
                "follows": entry.summary.follows,
                "indicators": score.indicators_dict(),
                "breakdown": breakdown(score.indicators_dict()),
            }
        if national_rank is not None:
            status = "ranked"
        elif current is not None:
            status = "inactive"
        else:
            status = "unranked"
        national = self._neighbours(reply.around)
        ranks: dict[str, Any] = {
            "national": {
                "rank": national_rank,
                "total": reply.size,
                "percentile": percentile(national_rank, reply.size),
                "neighbours": national,
            },
            "regions": [],
            "departements": [],
        }
        for level, code, position, total, around in geo:
            group = "regions" if level == "reg" else "departements"
            ranks[group].append(
                {
                    "code": code,
                    "name": self._name(level, code),
                    "rank": position,
                    "total": total,
                    "percentile": percentile(position, total),
                    "neighbours": self._neighbours(around),
                }
            )
        following = None
        if national is not None and national["above"]:
            above = national["above"][-1]
            following = {key: above[key] for key in ("id", "name", "rank", "score")}
        gaps = None
        if following is not None and entry is not None:
            gaps = {
                indicator: gap.to_dict()
                for indicator, gap in gaps_to_pass(
                    entry.summary,
                    territory.population,
                    territory.id,
                    following["score"],
                    following["id"],
                ).items()
            }
        movement = (
            None
            if published_rank is None or national_rank is None
            else published_rank - national_rank
        )
        history_points = [
            _history_point(month, record, rank, published, total)
            for month, record, rank, published, total in history
        ]
        return {
            "id": territory.id,
            "kind": territory.kind,
            "code": territory.code,
            "name": territory.name,
            "category": territory.category,
            "category_label": CATEGORIES_BY_ID[territory.category].label,
            "population": territory.population,
            "regions": list(territory.regions),
            "departements": list(territory.departements),
            "handle": handle,
            "simulated": simulated,
            "link_status": reply.link_status,
            "status": status,
            "as_of": reply.as_of,
            "ranks": ranks,
            "movement": movement,
            "movement_since": reply.latest_edition,
            "current": current,
            "next": following,
            "gaps": gaps,
            "follower_gains": _gains(entry, account, earlier, history_points),
            "history": history_points,
            "records": records(history_points),
        }


def _gains(
    entry: StoredEntry | None,
    account: AccountLink | None,
    earlier: list[tuple[str, int]],
    history: list[dict[str, Any]],
) -> list[dict[str, Any] | None]:
    """Follower gains of the account over 7, 30, 90 and 365 days, against its month summaries
    and daily points (`earlier`) and the snapshots the published editions ranked it on while
    it used this handle: the summaries of a published month are dropped once a later month
    has one (docs/redis.md), the editions keep theirs; daily points thin out to one a week
    after 90 days."""
    handle = None if account is None else account.handle
    if entry is None or handle is None:
        return [None for _ in GAIN_PERIODS_DAYS]
    published = [
        (point["observed_at"], point["followers"])
        for point in history
        if point["handle"] == handle
        and point["observed_at"] is not None
        and point["followers"] is not None
    ]
    summary = entry.summary
    gains = follower_gains(summary.observed_at, summary.followers, earlier + published)
    return [None if gain is None else gain.to_dict() for gain in gains]


def _history_point(
    month: str, record: EditionRecord, rank: int | None, published: Any, total: int
) -> dict[str, Any]:
    """One published edition as the territory lived it (rank and followers at publication)."""
    followers = None
    if published is not None:
        audience = published["indicators"]["audience"]["value"]
        followers = None if audience is None else int(audience)
    return {
        "edition": month,
        "published_at": record.published_at,
        "rank": rank,
        "total": total,
        "score": None if published is None else published["score"],
        "followers": followers,
        "movement": None if published is None else published["movement"],
        "streak": None if published is None else published["streak"],
        "handle": None if published is None else published["handle"],
        "observed_at": None if published is None else published["observed_at"],
        "link_status": None if published is None else published["link_status"],
    }
