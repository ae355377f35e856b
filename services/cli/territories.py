"""`observatoire territories …`: inspect the territory registry."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from services.common.contracts import CATEGORIES_BY_ID, CATEGORY_IDS
from services.common.territories import CREDIT, Territory, load_registry

app = typer.Typer(
    help="The territories ranked by the observatory (régions, départements, EPCI, communes).",
    no_args_is_help=True,
    add_completion=False,
)

COLUMNS: tuple[str, ...] = ("id", "nom", "population", "régions", "départements", "compte")
# Above this many rows the table is printed as plain aligned text (see _print_plain).
RICH_TABLE_MAX_ROWS = 1_000


@app.callback()
def territories() -> None:
    """The territories ranked by the observatory (régions, départements, EPCI, communes)."""
    # A callback keeps `list` a subcommand even while it is the group's only command.


@lru_cache(maxsize=1)
def _bundled_handles() -> dict[str, str]:
    from services.common.accounts import load_accounts

    return {account.territory_id: account.handle for account in load_accounts().accounts}


def _handle_of(territory: Territory) -> str | None:
    """The territory's handle in the bundled accounts file (None when it has none)."""
    return _bundled_handles().get(territory.id)


def territory_record(territory: Territory) -> dict[str, Any]:
    """Return the JSON record of a territory as printed by `territories list --json`."""
    return {
        "id": territory.id,
        "code": territory.code,
        "name": territory.name,
        "category": territory.category,
        "population": territory.population,
        "regions": list(territory.regions),
        "departements": list(territory.departements),
        "handle": _handle_of(territory),
    }


def _group_digits(number: int) -> str:
    return f"{number:,}".replace(",", "\u202f")  # French grouping: narrow no-break space


@app.command("list")
def list_territories(
    category: Annotated[
        str,
        typer.Option(
            "--category",
            "-c",
            help=f"One of: {', '.join(CATEGORY_IDS)}.",
            show_default=False,
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON array instead of a table.")
    ] = False,
) -> None:
    """List the territories of a category, sorted by id."""
    if category not in CATEGORIES_BY_ID:
        typer.echo(
            f"Error: unknown category {category!r}. Valid categories: {', '.join(CATEGORY_IDS)}",
            err=True,
        )
        raise typer.Exit(code=2)
    territories = load_registry().by_category(category)
    if as_json:
        records = [territory_record(t) for t in territories]
        typer.echo(orjson.dumps(records, option=orjson.OPT_INDENT_2).decode())
        return
    rows = [_row(t) for t in territories]
    title = f"{CATEGORIES_BY_ID[category].label} ({len(territories)})"
    if len(rows) > RICH_TABLE_MAX_ROWS:
        _print_plain(title, rows)
        return
    table = Table(title=title, caption=CREDIT)
    for column in COLUMNS:
        table.add_column(
            column,
            justify="right" if column == "population" else "left",
            min_width=20 if column == "nom" else None,
            no_wrap=column in ("id", "population"),
        )
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def _row(territory: Territory) -> tuple[str, ...]:
    handle = _handle_of(territory)
    return (
        territory.id,
        territory.name,
        _group_digits(territory.population),
        " ".join(territory.regions),
        " ".join(territory.departements),
        f"@{handle}" if handle else "—",
    )


def _print_plain(title: str, rows: list[tuple[str, ...]]) -> None:
    """Print aligned columns without rich, which needs ~0.5 ms a row (20 s for petites-villes)."""
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(COLUMNS)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(width) if column == "population" else cell.ljust(width)
            for column, cell, width in zip(COLUMNS, cells, widths, strict=True)
        ).rstrip()

    typer.echo("\n".join([title, line(COLUMNS), *(line(row) for row in rows), CREDIT]))
