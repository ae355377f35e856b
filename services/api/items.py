"""Standings items as the API serves them (ARCHITECTURE "API"), built from what Redis holds.

A scorer entry holds a snapshot summary; its score and breakdown are recomputed with the pure
methodology and the territory's population. That part depends only on the stored bytes and the
territory, so it is memoised by them (content-addressed: a changed entry is another key, so
the cache can never serve a stale score). Rank, link status and movement are per read.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

import orjson

from services.api.read.standings import StandingsRow
from services.common.methodology import WEIGHTS
from services.common.territories import Registry, Territory

_CACHE_SIZE: Final = 20_000
_LINKS: Final = {None: b"null", "ok": b'"ok"', "suspect": b'"suspect"', "dead": b'"dead"'}


class ScoredEntries:
    """A bounded LRU of (territory id, stored entry) -> the item's static fields."""

    def __init__(self, registry: Registry, size: int = _CACHE_SIZE) -> None:
        self.registry = registry
        self.size = size
        self._cache: OrderedDict[tuple[str, bytes], dict[str, Any]] = OrderedDict()
        self._json: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()

    def static_fields(self, row: StandingsRow) -> dict[str, Any]:
        """id, code, name, score, handle, simulated, observed_at, likes_hidden, indicators."""
        key = (row.territory_id, row.raw)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        territory = self.registry[row.territory_id]
        entry = row.entry
        score = entry.score(territory.population)
        fields = {
            "id": territory.id,
            "code": territory.code,
            "name": territory.name,
            "score": score.score,
            "handle": entry.handle,
            "simulated": entry.simulated,
            "observed_at": entry.summary.observed_at,
            "likes_hidden": entry.summary.likes_hidden,
            "indicators": score.indicators_dict(),
        }
        self._cache[key] = fields
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return fields

    def static_json(self, row: StandingsRow) -> bytes:
        """The static fields as JSON members (`"id":…,"indicators":{…}`), memoised."""
        key = (row.territory_id, row.raw)
        cached = self._json.get(key)
        if cached is not None:
            self._json.move_to_end(key)
            return cached
        members = orjson.dumps(self.static_fields(row))[1:-1]
        self._json[key] = members
        if len(self._json) > self.size:
            self._json.popitem(last=False)
        return members

    def item_json(self, row: StandingsRow, rank: int) -> bytes:
        """`item(row, rank)` as JSON, assembled from memoised bytes (the API's hot path)."""
        before = row.published_rank
        link = _LINKS.get(row.link_status) or orjson.dumps(row.link_status)
        movement = b"null" if before is None else b"%d" % (before - row.national_rank)
        return b'{"rank":%d,"national_rank":%d,%b,"link_status":%b,"movement":%b}' % (
            rank,
            row.national_rank,
            self.static_json(row),
            link,
            movement,
        )

    def item(self, row: StandingsRow, rank: int) -> dict[str, Any]:
        """The standings item of a scorer-view row at `rank` in the (filtered) list."""
        fields = self.static_fields(row)
        before = row.published_rank
        return {
            "rank": rank,
            "national_rank": row.national_rank,
            **fields,
            "link_status": row.link_status,
            "movement": None if before is None else before - row.national_rank,
        }


def published_item(
    territory: Territory, entry: dict[str, Any], rank: int, simulated: bool
) -> dict[str, Any]:
    """The standings item of a published edition's entry at `rank` in the (filtered) list."""
    return {
        "rank": rank,
        "national_rank": entry["rank"],
        "id": territory.id,
        "code": territory.code,
        "name": territory.name,
        "score": entry["score"],
        "handle": entry["handle"],
        "simulated": simulated,
        "link_status": entry["link_status"],
        "observed_at": entry["observed_at"],
        "movement": entry["movement"],
        "streak": entry["streak"],
        "likes_hidden": None,
        "indicators": entry["indicators"],
    }


def breakdown(indicators: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The five indicators in weight order, each with its value, points and weight."""
    return [
        {"indicator": name, "weight": weight, **indicators[name]}
        for name, weight in WEIGHTS.items()
    ]
