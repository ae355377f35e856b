"""Territories side by side: `GET /api/v1/compare?ids=a,b,c` (JSON) and the page
`/comparer?ids=a,b,c` (French, server-rendered, no JavaScript).

Up to six territories of any categories, each read with `TerritoryReader.detail` (the body of
`/api/v1/territories/{id}`), all at once; a comparison item is a subset of that detail, so the
two never disagree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from services.api import schemas
from services.api.charts import Series, chart_legend, multi_line_chart
from services.api.deps import RegistryDep, SearchIndexDep, TerritoriesDep
from services.api.errors import ApiError
from services.api.formatting import (
    INDICATOR_LABELS,
    THIN_SPACE,
    fr_decimal,
    fr_month,
    fr_month_short,
    fr_ordinal,
)
from services.api.params import find_territory
from services.api.read.territory import TerritoryReader
from services.api.responses import HTML_HEADERS, JSON
from services.api.templating import render
from services.common.search import SearchIndex
from services.common.territories import Registry

router = APIRouter()

MAX_COMPARED: Final = 6
# Six of the longest ids (`epci-200000172`) with their commas and some spaces, with room to spare.
MAX_IDS_LENGTH: Final = 200
MAX_ADDED_LENGTH: Final = 100  # what the add form's field accepts (a name, a code, an id)
HISTORY_FIELDS: Final = ("edition", "rank", "total", "score", "followers")

Ids = Annotated[
    str,
    Query(
        max_length=MAX_IDS_LENGTH,
        description="1 to 6 territory ids, comma-separated (`dep-32,com-75056`), any "
        "categories; a repeated id counts once. More than 6 (or more than 200 characters): "
        "422; an unknown id: 404.",
        examples=["dep-32,dep-75,reg-76"],
    ),
]


def _resolve(registry: Registry, search: SearchIndex, wanted: str) -> str | None:
    """The territory a reader typed in the add form: an id, else the best search match."""
    if wanted in registry:
        return wanted
    hits = search.search(wanted, limit=1)
    return hits[0].territory.id if hits else None


def parse_ids(values: Iterable[str]) -> list[str]:
    """The distinct ids of comma-separated lists, in the order first given (422 past six)."""
    ids: list[str] = []
    for value in values:
        for part in value.split(","):
            tid = part.strip()
            if tid and tid not in ids:
                ids.append(tid)
                if len(ids) > MAX_COMPARED:
                    raise ApiError(
                        422,
                        "invalid_parameter",
                        f"query.ids: at most {MAX_COMPARED} distinct territories",
                    )
    return ids


async def read_compared(
    registry: Registry, territories: TerritoryReader, ids: Sequence[str]
) -> list[dict[str, Any]]:
    """The comparison items of these ids, in their order (404 naming the first unknown id);
    the details are read concurrently."""
    found = [find_territory(registry, tid) for tid in ids]
    async with asyncio.TaskGroup() as group:
        reads = [group.create_task(territories.detail(territory)) for territory in found]
    return [compared_item(read.result()) for read in reads]


def compared_item(detail: dict[str, Any]) -> dict[str, Any]:
    """A territory's detail as a comparison item (`schemas.ComparedTerritory`)."""
    current = detail["current"]
    national = detail["ranks"]["national"]
    return {
        "id": detail["id"],
        "name": detail["name"],
        "category": detail["category"],
        "category_label": detail["category_label"],
        "population": detail["population"],
        "handle": detail["handle"],
        "simulated": detail["simulated"],
        "link_status": detail["link_status"],
        "status": detail["status"],
        "as_of": detail["as_of"],
        "rank": {"rank": national["rank"], "total": national["total"]},
        "score": None if current is None else current["score"],
        "indicators": None if current is None else current["indicators"],
        "history": [{name: point[name] for name in HISTORY_FIELDS} for point in detail["history"]],
    }


@router.get(
    "/api/v1/compare",
    tags=["territories"],
    responses=schemas.responses(schemas.Comparison, 404, 422),
)
async def compare(ids: Ids, registry: RegistryDep, territories: TerritoriesDep) -> JSON:
    """Up to six territories side by side, in the order asked: rank in their category, score,
    the five indicators (value and points), account and link status, and rank, score and
    followers in each published edition. The same figures as their details."""
    wanted = parse_ids([ids])
    if not wanted:
        raise ApiError(422, "invalid_parameter", "query.ids: give 1 to 6 territory ids")
    return JSON({"items": await read_compared(registry, territories, wanted)})


