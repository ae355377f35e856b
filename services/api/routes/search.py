"""Territory search: `GET /api/v1/search` (JSON, what the header's suggestions read) and the
page `/recherche` (works without JavaScript). Both ask the process's one `SearchIndex`
(services/common/search.py), built on the first search from the registry; its handle part is
rebuilt only when the current generation's account mapping changes."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Query
from starlette.responses import HTMLResponse

from services.api import schemas
from services.api.deps import RegistryDep, SearchIndexDep
from services.api.errors import ApiError
from services.api.params import check_category
from services.api.responses import HTML_HEADERS, JSON
from services.api.templating import render
from services.common.contracts import CATEGORIES_BY_ID, CATEGORY_IDS
from services.common.territories import KIND_DEPARTEMENT, KIND_REGION, Registry, Territory

router = APIRouter(tags=["search"])

MAX_QUERY_LENGTH: Final = 100
MAX_RESULTS: Final = 50
PAGE_RESULTS: Final = 50


def _query_text(raw: str) -> str:
    """The query without its surrounding spaces: 1 to 100 characters, else 422."""
    text = raw.strip()
    if not 1 <= len(text) <= MAX_QUERY_LENGTH:
        raise ApiError(
            422,
            "invalid_parameter",
            f"query.q: must be 1 to {MAX_QUERY_LENGTH} characters once surrounding spaces "
            f"are removed (got {len(text)})",
        )
    return text


def _places(registry: Registry, kind: str, codes: tuple[str, ...]) -> list[dict[str, str]]:
    places = []
    for code in codes:
        place = registry.get(f"{kind}-{code}")
        places.append({"code": code, "name": code if place is None else place.name})
    return places


def search_item(registry: Registry, territory: Territory, handle: str | None) -> dict[str, Any]:
    """One result, as the API answers it (schemas.SearchItem)."""
    return {
        "id": territory.id,
        "name": territory.name,
        "category": territory.category,
        "category_label": CATEGORIES_BY_ID[territory.category].label,
        "kind": territory.kind,
        "code": territory.code,
        "population": territory.population,
        "handle": handle,
        "departements": _places(registry, KIND_DEPARTEMENT, territory.departements),
        "regions": _places(registry, KIND_REGION, territory.regions),
        "url": f"/territoires/{territory.id}",
    }


Q = Annotated[
    str,
    Query(
        description="What to look for (1–100 characters, surrounding spaces ignored): the "
        "beginning of a name, accents and case ignored (`mea`, `st denis`); an INSEE code or "
        "SIREN, or its beginning (`04115`, `0411`, `2A`, `200046977`); or `@` and the beginning "
        "of an Instagram handle.",
        json_schema_extra={"minLength": 1, "maxLength": MAX_QUERY_LENGTH},
        examples=["st denis"],
    ),
]
SearchCategory = Annotated[
    str | None,
    Query(
        description="Only territories of this category (another value: 404 `unknown_category`).",
        json_schema_extra={"enum": list(CATEGORY_IDS)},
    ),
]
SearchLimit = Annotated[
    int, Query(ge=1, le=MAX_RESULTS, description=f"Results at most (1–{MAX_RESULTS}).")
]


@router.get(
    "/api/v1/search",
    summary="Find territories by name, code or handle",
    responses=schemas.responses(schemas.SearchResults, 404, 422),
)
async def search(
    q: Q,
    registry: RegistryDep,
    index: SearchIndexDep,
    category: SearchCategory = None,
    limit: SearchLimit = 10,
) -> JSON:
    """Territories matching `q`, best first: for a name, every word of the query begins a
    distinct word of the name (accents, case, hyphens and apostrophes ignored; `st`/`ste` read
    `saint`/`sainte`), the whole name equal to the query first, then names starting with it,
    then words in order, then in any order, each by population descending then id. A code
    query lists the exact code first, then the codes it begins; an `@` query likewise handles.
    `departements` and `regions` name the places, so homonyms can be told apart."""
    text = _query_text(q)
    if category is not None:
        check_category(category)
    hits = index.search(text, category, limit)
    return JSON({"items": [search_item(registry, hit.territory, hit.handle) for hit in hits]})


def _page_result(item: dict[str, Any], kind: str) -> dict[str, Any]:
    """What the page shows of an item: the places that are not the territory itself."""
    places = []
    if kind != KIND_REGION:
        if kind != KIND_DEPARTEMENT:
            places += [f"{d['name']} ({d['code']})" for d in item["departements"]]
        places += [r["name"] for r in item["regions"]]
    return {**item, "places": places}


@router.get("/recherche", response_class=HTMLResponse, include_in_schema=False)
async def search_page(
    registry: RegistryDep,
    index: SearchIndexDep,
    q: Annotated[str | None, Query()] = None,
    category: Annotated[str | None, Query()] = None,
) -> Any:
    """The search page: the form, and the results of `q` if given (links to the territories)."""
    text = (q or "").strip()
    selected = category or None  # the form's "every category" sends an empty value
    if selected is not None:
        check_category(selected)
    status, error, results = 200, None, None
    if len(text) > MAX_QUERY_LENGTH:
        status = 422
        error = f"La recherche est trop longue : {MAX_QUERY_LENGTH} caractères au plus."
    elif text:
        results = [
            _page_result(search_item(registry, hit.territory, hit.handle), hit.territory.kind)
            for hit in index.search(text, selected, PAGE_RESULTS)
        ]
    return render(
        "recherche.html",
        {
            "q": text,
            "selected_category": selected,
            "results": results,
            "error": error,
            "page_limit": PAGE_RESULTS,
            "page_title": f"Recherche « {text} »" if text else "Recherche",
        },
        status_code=status,
        headers=HTML_HEADERS,
    )
