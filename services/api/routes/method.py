"""The method in the open: `/methodologie` (docs/methodology.md rendered, and a calculator that
scores five raw figures with the rankings' own functions), `/couverture` (how many territories
have an account, are measured, have a dead link, per category and per région) and its JSON
twin `GET /api/v1/coverage`."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from services.api import schemas
from services.api.calculator_form import (
    EXAMPLE,
    FIELD_NAMES,
    FIELDS,
    calculate,
    read_form,
    result_lines,
)
from services.api.coalesce import RenderedBodies
from services.api.deps import ReadersDep, RedisDep, RegistryDep
from services.api.formatting import fr_decimal, fr_int, fr_percent
from services.api.methodology_doc import methodology_document
from services.api.read.coverage import CoverageReading, read_coverage
from services.api.responses import HTML_HEADERS, JSON
from services.api.schemas_coverage import CoverageBody
from services.api.templating import render
from services.common.contracts import CATEGORIES_BY_ID, METHODOLOGY_VERSION
from services.common.coverage import Counts
from services.common.methodology import WEIGHTS

router = APIRouter(tags=["coverage"])

# Categories whose noun is masculine (`départements mesurés`); the others are feminine.
MASCULINE: Final = frozenset({"departements"})
COVERAGE_PAGE: Final = ("page", "/couverture")  # its key among the app's rendered bodies


@router.get("/methodologie", response_class=HTMLResponse, include_in_schema=False)
async def methodology_page(request: Request) -> Any:
    """The methodology document and the calculator. Without any of the calculator's fields
    the form holds the worked example and shows its result; with them, their result, or a
    French message next to each field that cannot be used (422)."""
    query = request.query_params
    asked = any(name in query for name in FIELD_NAMES)
    reading = read_form({name: query.get(name) for name in FIELD_NAMES} if asked else EXAMPLE)
    result = None
    if reading.values is not None:
        score = calculate(reading.values)
        result = {
            "lines": result_lines(score),
            "score": score.score,
            "score_text": fr_decimal(score.score, 4),
        }
    fields = [
        {
            "name": f.name,
            "label": f.label,
            "hint": f.hint,
            "value": reading.typed[f.name],
            "error": reading.errors.get(f.name),
        }
        for f in FIELDS
    ]
    return render(
        "methodologie.html",
        {
            "doc": methodology_document(),
            "version": METHODOLOGY_VERSION,
            "fields": fields,
            "errors": reading.errors,
            "result": result,
            "example": not asked,
            "weight_total": sum(WEIGHTS.values()),
            "page_title": "Méthodologie et calculateur",
            "nav_current": "methodologie",
        },
        status_code=422 if reading.errors else 200,
        headers=HTML_HEADERS,
    )


def coverage_body(reading: CoverageReading) -> dict[str, Any]:
    """The coverage as `GET /api/v1/coverage` answers it (schemas_coverage.CoverageBody)."""
    coverage = reading.coverage
    return {
        "as_of": reading.as_of,
        "methodology_version": METHODOLOGY_VERSION,
        "totals": coverage.totals.to_dict(),
        "categories": [
            {
                "category": c.category,
                "label": CATEGORIES_BY_ID[c.category].label,
                **c.counts.to_dict(),
                "regions": [r.to_dict() for r in c.regions],
            }
            for c in coverage.categories
        ],
        "regions": [r.to_dict() for r in coverage.regions],
    }


@router.get(
    "/api/v1/coverage",
    summary="Coverage: territories with an account, measured, with a dead link",
    responses=schemas.responses(CoverageBody),
)
async def coverage(redis: RedisDep, readers: ReadersDep, registry: RegistryDep) -> JSON:
    """Per category and per région: how many territories the registry holds, how many have
    an Instagram account in the mapping (and how many of those are simulated), how many are
    measured (ranked in the current standings) and how many have a dead link. A territory
    counts in every région it lies in, as the standings' `region` filter reads it."""
    reading = await read_coverage(redis, readers.rk, readers.accounts, registry)
    return JSON(coverage_body(reading))


def _share(part: int, whole: int) -> str:
    """`90,5 %` of the whole (a dash when the whole is 0)."""
    return fr_percent(part / whole, 1) if whole else "—"


def _row(label: str, counts: Counts) -> dict[str, Any]:
    """A row of the page's tables: the counts with their shares, in French."""
    return {
        "label": label,
        "territories": fr_int(counts.territories),
        "with_account": fr_int(counts.with_account),
        "with_account_share": _share(counts.with_account, counts.territories),
        "simulated": counts.simulated,
        "measured": fr_int(counts.measured),
        "measured_share": _share(counts.measured, counts.territories),
        "dead_links": fr_int(counts.dead_links),
        "dead_links_share": _share(counts.dead_links, counts.with_account),
    }


def measured_sentence(category: str, counts: Counts) -> str:
    """`38 grandes villes mesurées sur 42`."""
    noun = CATEGORIES_BY_ID[category].label.lower()
    agreed = "mesurés" if category in MASCULINE else "mesurées"
    return f"{fr_int(counts.measured)} {noun} {agreed} sur {fr_int(counts.territories)}"


@router.get("/couverture", response_class=HTMLResponse, include_in_schema=False)
async def coverage_page(
    request: Request, redis: RedisDep, readers: ReadersDep, registry: RegistryDep
) -> Any:
    """The coverage page: per category, then per région, with totals and shares. The page
    rendered from equal figures is reused (the figures change only with the view)."""
    reading = await read_coverage(redis, readers.rk, readers.accounts, registry)
    bodies: RenderedBodies = request.app.state.bodies
    figures = (reading.as_of, reading.coverage)
    reused = bodies.get(COVERAGE_PAGE, figures)
    if reused is not None:
        return HTMLResponse(reused[0], headers=HTML_HEADERS)
    coverage = reading.coverage
    per_category = [
        {
            "id": c.category,
            "row": _row(CATEGORIES_BY_ID[c.category].label, c.counts),
            "sentence": measured_sentence(c.category, c.counts),
            "regions": [_row(r.name, r.counts) for r in c.regions],
        }
        for c in coverage.categories
    ]
    page = render(
        "couverture.html",
        {
            "as_of": reading.as_of,
            "totals": _row("Total", coverage.totals),
            "raw_totals": coverage.totals,
            # Not `categories`: base.html's navigation reads that global.
            "per_category": per_category,
            "regions": [_row(r.name, r.counts) for r in coverage.regions],
            "page_title": "Couverture",
            "nav_current": "couverture",
        },
        headers=HTML_HEADERS,
    )
    bodies.put(COVERAGE_PAGE, figures, bytes(page.body), "")
    return page
