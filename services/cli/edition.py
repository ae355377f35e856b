"""`observatoire edition publish YYYY-MM`: request a month's publication and wait for it.

Exit 0 when the month is published or was already (the output says which), 2 when the
publisher refuses it (the output says why), the month is not `YYYY-MM` or there is no command
key to sign with, 1 when no result came in time (the command stays in obs.commands.v1: a
publisher that starts later runs it).
"""

from __future__ import annotations

from typing import Annotated

import typer

from services.cli.secure_start import check_command
from services.common.clock import parse_edition
from services.common.commands.keys import NoCommandKey
from services.common.commands.protocol import ask, no_result_message
from services.common.editions import ALREADY_PUBLISHED
from services.common.kafka import TopicsNotReady
from services.common.settings import Settings, get_settings

app = typer.Typer(help="Monthly editions (the palmarès).", no_args_is_help=True)


@app.callback()
def _edition() -> None:
    """Monthly editions (the palmarès)."""


def publish_edition(settings: Settings, edition: str, timeout: float) -> tuple[int, str]:
    """Request the publication of `edition`; returns the exit code and what to print."""
    try:
        parse_edition(edition)
    except ValueError as error:
        return 2, f"refused: {error}"
    command, result = ask(
        settings, command="publish_edition", args={"edition": edition}, timeout=timeout
    )
    if result is None:
        return 1, no_result_message(command, timeout)
    reason = result["reason"] or ""
    if result["status"] == "refused":
        return 2, f"refused: {reason}"
    if reason.startswith(ALREADY_PUBLISHED):
        return 0, f"{edition}: {reason}; nothing changed"
    return 0, reason or f"published {edition}"


@app.command("publish")
def publish(
    edition: Annotated[str, typer.Argument(help="The month measured, YYYY-MM.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the result.")] = 60.0,
) -> None:
    """Publish a monthly edition (all categories at once); wait for the publisher's answer."""
    settings = get_settings()
    check_command(settings, "edition publish")
    try:
        code, message = publish_edition(settings, edition, timeout)
    except TopicsNotReady as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except NoCommandKey as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(message)
    raise typer.Exit(code)
