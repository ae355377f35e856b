"""The public pages, in French, rendered on the server: `/`, `/classements/{category}`,
`/territoires/{id}`. They read what the JSON API reads and work without JavaScript; the
standings page follows the category's event stream to refresh itself when JS is there."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse

from services.api.bodies import edition_body, view_items
from services.api.charts import Point, line_chart
from services.api.deps import (
    EditionsDep,
    ReadersDep,
    RegistryDep,
    RepositoryDep,
    ScoredDep,
    TerritoriesDep,
)
from services.api.errors import ApiError
from services.api.formatting import fr_int, fr_month, fr_month_short, fr_ordinal
from services.api.items import breakdown as breakdown_lines
from services.api.items import published_item
from services.api.params import MAX_LIMIT, check_category, check_filters, find_territory
from services.api.responses import HTML_HEADERS
from services.api.templating import render
from services.common.clock import parse_edition
from services.common.contracts import CATEGORIES_BY_ID, CATEGORY_IDS
from services.common.methodology import WEIGHTS
from services.common.territories import Registry

router = APIRouter(include_in_schema=False)

INDICATOR_LABELS = {
    "engagement": "Engagement",
    "reach": "Portée",
    "activity": "Activité",
    "audience": "Audience",
    "ratio": "Ratio abonnés / abonnements",
}
INDICATOR_HELP = {
    "engagement": "Interactions (j’aime et commentaires) par publication, rapportées aux "
    "abonnés, sur 30 jours.",
    "reach": "Abonnés rapportés à la population du territoire.",
    "activity": "Publications par jour sur 30 jours.",
    "audience": "Nombre d’abonnés.",
    "ratio": "Abonnés divisés par abonnements.",
}
PageCode = Annotated[str | None, Query(max_length=3)]
PageEdition = Annotated[str | None, Query(max_length=7)]


def _blank(value: str | None) -> str | None:
    return value if value else None


def _regions(registry: Registry) -> list[dict[str, str]]:
    return sorted(
        ({"code": t.code, "name": t.name} for t in registry.by_category("regions")),
        key=lambda r: r["name"],
    )


def _departements(registry: Registry) -> list[dict[str, str]]:
    return [{"code": t.code, "name": t.name} for t in registry.by_category("departements")]


@router.get("/", response_class=HTMLResponse)
async def home(
    repository: RepositoryDep, editions: EditionsDep, scored: ScoredDep, registry: RegistryDep
) -> Any:
    """The eight categories with their current leaders and the latest edition."""
    categories = list(CATEGORY_IDS)
    summaries = await repository.summaries(categories, leaders=3)
    latest = await editions.latest_published()
    published = (
        {} if latest is None else await repository.published_leaders(categories, latest, leaders=1)
    )
    cards = []
    for summary in summaries:
        leaders = [scored.item(row, row.national_rank) for row in summary.leaders]
        top = published.get(summary.category)
        edition_leader = None
        if top and top.rows:
            entry = top.rows[0]
            edition_leader = published_item(registry[entry["id"]], entry, 1, False)
        cards.append(
            {
                "category": CATEGORIES_BY_ID[summary.category],
                "total": summary.total,
                "as_of": summary.as_of,
                "leaders": leaders,
                "edition_leader": edition_leader,
            }
        )
    as_of = max((s.as_of for s in summaries if s.as_of), default=None)
    return render(
        "home.html",
        {"cards": cards, "latest": latest, "as_of": as_of, "page_title": None},
        headers=HTML_HEADERS,
    )


@router.get("/classements/{category}", response_class=HTMLResponse)
async def standings_page(
    request: Request,
    category: str,
    repository: RepositoryDep,
    registry: RegistryDep,
    scored: ScoredDep,
    editions: EditionsDep,
    readers: ReadersDep,
    edition: PageEdition = None,
    region: PageCode = None,
    departement: PageCode = None,
) -> Any:
    """A category's published list (live, or an edition), filterable by région."""
    check_category(category)
    region, departement, edition = _blank(region), _blank(departement), _blank(edition)
    if region is not None and departement is not None:
        region = None  # the form offers both: the narrower one wins (the API refuses both)
    check_filters(registry, region, departement)
    if edition is not None:
        try:
            parse_edition(edition)
        except ValueError as exc:
            raise ApiError(400, "bad_request", f"édition invalide : {edition!r} (AAAA-MM)") from exc
    info = CATEGORIES_BY_ID[category]
    size = min(info.published_size or MAX_LIMIT, MAX_LIMIT)
    months = await editions.published_months()
    if edition is None:
        page = await repository.page(
            category, None, offset=0, limit=size, region=region, departement=departement
        )
        body: dict[str, Any] = {
            "edition": None,
            "status": "live",
            "as_of": page.as_of,
            "published_at": None,
            "total": page.total,
            "movement_since": page.latest_edition,
            "items": view_items(scored, page, 0),
        }
        seq = page.seq or 0
    else:
        edition_page = await repository.edition(
            category, edition, offset=0, limit=size, region=region, departement=departement
        )
        view = edition_page.provisional
        if view is not None and view.total == 0 and not await editions.exists(edition):
            raise ApiError(
                404, "unknown_edition", f"Aucune édition {fr_month(edition)} : pas de données."
            )
        body = await edition_body(
            readers.accounts,
            registry,
            scored,
            category,
            edition,
            edition_page,
            limit=size,
            offset=0,
        )
        seq = None
    stream = None
    if seq is not None:
        stream = f"/api/v1/rank-changes/stream?category={category}&after_seq={seq}"
    place = None
    if region is not None:
        place = registry[f"reg-{region}"].name
    elif departement is not None:
        place = registry[f"dep-{departement}"].name
    return render(
        "classement.html",
        {
            "category": info,
            "body": body,
            "size": size,
            "months": months,
            "edition": edition,
            "region": region,
            "departement": departement,
            "place": place,
            "regions": _regions(registry),
            "departements": _departements(registry),
            "filter_departements": category not in ("regions", "departements"),
            "filter_regions": category != "regions",
            "filtered": region is not None or departement is not None,
            "stream": stream,
            "page_title": f"{info.label} — classement",
        },
        headers=HTML_HEADERS,
    )


