"""The public pages, in French, rendered on the server: `/`, `/classements/{category}`,
`/territoires/{id}`. They read what the JSON API reads and work without JavaScript; the
standings page follows the category's event stream to refresh itself when JS is there."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse

from services.api import formatting
from services.api.badge import embed
from services.api.bodies import edition_body, history_body, view_items
from services.api.charts import Point, line_chart
from services.api.deps import (
    EditionsDep,
    HistoryDep,
    ReadersDep,
    RegistryDep,
    RepositoryDep,
    ScoredDep,
    TerritoriesDep,
)
from services.api.errors import ApiError
from services.api.formatting import (
    INDICATOR_HELP,
    INDICATOR_LABELS,
    fr_date,
    fr_day,
    fr_day_short,
    fr_decimal,
    fr_int,
    fr_month,
    fr_month_short,
    fr_ordinal,
)
from services.api.items import breakdown as breakdown_lines
from services.api.items import published_item
from services.api.params import MAX_OFFSET, check_category, check_filters, find_territory
from services.api.responses import HTML_HEADERS
from services.api.templating import render
from services.common.clock import parse_edition
from services.common.contracts import CATEGORIES_BY_ID, CATEGORY_IDS
from services.common.methodology import GAIN_PERIODS_DAYS, WEIGHTS
from services.common.territories import Registry

router = APIRouter(include_in_schema=False)

PageCode = Annotated[str | None, Query(max_length=3)]
PageEdition = Annotated[str | None, Query(max_length=7)]
PageNumber = Annotated[int, Query(ge=1)]
PAGE_SIZE: Final = 100  # territories per page of a list


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


def _pagination(
    category: str, number: int, pages: int, filters: dict[str, str | None]
) -> dict[str, Any] | None:
    """The links of page `number` of a list of `pages` (None for a single page): first,
    previous, the pages around this one, next and last, each keeping the filters."""
    if pages <= 1:
        return None
    kept = {name: value for name, value in filters.items() if value is not None}

    def url(n: int) -> str:
        query = urlencode(kept | ({"page": str(n)} if n > 1 else {}))
        return f"/classements/{category}" + (f"?{query}" if query else "")

    around = range(max(1, number - 2), min(pages, number + 2) + 1)
    return {
        "number": number,
        "pages": pages,
        "first": url(1) if number > 1 else None,
        "prev": url(number - 1) if number > 1 else None,
        "next": url(number + 1) if number < pages else None,
        "last": url(pages) if number < pages else None,
        "around": [{"number": n, "url": url(n), "current": n == number} for n in around],
        "gap_before": around.start > 1,
        "gap_after": around.stop <= pages,
    }


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
    page: PageNumber = 1,
) -> Any:
    """A category's ranking, 100 territories a page: live (every ranked territory) or an
    edition (its published list), filterable by région or département."""
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
    # An edition publishes its top `published_size` only; the live ranking is shown whole.
    cap = None if edition is None else info.published_size
    # No category reaches MAX_OFFSET: a page beyond it is beyond the last (answered below).
    offset = min((page - 1) * PAGE_SIZE, MAX_OFFSET)
    limit = PAGE_SIZE if cap is None else max(1, min(PAGE_SIZE, cap - offset))
    months = await editions.published_months()
    if edition is None:
        live = await repository.page(
            category, None, offset=offset, limit=limit, region=region, departement=departement
        )
        body: dict[str, Any] = {
            "edition": None,
            "status": "live",
            "as_of": live.as_of,
            "published_at": None,
            "total": live.total,
            "movement_since": live.latest_edition,
            "items": view_items(scored, live, offset),
        }
        seq = live.seq or 0
    else:
        edition_page = await repository.edition(
            category, edition, offset=offset, limit=limit, region=region, departement=departement
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
            limit=limit,
            offset=offset,
        )
        seq = None
    shown = body["total"] if cap is None else min(body["total"], cap)
    pages = max(1, -(-shown // PAGE_SIZE))
    if page > pages:
        raise ApiError(
            404,
            "page_out_of_range",
            f"La page {page} n’existe pas : cette liste compte {pages} page"
            f"{'s' if pages > 1 else ''} ({fr_int(shown)} territoire{'s' if shown > 1 else ''}).",
        )
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
            "published_size": cap,
            "pagination": _pagination(
                category,
                page,
                pages,
                {"edition": edition, "region": region, "departement": departement},
            ),
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
            "page_title": f"{info.label} — classement"
            + (f" (page {page} sur {pages})" if page > 1 else ""),
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


def _daily_charts(body: dict[str, Any]) -> dict[str, str]:
    """The daily history as inline SVG: score, rank that day (1st at the top), followers."""
    points = body["points"]
    name = body["name"]

    def series(field: str) -> list[Point]:
        return [
            Point(
                fr_day_short(p["date"]),
                ("Semaine du " if p["period"] == "week" else "") + fr_day(p["date"]),
                p[field],
            )
            for p in points
        ]

    def summary(what: str, field: str, text: Callable[[float], str]) -> str:
        values = [p for p in points if p[field] is not None]
        if not values:
            return f"Aucune donnée quotidienne pour {name}."
        first, last = values[0], values[-1]
        best = (
            max(values, key=lambda p: p[field])
            if field != "rank"
            else min(values, key=lambda p: p[field])
        )
        return (
            f"{what} de {name} chaque jour, du {fr_day(first['date'])} au {fr_day(last['date'])} : "
            f"{text(first[field])} au début, {text(last[field])} à la fin, "
            f"au mieux {text(best[field])} le {fr_day(best['date'])}. "
            "Les chiffres de chaque jour sont dans le tableau qui suit."
        )

    score_text = fr_decimal
    scores = [p["score"] for p in points]
    spread = max(scores) - min(scores)
    # Enough decimals that the score axis's ticks differ (ticks step by about a fifth of it).
    digits = 0 if spread >= 10 else 1 if spread >= 1 else 2
    return {
        "score": line_chart(
            series("score"),
            chart_id="daily-score-chart",
            title=f"Score de {name}, jour après jour",
            description=summary("Score", "score", score_text),
            value_text=lambda v: f"{score_text(v)} points",
            tick_text=lambda v: fr_decimal(v, digits),
        ),
        "rank": line_chart(
            series("rank"),
            chart_id="daily-rank-chart",
            title=f"Rang de {name}, jour après jour",
            description=summary("Rang", "rank", lambda v: fr_ordinal(int(v))),
            value_text=lambda v: fr_ordinal(int(v)),
            tick_text=lambda v: fr_ordinal(int(v)),
            inverted=True,
            integer_ticks=True,
        ),
        "followers": line_chart(
            series("followers"),
            chart_id="daily-followers-chart",
            title=f"Abonnés de {name}, jour après jour",
            description=summary("Nombre d’abonnés", "followers", fr_int),
            value_text=lambda v: f"{fr_int(v)} abonnés",
            tick_text=fr_int,
            floor=0,
        ),
    }


def _plural(count: float, word: str) -> str:
    """French agreement: singular below 2 (`1,5 point`, `2 points`)."""
    return word if abs(count) < 2 else f"{word}s"


def _percentile_text(scope: dict[str, Any], noun: str) -> str:
    """`devant 97,3 % des départements` (`seul territoire classé` when alone)."""
    if scope["total"] == 1:
        return "seul territoire classé"
    percent = formatting.fr_decimal(scope["percentile"], 1)
    return f"devant {percent}{formatting.THIN_SPACE}% des {noun}"


def _around(detail: dict[str, Any], noun: str) -> list[dict[str, Any]]:
    """Each scope where it is ranked: its percentile sentence and the rows of its
    neighbourhood (3 above, itself, 3 below)."""
    national = detail["ranks"]["national"]
    scopes = [("Classement national", national)]
    scopes += [(f"En {g['name']}", g) for g in detail["ranks"]["regions"]]
    scopes += [(f"Dans le département {g['name']}", g) for g in detail["ranks"]["departements"]]
    score = None if detail["current"] is None else detail["current"]["score"]
    out = []
    for label, scope in scopes:
        neighbours = scope["neighbours"]
        if scope["rank"] is None or neighbours is None:
            continue
        itself = {
            "rank": scope["rank"],
            "national_rank": national["rank"],
            "id": detail["id"],
            "name": detail["name"],
            "score": score,
            "itself": True,
        }
        rows = [*neighbours["above"], itself, *neighbours["below"]]
        out.append(
            {
                "label": label,
                "sentence": _percentile_text(scope, noun),
                "rank": scope["rank"],
                "total": scope["total"],
                "rows": [{"itself": False, **row} for row in rows],
                "geo": scope is not national,
            }
        )
    return out


def _lever_text(indicator: str, gap: dict[str, Any]) -> str:
    """One indicator's lever in plain French."""
    if not gap["possible"]:
        return "impossible par ce seul levier"
    steps = gap["steps"]
    if steps == 0:
        return "déjà devant"
    if gap["lever"] == "posts":
        return (
            f"+{steps} {_plural(steps, 'publication')} sur 30 jours "
            f"(de {gap['before']} à {gap['after']})"
        )
    if gap["lever"] == "engagement":
        points = steps / 10
        return (
            f"+{formatting.fr_decimal(points, 1)} {_plural(points, 'point')} de taux "
            f"d’engagement (de {formatting.fr_percent(gap['before'])} "
            f"à {formatting.fr_percent(gap['after'])})"
        )
    added = gap["after"] - gap["before"]
    return f"+{steps}{formatting.THIN_SPACE}% d’abonnés (+{fr_int(added)})"


