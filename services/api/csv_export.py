"""CSV beside JSON: the columns of every export as data (with their French dictionary), the
pure conversion of a JSON body into CSV text (UTF-8, RFC 4180) and the one call a route makes
to answer either representation.

A route answers `respond(request, body, STANDINGS)` (or `EDITION`, `HISTORY`): JSON as before,
or CSV when `?format=csv` is given or the `Accept` header prefers `text/csv`. Each
representation has its own strong ETag (the hash of its own bytes) and carries `Vary: Accept`.
The /donnees page prints its data dictionary from the same columns.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from fastapi import Request, Response

from services.api.errors import ApiError
from services.api.etag import etag_of, etagged_bytes
from services.api.formatting import INDICATOR_LABELS
from services.common.methodology import WEIGHTS

Format = Literal["json", "csv"]
FORMATS: Final[tuple[Format, ...]] = ("json", "csv")
CSV_MEDIA_TYPE: Final = "text/csv; charset=utf-8"
JSON_MEDIA_TYPE: Final = "application/json"
# Every answer of a negotiated route varies by `Accept` (a shared cache must not give the CSV
# to a client that asked for JSON, nor the reverse).
VARY: Final = {"Vary": "Accept"}


@dataclass(frozen=True, slots=True)
class Column:
    """One CSV column: where its value is in a row of the JSON body, and what it means."""

    name: str
    path: tuple[str, ...]  # keys from the JSON row (`("indicators", "reach", "points")`)
    kind: str  # type and unit, in French, for the data dictionary
    meaning: str  # in French
    example: str


def _column(name: str, kind: str, meaning: str, example: str) -> Column:
    return Column(name, (name,), kind, meaning, example)


_LEAD: Final = (
    _column("rank", "entier ≥ 1", "Rang dans la liste (filtrée, le cas échéant).", "1"),
    _column(
        "national_rank",
        "entier ≥ 1",
        "Rang dans toute la catégorie, quel que soit le filtre.",
        "1",
    ),
    _column(
        "id",
        "texte",
        "Identifiant du territoire : type (reg, dep, com ou epci), tiret, code.",
        "dep-32",
    ),
    _column(
        "code",
        "texte",
        "Code INSEE (région, département, commune) ou SIREN (intercommunalité).",
        "32",
    ),
    _column("name", "texte", "Nom officiel du territoire (COG).", "Gers"),
    _column(
        "score",
        "décimal de 0 à 100, 4 décimales",
        "Score de la méthodologie : moyenne pondérée des points des cinq indicateurs.",
        "63.0373",
    ),
    _column(
        "handle",
        "texte (vide : aucun compte)",
        "Compte Instagram mesuré, sans « @ ».",
        "gersledepartement",
    ),
    _column(
        "link_status",
        "ok, suspect, dead ou vide",
        "État du lien vers le compte : ok, suspect (introuvable une fois), dead (introuvable "
        "deux fois de suite) ; vide tant qu’il n’a pas été vérifié.",
        "ok",
    ),
    _column(
        "observed_at",
        "horodatage RFC 3339 (UTC)",
        "Moment du relevé sur lequel repose le score.",
        "2021-06-30T06:00:00Z",
    ),
    _column(
        "movement",
        "entier (places ; vide : absent du palmarès de référence)",
        "Places gagnées par rapport au palmarès publié précédent (classement en direct : le "
        "dernier publié) ; négatif : places perdues.",
        "2",
    ),
)
_STREAK: Final = _column(
    "streak",
    "entier ≥ 0 (palmarès publiés)",
    "Nombre de palmarès consécutifs à la 1re place ; 0 hors de la 1re place.",
    "3",
)
# What each indicator's raw value is (ARCHITECTURE "Methodology v1"), and an example.
_VALUES: Final = {
    "engagement": (
        "décimal (part des abonnés ; vide : aucune publication)",
        "Engagement : moyenne, sur les publications des 30 derniers jours, des interactions "
        "(j’aime et commentaires) rapportées aux abonnés.",
        "0.03",
    ),
    "reach": (
        "décimal (abonnés par habitant ; vide : population nulle)",
        "Portée : abonnés rapportés à la population du territoire.",
        "0.075",
    ),
    "activity": (
        "décimal (publications par jour)",
        "Activité : publications des 30 derniers jours divisées par 30.",
        "0.6666666666666666",
    ),
    "audience": ("entier (abonnés)", "Audience : nombre d’abonnés.", "15000"),
    "ratio": (
        "décimal",
        "Ratio : abonnés divisés par abonnements (au moins 1).",
        "50.0",
    ),
}
_POINTS_EXAMPLES: Final = {
    "engagement": "54.78260869565217",
    "reach": "69.47321609278089",
    "activity": "66.66666666666666",
    "audience": "54.402281476392034",
    "ratio": "84.94850021680094",
}


def _indicator_columns() -> tuple[Column, ...]:
    columns: list[Column] = []
    for indicator, weight in WEIGHTS.items():
        kind, meaning, example = _VALUES[indicator]
        columns.append(
            Column(f"{indicator}_value", ("indicators", indicator, "value"), kind, meaning, example)
        )
        columns.append(
            Column(
                f"{indicator}_points",
                ("indicators", indicator, "points"),
                "décimal de 0 à 100 (non arrondi)",
                f"Points de l’indicateur « {INDICATOR_LABELS[indicator]} » (poids {weight} "
                "sur 15 dans le score).",
                _POINTS_EXAMPLES[indicator],
            )
        )
    columns.append(
        Column(
            "activity_posts",
            ("indicators", "activity", "posts"),
            "entier (publications)",
            "Publications des 30 jours précédant le relevé.",
            "20",
        )
    )
    return tuple(columns)


_INDICATORS: Final = _indicator_columns()

# Live standings: `GET /api/v1/standings/{category}?format=csv`.
STANDINGS_COLUMNS: Final[tuple[Column, ...]] = (*_LEAD, *_INDICATORS)
# Editions: `GET /api/v1/editions/{YYYY-MM}/{category}?format=csv` and the /donnees files
# (`streak` is empty for a provisional month).
EDITION_COLUMNS: Final[tuple[Column, ...]] = (*_LEAD, _STREAK, *_INDICATORS)
# A territory's history: one row per point of `GET /api/v1/territories/{id}/history`.
HISTORY_COLUMNS: Final[tuple[Column, ...]] = (
    _column("date", "date AAAA-MM-JJ", "Jour du point (calendrier de Paris).", "2021-06-30"),
    _column(
        "period",
        "texte",
        "Période que le point résume (un jour, ou une semaine au-delà de 90 jours).",
        "day",
    ),
    _column(
        "observed_at",
        "horodatage RFC 3339 (UTC)",
        "Moment du dernier relevé de la période, sur lequel repose le point.",
        "2021-06-30T06:00:00Z",
    ),
    _column("score", "décimal de 0 à 100, 4 décimales", "Score ce jour-là.", "63.0373"),
    _column(
        "rank",
        "entier ≥ 1 (vide : non classé)",
        "Rang dans la catégorie parmi les points du même jour.",
        "1",
    ),
    _column("ranked", "true ou false", "Le territoire était-il classé ce jour-là ?", "true"),
    _column("followers", "entier (abonnés)", "Nombre d’abonnés au relevé.", "15000"),
    _column(
        "posts",
        "entier (publications)",
        "Publications des 30 jours précédant le relevé.",
        "20",
    ),
)


# --- the conversion (pure) ----------------------------------------------------------------


def _reader(path: tuple[str, ...]) -> Callable[[Mapping[str, Any]], Any]:
    """The value at `path` in a row, as the csv module should write it: null (or a missing
    key) stays None, written as an empty cell; a boolean becomes `true`/`false`; numbers go
    as they are (the csv module writes `str(x)`, for a float its shortest exact form: reading
    it back gives the JSON's float)."""
    if len(path) == 1:
        (key,) = path

        def read_one(row: Mapping[str, Any]) -> Any:
            value = row.get(key)
            if value is True or value is False:
                return "true" if value else "false"
            return value

        return read_one

    def read_nested(row: Mapping[str, Any]) -> Any:
        value: Any = row
        try:
            for key in path:
                value = value[key]
        except (KeyError, TypeError, IndexError):
            return None
        if value is True or value is False:
            return "true" if value else "false"
        return value

    return read_nested


def to_csv(
    columns: Iterable[Column], rows: Iterable[Mapping[str, Any]], *, header: bool = True
) -> str:
    """The rows as RFC 4180 CSV text: a header row (unless `header` is false), CRLF line ends,
    fields quoted only when needed (comma, quote, line break), quotes doubled; null is an
    empty cell, booleans `true`/`false`, floats in their shortest exact form."""
    columns = tuple(columns)
    readers = [_reader(column.path) for column in columns]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    if header:
        writer.writerow(column.name for column in columns)
    writer.writerows([read(row) for read in readers] for row in rows)
    return out.getvalue()


# --- what each route exports --------------------------------------------------------------


def _filters(query: Mapping[str, str]) -> str:
    region, departement = query.get("region"), query.get("departement")
    if region:
        return f"-region-{region}"
    if departement:
        return f"-departement-{departement}"
    return ""


def _stamp(as_of: Any) -> str:
    """`2021-07-03T06:00:00Z` → `2021-07-03T060000Z` (no colon: a file name anywhere)."""
    return str(as_of).replace(":", "") if as_of else "sans-date"


def standings_filename(body: Mapping[str, Any], query: Mapping[str, str]) -> str:
    """`observatoire-departements-2021-06.csv` (an edition) or
    `observatoire-departements-direct-2021-07-03T060000Z.csv` (live, at its `as_of`)."""
    when = body.get("edition") or f"direct-{_stamp(body.get('as_of'))}"
    return f"observatoire-{body['category']}-{when}{_filters(query)}.csv"


def history_filename(body: Mapping[str, Any], query: Mapping[str, str]) -> str:
    """`observatoire-historique-dep-32-2021-07-03T060000Z.csv`."""
    return f"observatoire-historique-{body['id']}-{_stamp(body.get('as_of'))}.csv"


@dataclass(frozen=True, slots=True)
class Export:
    """What a route exports: its columns, the list of rows in its body, its file name."""

    columns: tuple[Column, ...]
    rows: str  # the key of the body's list of rows
    filename: Callable[[Mapping[str, Any], Mapping[str, str]], str]

    def render(self, body: Mapping[str, Any]) -> str:
        """The body's rows as CSV text."""
        return to_csv(self.columns, body[self.rows])


STANDINGS: Final = Export(STANDINGS_COLUMNS, "items", standings_filename)
EDITION: Final = Export(EDITION_COLUMNS, "items", standings_filename)
HISTORY: Final = Export(HISTORY_COLUMNS, "points", history_filename)


# --- which representation -------------------------------------------------------------------


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def _preference(accept: str, kind: str, subtype: str) -> float:
    """The quality `accept` gives `kind/subtype`: that of the most specific range naming it
    (RFC 9110 §12.5.1); 0 when none does."""
    best, specificity = 0.0, -1
    for part in accept.split(","):
        media, *params = part.split(";")
        media = media.strip().lower()
        if media == f"{kind}/{subtype}":
            rank = 2
        elif media == f"{kind}/*":
            rank = 1
        elif media == "*/*":
            rank = 0
        else:
            continue
        if rank > specificity:
            best, specificity = _quality(params), rank
    return best


def choose_format(format_param: str | None, accept: str | None) -> Format:
    """`format` when given (`json` or `csv`; anything else: 422); otherwise CSV when `Accept`
    prefers `text/csv` to `application/json`, JSON on a tie or without a preference."""
    if format_param is not None:
        if format_param == "json":
            return "json"
        if format_param == "csv":
            return "csv"
        raise ApiError(
            422,
            "invalid_parameter",
            f"query.format: must be json or csv: {format_param[:40]!r}",
        )
    if not accept or "csv" not in accept.lower():
        return "json"
    csv_q = _preference(accept, "text", "csv")
    json_q = _preference(accept, "application", "json")
    return "csv" if csv_q > json_q else "json"


def wanted_format(request: Request) -> Format:
    """The representation this request asks for (422 on an unknown `format`)."""
    return choose_format(request.query_params.get("format"), request.headers.get("accept"))


# --- the answer -----------------------------------------------------------------------------


def _csv(request: Request, body: Mapping[str, Any], export: Export, cache_control: str) -> Response:
    text = export.render(body).encode()
    disposition = f'attachment; filename="{export.filename(body, request.query_params)}"'
    return etagged_bytes(
        request,
        text,
        etag_of(text),
        cache_control,
        media_type=CSV_MEDIA_TYPE,
        headers={**VARY, "Content-Disposition": disposition},
    )


def respond(
    request: Request,
    body: Mapping[str, Any],
    export: Export,
    cache_control: str = "no-cache",
    fmt: Format | None = None,
) -> Response:
    """The body as JSON, or its rows as CSV when the request asks for CSV (each with its own
    ETag, `Vary: Accept`, 304 when the client has it): the one line a route needs."""
    fmt = wanted_format(request) if fmt is None else fmt
    if fmt == "csv":
        return _csv(request, body, export, cache_control)
    raw = orjson.dumps(body)
    return etagged_bytes(request, raw, etag_of(raw), cache_control, headers=VARY)


def respond_rendered(
    request: Request,
    raw: bytes,
    etag: str,
    export: Export,
    fmt: Format,
    cache_control: str = "no-cache",
) -> Response:
    """`respond` for a JSON body already rendered with its ETag (the live standings)."""
    if fmt == "csv":
        return _csv(request, orjson.loads(raw), export, cache_control)
    return etagged_bytes(request, raw, etag, cache_control, headers=VARY)


# --- the OpenAPI document -------------------------------------------------------------------

FORMAT_PARAMETER: Final[dict[str, Any]] = {
    "name": "format",
    "in": "query",
    "required": False,
    "description": "`csv`: the rows as CSV (UTF-8, RFC 4180, a header row); `json` (default). "
    "Without it, `Accept: text/csv` asks for CSV too.",
    "schema": {"type": "string", "enum": list(FORMATS), "default": "json"},
}


def with_csv(responses: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """A route's documented responses with `text/csv` beside JSON for its 200."""
    documented = {status: dict(spec) for status, spec in responses.items()}
    ok = documented.setdefault(200, {"description": "OK"})
    ok["content"] = {
        **ok.get("content", {}),
        "text/csv": {"schema": {"type": "string"}},
    }
    return documented
