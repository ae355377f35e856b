"""`observatoire service NAME`: run one service in the foreground (what `run` starts).

Every service starts the same way: `run_<name>(settings)` from its package's `main`, given the
process's Settings; a refusal to start (a missing topic, a view in another version, a source
without its settings) exits 2 with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from services.common.kafka import TopicsNotReady
from services.common.settings import Settings, get_settings
from services.common.view.layout import ViewMismatch

app = typer.Typer(help="Run one service in the foreground (normally started by `run`).")


def _start(run: Callable[[Settings], object], *refusals: type[Exception]) -> None:
    refused: tuple[type[Exception], ...] = (TopicsNotReady, ViewMismatch, *refusals)
    try:
        run(get_settings())
    except refused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command("scorer")
def scorer() -> None:
    """The faust scorer: obs.metrics.v1 + obs.accounts.v1 → Redis standings, obs.scores.v1."""
    from services.scorer.main import run_scorer

    _start(run_scorer)


@app.command("publisher")
def publisher() -> None:
    """The publisher: scores, metrics, accounts, commands → rank changes, dead links, editions."""
    from services.publisher.main import run_publisher

    _start(run_publisher)


@app.command("api")
def api() -> None:
    """The JSON API and public pages."""
    from services.api.main import run_api

    _start(run_api)


@app.command("collector")
def collector(
    source: str = typer.Option("sim", help="sim | graph | csv"),
    once: bool = typer.Option(False, help="One round, then exit."),
    file: Path | None = typer.Option(None, help="Input file for --source csv."),
) -> None:
    """A collector source producing obs.metrics.v1."""
    from services.collector.delivery import CollectorUnavailable
    from services.collector.main import run_collector

    _start(
        lambda settings: run_collector(settings, source, once=once, file=file), CollectorUnavailable
    )
