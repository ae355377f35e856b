"""Open data: the `/donnees` page (every published edition as CSV and JSON files, how to get
the live data, the data dictionary, licences, how to cite) and the files themselves,
`/donnees/editions/{YYYY-MM}/{category}.csv` and `.json` (every ranked entry of a published
edition; services/api/edition_files.py).

The files are data, never pages: their errors are always JSON."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Request, Response
from starlette.responses import HTMLResponse

from services.api import schemas
from services.api.csv_export import EDITION_COLUMNS, HISTORY_COLUMNS
from services.api.deps import EditionsDep, ReadersDep, RegistryDep, ScoredDep
from services.api.edition_files import (
    CACHE_CONTROL,
    LICENCE_URL,
    EditionFiles,
    FileKind,
)
from services.api.errors import ApiError, error_response
from services.api.etag import etagged_bytes
from services.api.formatting import fr_date, fr_month
from services.api.responses import HTML_HEADERS
from services.api.templating import render
from services.common.clock import format_timestamp, utcnow
from services.common.contracts import CATEGORIES, CATEGORIES_BY_ID, METHODOLOGY_VERSION
from services.common.events import EDITION_PATTERN

router = APIRouter(tags=["open data"])

_MONTH: Final = re.compile(EDITION_PATTERN)
# The live list the page shows as an example of `?format=csv`.
EXAMPLE_CATEGORY: Final = "departements"

FileMonth = Annotated[
    str,
    Path(
        description="A published edition, `YYYY-MM` (another shape: 400; not published: 404).",
        examples=["2021-06"],
        json_schema_extra={"pattern": EDITION_PATTERN},
    ),
]
FileCategory = Annotated[
    str,
    Path(
        description="A category id (another value: 404 `unknown_category`).",
        examples=["departements"],
        json_schema_extra={"enum": [c.id for c in CATEGORIES]},
    ),
]


def _files(request: Request) -> EditionFiles:
    """The app's rendered files (made on first use)."""
    state = request.app.state
    files: EditionFiles | None = getattr(state, "edition_files", None)
    if files is None:
        files = state.edition_files = EditionFiles()
    return files


async def _edition_file(
    request: Request,
    readers: ReadersDep,
    registry: RegistryDep,
    scored: ScoredDep,
    month: str,
    category: str,
    kind: FileKind,
) -> Response:
    if not _MONTH.fullmatch(month):
        return error_response(
            400, "bad_request", f"not an edition month YYYY-MM (01 to 12): {month[:40]!r}"
        )
    if category not in CATEGORIES_BY_ID:
        return error_response(
            404,
            "unknown_category",
            f"unknown category {category[:40]!r}; valid: {', '.join(CATEGORIES_BY_ID)}",
        )
    try:
        found = await _files(request).get(readers, registry, scored, category, month, kind)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    if found is None:
        return error_response(
            404,
            "unknown_edition",
            f"no published edition {month}: the files of an edition exist once it is "
            "published (see /donnees)",
        )
    return etagged_bytes(
        request,
        found.data,
        found.etag,
        CACHE_CONTROL,
        media_type=found.media_type,
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
    )


def _file_responses(media_type: str, schema: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    documented = schemas.responses(None, 400, 404, etag=True)
    documented[200] = {"description": "OK", "content": {media_type: {"schema": schema}}}
    return documented


@router.get(
    "/donnees/editions/{month}/{category}.csv",
    response_class=Response,
    responses=_file_responses("text/csv", {"type": "string"}),
)
async def edition_csv(
    request: Request,
    month: FileMonth,
    category: FileCategory,
    readers: ReadersDep,
    registry: RegistryDep,
    scored: ScoredDep,
) -> Response:
    """Every ranked entry of a published edition as CSV (UTF-8, RFC 4180, a header row; the
    columns of `GET /api/v1/editions/{YYYY-MM}/{category}?format=csv`). Immutable: cacheable
    for a day, with an ETag."""
    return await _edition_file(request, readers, registry, scored, month, category, "csv")


@router.get(
    "/donnees/editions/{month}/{category}.json",
    response_class=Response,
    responses=_file_responses("application/json", {"type": "object"}),
)
async def edition_json(
    request: Request,
    month: FileMonth,
    category: FileCategory,
    readers: ReadersDep,
    registry: RegistryDep,
    scored: ScoredDep,
) -> Response:
    """Every ranked entry of a published edition as JSON: the edition's standings shape with
    all its `items` (no pagination), its methodology version and licence."""
    return await _edition_file(request, readers, registry, scored, month, category, "json")


def of_month(month: str) -> str:
    """`de juin 2021`, `d’avril 2021` (French elision before a vowel)."""
    label = fr_month(month)
    return f"d’{label}" if label[0] in "aeiouéèêâîôûh" else f"de {label}"


def _editions(listing: dict[str, Any]) -> list[dict[str, Any]]:
    """Published editions, latest first, each with a row per category."""
    published = []
    for edition in listing["editions"]:
        if edition["status"] != "published":
            continue
        month = edition["edition"]
        counts = edition["categories"] or {}
        published.append(
            {
                "month": month,
                "label": fr_month(month),
                "of_label": of_month(month),
                "published_at": edition["published_at"],
                "rows": [
                    {
                        "category": info,
                        "ranked": counts.get(info.id, 0),
                        "csv": f"/donnees/editions/{month}/{info.id}.csv",
                        "json": f"/donnees/editions/{month}/{info.id}.json",
                    }
                    for info in CATEGORIES
                ],
            }
        )
    return published


@router.get("/donnees", response_class=HTMLResponse, include_in_schema=False)
async def data_page(request: Request, editions: EditionsDep) -> Any:
    """The open-data page."""
    published = _editions(await editions.listing())
    page_url = str(request.base_url).rstrip("/") + "/donnees"
    cited = None
    if published:
        latest = published[0]
        row = next((r for r in latest["rows"] if r["ranked"]), latest["rows"][0])
        cited = {"category": row["category"], "of_label": latest["of_label"]}
    return render(
        "donnees.html",
        {
            "editions": published,
            "cited": cited,
            "today": fr_date(format_timestamp(utcnow())),
            "page_url": page_url,
            "example_category": CATEGORIES_BY_ID[EXAMPLE_CATEGORY],
            "dictionaries": [
                {
                    "id": "colonnes-classements",
                    "title": "Classements et palmarès",
                    "intro": "Colonnes des fichiers de palmarès et des classements au format CSV "
                    "(une ligne par territoire, dans l’ordre du classement). La colonne « streak » "
                    "n’existe que pour les palmarès (vide pour un mois pas encore publié).",
                    "columns": EDITION_COLUMNS,
                },
                {
                    "id": "colonnes-historique",
                    "title": "Historique d’un territoire",
                    "intro": "Colonnes de l’historique d’un territoire au format CSV "
                    "(GET /api/v1/territories/{id}/history?format=csv, un point par ligne, "
                    "du plus ancien au plus récent).",
                    "columns": HISTORY_COLUMNS,
                },
            ],
            "methodology_version": METHODOLOGY_VERSION,
            "licence_url": LICENCE_URL,
            "nav_current": "donnees",
            "page_title": "Données ouvertes",
        },
        headers=HTML_HEADERS,
    )