# --- the page ---------------------------------------------------------------------------------


def _without(ids: Sequence[str], removed: str) -> str:
    """The page's address without one of its territories."""
    kept = [tid for tid in ids if tid != removed]
    return f"/comparer?ids={','.join(kept)}" if kept else "/comparer"


def _history_chart(
    items: list[dict[str, Any]],
    editions: list[str],
    field: str,
    *,
    chart_id: str,
    title: str,
    what: str,
    value_text: Callable[[float], str],
    **scale: Any,
) -> dict[str, str]:
    """One history (`field` per published edition, a line per territory): its chart, legend
    and spoken description."""
    series = []
    spoken = []
    for item in items:
        by_edition = {point["edition"]: point[field] for point in item["history"]}
        values = tuple(by_edition.get(edition) for edition in editions)
        series.append(Series(item["name"], values))
        figures = ", ".join(
            f"{fr_month(edition)} {'non classé' if value is None else value_text(value)}"
            for edition, value in zip(editions, values, strict=True)
        )
        spoken.append(f"{item['name']} : {figures}")
    description = (
        f"{what}, dans chaque palmarès publié. " + " ; ".join(spoken) + "."
        if editions
        else "Aucun palmarès mensuel publié pour l’instant."
    )
    labels = [(fr_month_short(edition), fr_month(edition)) for edition in editions]
    return {
        "svg": multi_line_chart(
            labels,
            series,
            chart_id=chart_id,
            title=title,
            description=description,
            value_text=value_text,
            **scale,
        ),
        "legend": chart_legend(series, chart_id=chart_id),
    }


def _score_text(value: float) -> str:
    return f"{fr_decimal(value)}{THIN_SPACE}%"


def _score_tick(value: float) -> str:
    return fr_decimal(value, 0 if value == int(value) else 1)


def _rank_text(value: float) -> str:
    return fr_ordinal(int(value))


@router.get("/comparer", response_class=HTMLResponse, include_in_schema=False)
async def compare_page(
    request: Request, registry: RegistryDep, territories: TerritoriesDep, search: SearchIndexDep
) -> Response:
    """Territories side by side: ranks, scores, the five indicators, link status, and their
    rank and score histories overlaid. `ids` may repeat. The add form sends the list kept
    and `ajout`, a name, a code or an id: the best match is added and the page redirected to
    its address (`/comparer?ids=…`), or the page says nothing matched."""
    ids = parse_ids(request.query_params.getlist("ids"))
    wanted = (request.query_params.get("ajout") or "").strip()[:MAX_ADDED_LENGTH]
    not_found = None
    if wanted:
        added = _resolve(registry, search, wanted)
        if added is not None:
            kept = ids if added in ids else parse_ids([*ids, added])
            return RedirectResponse(f"/comparer?{urlencode({'ids': ','.join(kept)})}", 303)
        not_found = wanted
    items = await read_compared(registry, territories, ids)
    editions = sorted({point["edition"] for item in items for point in item["history"]})
    charts = {}
    if items:
        charts = {
            "rank": _history_chart(
                items,
                editions,
                "rank",
                chart_id="comparaison-rangs",
                title="Rang dans chaque palmarès publié",
                what="Rang de chaque territoire dans sa catégorie",
                value_text=_rank_text,
                tick_text=_rank_text,
                inverted=True,
                integer_ticks=True,
            ),
            "score": _history_chart(
                items,
                editions,
                "score",
                chart_id="comparaison-scores",
                title="Score dans chaque palmarès publié",
                what="Score de chaque territoire",
                value_text=_score_text,
                tick_text=_score_tick,
            ),
        }
    history = [
        {
            "edition": edition,
            "cells": [
                next((p for p in item["history"] if p["edition"] == edition), None)
                for item in items
            ],
        }
        for edition in reversed(editions)
    ]
    return render(
        "comparer.html",
        {
            "items": items,
            "ids": ids,
            "removal": {tid: _without(ids, tid) for tid in ids},
            "full": len(ids) >= MAX_COMPARED,
            "max_compared": MAX_COMPARED,
            "labels": INDICATOR_LABELS,
            "charts": charts,
            "history": history,
            "not_found": not_found,
            "page_title": "Comparer des territoires",
        },
        headers=HTML_HEADERS,
    )