def _charts(detail: dict[str, Any]) -> dict[str, str]:
    """The rank and follower histories as inline SVG (published editions, then now)."""
    history = detail["history"]
    current = detail["current"]
    rank_points = [
        Point(
            fr_month_short(h["edition"]),
            f"Palmarès de {fr_month(h['edition'])}",
            h["rank"],
        )
        for h in history
    ]
    follower_points = [
        Point(
            fr_month_short(h["edition"]),
            f"Palmarès de {fr_month(h['edition'])}",
            h["followers"],
        )
        for h in history
    ]
    rank_points.append(Point("auj.", "Aujourd’hui", detail["ranks"]["national"]["rank"]))
    follower_points.append(
        Point("auj.", "Aujourd’hui", None if current is None else current["followers"])
    )
    name = detail["name"]
    ranks = [p.value for p in rank_points if p.value is not None]
    followers = [p.value for p in follower_points if p.value is not None]
    rank_desc = (
        f"Rang de {name} dans chaque palmarès publié puis aujourd’hui : "
        + ", ".join(f"{p.long_label} {fr_ordinal(int(p.value))}" for p in rank_points if p.value)
        if ranks
        else f"Aucun rang connu pour {name}."
    )
    follower_desc = (
        f"Abonnés de {name} dans chaque palmarès publié puis aujourd’hui : "
        + ", ".join(
            f"{p.long_label} {fr_int(p.value)}" for p in follower_points if p.value is not None
        )
        if followers
        else f"Aucun nombre d’abonnés connu pour {name}."
    )
    return {
        "rank": line_chart(
            rank_points,
            chart_id="rank-chart",
            title=f"Évolution du rang de {name}",
            description=rank_desc,
            value_text=lambda v: fr_ordinal(int(v)),
            tick_text=lambda v: fr_ordinal(int(v)),
            inverted=True,
            integer_ticks=True,
        ),
        "followers": line_chart(
            follower_points,
            chart_id="followers-chart",
            title=f"Évolution du nombre d’abonnés de {name}",
            description=follower_desc,
            value_text=lambda v: f"{fr_int(v)} abonnés",
            tick_text=fr_int,
            floor=0,
        ),
    }


@router.get("/territoires/{territory_id}", response_class=HTMLResponse)
async def territory_page(
    territory_id: str, registry: RegistryDep, territories: TerritoriesDep
) -> Any:
    """A territory: ranks, the five-indicator breakdown, rank and follower histories."""
    territory = find_territory(registry, territory_id)
    detail = await territories.detail(territory)
    lines = []
    if detail["current"] is not None:
        for line in breakdown_lines(detail["current"]["indicators"]):
            name = line["indicator"]
            lines.append(
                {
                    **line,
                    "label": INDICATOR_LABELS[name],
                    "help": INDICATOR_HELP[name],
                    "contribution": line["points"] * line["weight"] / sum(WEIGHTS.values()),
                }
            )
    return render(
        "territoire.html",
        {
            "t": detail,
            "category": CATEGORIES_BY_ID[detail["category"]],
            "lines": lines,
            "weight_total": sum(WEIGHTS.values()),
            "charts": _charts(detail),
            "has_history": detail["current"] is not None
            or any(h["rank"] is not None for h in detail["history"]),
            "page_title": detail["name"],
        },
        headers=HTML_HEADERS,
    )
