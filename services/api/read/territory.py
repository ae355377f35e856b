"""A territory's detail: where it ranks now (nationally, in its régions and départements),
why (the five-indicator breakdown), its link status, and its history per published edition.

Two reads: the global list of published editions and the territory's account (one pipeline on
the `{meta}` slot), then everything about the territory's category in one script on the
category's slot (services/common/view/scripts/reader.py READ_TERRITORY).
"""

from __future__ import annotations

from typing import Any, Final

from redis.asyncio import Redis

from services.api.items import breakdown
from services.common.contracts import CATEGORIES_BY_ID
from services.common.territories import KIND_DEPARTEMENT, KIND_REGION, Registry, Territory
from services.common.view.entries import decode_entry
from services.common.view.keys import ViewKeys
from services.common.view.scripts import reader
from services.common.view.scripts.reader import TerritoryReply
from services.common.view.values import AccountLink, EditionRecord, decode_editions

# The history covers at most this many published editions (the latest ones): ten years.
MAX_HISTORY: Final = 120


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
        reply = await self._read(
            reader.territory_keys(self.rk, territory.category, levels, months),
            [territory.id, len(levels), len(months)],
        )
        account = None if account_raw is None else AccountLink.decode(account_raw)
        return self._assemble(
            territory,
            reply,
            geo=[
                (level, code, rank.position, rank.total)
                for (level, code), rank in zip(levels, reply.geo, strict=True)
            ],
            history=[
                (month, editions[month], point.rank, point.entry, point.total)
                for month, point in zip(months, reply.history, strict=True)
            ],
            account=account,
        )

    def _name(self, level: str, code: str) -> str:
        territory = self.registry.get(f"{level}-{code}")
        return territory.name if territory is not None else code

    def _assemble(
        self,
        territory: Territory,
        reply: TerritoryReply,
        *,
        geo: list[tuple[str, str, int | None, int]],
        history: list[tuple[str, EditionRecord, int | None, Any, int]],
        account: AccountLink | None,
    ) -> dict[str, Any]:
        national_rank, published_rank = reply.national_rank, reply.published_rank
        current: dict[str, Any] | None = None
        handle, simulated = (
            (None, False) if account is None else (account.handle, account.simulated)
        )
        if reply.entry is not None:
            entry = decode_entry(reply.entry)
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
        ranks: dict[str, Any] = {
            "national": {"rank": national_rank, "total": reply.size},
            "regions": [],
            "departements": [],
        }
        for level, code, position, total in geo:
            group = "regions" if level == "reg" else "departements"
            ranks[group].append(
                {"code": code, "name": self._name(level, code), "rank": position, "total": total}
            )
        movement = (
            None
            if published_rank is None or national_rank is None
            else published_rank - national_rank
        )
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
            "history": [
                _history_point(month, summary, rank, entry, total)
                for month, summary, rank, entry, total in history
            ],
        }


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
        "link_status": None if published is None else published["link_status"],
    }
