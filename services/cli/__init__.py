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
    """Attach the command groups."""
    from services.cli import (
        accounts,
        collect,
        edition,
        handles,
        rebuild,
        replay,
        run,
        services,
        territories,
        topics,
    )

    app.add_typer(territories.app, name="territories", help="The territory registry.")
    app.add_typer(handles.app, name="handles", help="Instagram handle checks.")
    app.add_typer(topics.app, name="topics", help="Kafka topics of the contract.")
    app.add_typer(accounts.app, name="accounts", help="Which account each territory uses.")
    app.add_typer(edition.app, name="edition", help="Monthly editions (the palmarès).")
    app.add_typer(services.app, name="service", help="Run one service (started by `run`).")
    app.command("run")(run.run_command)
    app.command("replay")(replay.replay_command)
    app.command("rebuild")(rebuild.rebuild_command)
    app.command("collect")(collect.collect_command)
