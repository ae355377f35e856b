"""The `observatoire` command: one entry point for every service and operator task."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="observatoire",
    help="Observatoire des territoires sur les réseaux sociaux: live rankings and their tools.",
    no_args_is_help=True,
    add_completion=False,
)


def main() -> None:
    """Console-script entry point."""
    _register()
    app()


def _register() -> None:
    """Attach the command groups (imported lazily so `--help` stays fast)."""