def _levers(detail: dict[str, Any]) -> list[dict[str, str]]:
    gaps = detail["gaps"] or {}
    return [
        {"indicator": name, "label": INDICATOR_LABELS[name], "text": _lever_text(name, gap)}
        for name, gap in gaps.items()
    ]


def _gain_text(days: int, gain: dict[str, Any] | None) -> str:
    """`+1 234 abonnés en 30 jours (depuis le 31 octobre 2026)`."""
    if gain is None:
        return f"En {days} jours : données insuffisantes"
    count = gain["gain"]
    sign = "+" if count > 0 else "−" if count < 0 else ""
    return (
        f"{sign}{fr_int(abs(count))} {_plural(count, 'abonné')} en {days} jours "
        f"(depuis le {fr_date(gain['since'])})"
    )


def _gains(detail: dict[str, Any]) -> list[str]:
    return [
        _gain_text(days, gain)
        for days, gain in zip(GAIN_PERIODS_DAYS, detail["follower_gains"], strict=True)
    ]


def _records(detail: dict[str, Any]) -> list[str]:
    """Best rank and months at #1 in the published editions, as sentences."""
    records = detail["records"]
    published = records["published"]
    if published == 0:
        return ["Aucun palmarès mensuel publié pour l’instant."]
    best = records["best_rank"]
    if best is None:
        return ["Classé dans aucun palmarès mensuel publié pour l’instant."]
    months = [fr_month(month) for month in best["editions"]]
    where = months[0] if len(months) == 1 else ", ".join(months[:-1]) + " et " + months[-1]
    first = records["months_first"]
    lines = [f"Meilleur rang dans un palmarès publié : {fr_ordinal(best['rank'])} ({where})."]
    if first == 0:
        lines.append("Jamais en tête d’un palmarès publié.")
    else:  # `palmarès` is invariable
        lines.append(
            f"En tête de {first} palmarès {_plural(first, 'mensuel')} publiés sur {published}."
            if first > 1
            else f"En tête de 1 palmarès mensuel publié sur {published}."
        )
    return lines


@router.get("/territoires/{territory_id}", response_class=HTMLResponse)
async def territory_page(
    request: Request,
    territory_id: str,
    registry: RegistryDep,
    territories: TerritoriesDep,
    history: HistoryDep,
) -> Any:
    """A territory: ranks and who is around it, the five-indicator breakdown, what it takes
    to pass the next one, follower gains, records, rank and follower histories, its feed and
    the badge to show on its own site."""
    territory = find_territory(registry, territory_id)
    detail, daily_history = await asyncio.gather(
        territories.detail(territory), history.read(territory)
    )
    daily = history_body(daily_history)
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
            "daily": daily,
            "daily_charts": _daily_charts(daily) if daily["points"] else None,
            "has_history": detail["current"] is not None
            or any(h["rank"] is not None for h in detail["history"]),
            "around": _around(detail, CATEGORIES_BY_ID[detail["category"]].label.lower()),
            "levers": _levers(detail),
            "gains": _gains(detail),
            "records": _records(detail),
            "page_title": detail["name"],
            "embed": embed(str(request.base_url), territory.id, territory.name),
        },
        headers=HTML_HEADERS,
    )
