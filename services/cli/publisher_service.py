"""`observatoire service publisher`: the publisher in the foreground (what `run` starts)."""

from __future__ import annotations

import typer

from services.common.kafka import TopicsNotReady
from services.common.settings import get_settings


def publisher() -> None:
    """The publisher: scores, metrics, accounts, commands → rank changes, dead links, editions."""
    from services.publisher.main import run_publisher

    try:
        run_publisher(get_settings())
    except TopicsNotReady as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def main() -> None:
    """`python -m services.publisher`: the same command without the CLI's registration."""
    typer.run(publisher)
