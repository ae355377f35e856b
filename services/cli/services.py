"""`observatoire service NAME`: run one service in the foreground (what `run` starts).

Every service starts the same way: `run_<name>(settings)` from its package's `main`, given the
process's Settings; a refusal to start (a missing topic, a view in another version, a source
without its settings) exits 2 with the reason. Before anything else, the start gate
(`secure_start`): on the kafka profile a service refuses to start without what authenticates
what it uses (Kafka credentials, a Redis password, the command key) unless
OBS_ALLOW_INSECURE=true, which it then logs as a warning at every start.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from services.cli.secure_start import check_start
from services.common.kafka import TopicsNotReady
from services.common.lifecycle import configure_logging
from services.common.security import SERVICE_NEEDS
from services.common.settings import Settings, get_settings
from services.common.view.layout import ViewMismatch

app = typer.Typer(help="Run one service in the foreground (normally started by `run`).")


def _settings(service: str) -> Settings:
    """The process's Settings, once the start gate lets `service` start on them."""
    settings = get_settings()

    def warn(message: str) -> None:
        configure_logging(service, settings.log_level).warning("%s", message)

    check_start(settings, f"service {service}", SERVICE_NEEDS[service], warn)
    return settings


def _start(
    settings: Settings, run: Callable[[Settings], object], *refusals: type[Exception]
) -> None:
    refused: tuple[type[Exception], ...] = (TopicsNotReady, ViewMismatch, *refusals)
    try:
        run(settings)
    except refused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command("scorer")
def scorer() -> None:
    """The faust scorer: obs.metrics.v1 + obs.accounts.v1 → Redis standings, obs.scores.v1."""
    settings = _settings("scorer")
    from services.scorer.main import run_scorer

    _start(settings, run_scorer)


@app.command("publisher")
def publisher() -> None:
    """The publisher: scores, metrics, accounts, commands → rank changes, dead links, editions."""
    settings = _settings("publisher")
    from services.publisher.main import run_publisher

    _start(settings, run_publisher)


@app.command("api")
def api() -> None:
    """The JSON API and public pages."""
    settings = _settings("api")
    from services.api.main import run_api

    _start(settings, run_api)


@app.command("collector")
def collector(
    source: str = typer.Option("sim", help="sim | graph | csv"),
    once: bool = typer.Option(False, help="One round, then exit."),
    file: Path | None = typer.Option(None, help="Input file for --source csv."),
) -> None:
    """A collector source producing obs.metrics.v1."""
    settings = _settings("collector")
    from services.collector.delivery import CollectorUnavailable
    from services.collector.main import run_collector

    _start(
        settings,
        lambda settings: run_collector(settings, source, once=once, file=file),
        CollectorUnavailable,
    )
