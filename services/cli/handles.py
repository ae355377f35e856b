"""`observatoire handles check HANDLE...`: say which handles are valid and their normal form."""

from __future__ import annotations

from typing import Annotated

import typer

from services.common.handles import InvalidHandle, normalise_handle

app = typer.Typer(
    help="Instagram handles: check them against the contract's normal form.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def handles() -> None:
    """Instagram handles: check them against the contract's normal form."""


@app.command()
def check(
    handles: Annotated[list[str], typer.Argument(help="Handles, with or without a leading @.")],
) -> None:
    """Print `ok <normalised>` or `invalid <input>: <reason>` per handle; exit 1 if any invalid."""
    any_invalid = False
    for raw in handles:
        try:
            typer.echo(f"ok {normalise_handle(raw)}")
        except InvalidHandle as invalid:
            any_invalid = True
            typer.echo(f"invalid {_printable(raw)}: {invalid.reason}")
    raise typer.Exit(1 if any_invalid else 0)


def _printable(raw: str) -> str:
    """The input as typed, escaped only if it holds control characters (terminal safety)."""
    return raw if raw.isprintable() else repr(raw)
