"""`observatoire service NAME`: run one service in the foreground (what `run` starts)."""

from __future__ import annotations

from pathlib import Path

import typer

from services.common.kafka import TopicsNotReady
from services.common.settings import get_settings

app = typer.Typer(help="Run one service in the foreground (normally started by `run`).")


def _refuse(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@app.command("scorer")
def scorer() -> None:
    """The faust scorer: obs.metrics.v1 + obs.accounts.v1 → Redis standings, obs.scores.v1."""
    from services.scorer.main import LayoutMismatch, run_scorer

    try:
        run_scorer(get_settings())
    except (TopicsNotReady, LayoutMismatch) as exc:
        _refuse(exc)


@app.command("api")
def api() -> None:
    """The JSON API and public pages."""
    from services.api.main import run_api

    run_api(get_settings())


@app.command("collector")
def collector(
    source: str = typer.Option("sim", help="sim | graph | csv"),
    once: bool = typer.Option(False, help="One round, then exit."),
    file: Path | None = typer.Option(None, help="Input file for --source csv."),
) -> None:
    """A collector source producing obs.metrics.v1."""
    from services.collector.main import CollectorUnavailable, run_collector

    try:
        run_collector(get_settings(), source, once=once, file=file)
    except (TopicsNotReady, CollectorUnavailable) as exc:
        _refuse(exc)
