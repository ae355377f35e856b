"""`observatoire accounts set ID HANDLE`: change the account a territory uses, and wait
until it is applied (the publisher recorded it in obs.accounts.v1 and the scorer re-derived
the territory's standings from the new account).

Exit 0 when applied, 2 when refused (an invalid handle or unknown territory, checked here
and again by the publisher; a command the publisher cannot authenticate) or when there is no
command key to sign with, 1 when it was not applied in time.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from services.cli.secure_start import check_command
from services.common.commands.keys import NoCommandKey
from services.common.commands.protocol import ask, no_result_message
from services.common.handles import InvalidHandle, normalise_handle
from services.common.kafka import TopicsNotReady
from services.common.settings import Settings, get_settings
from services.common.territories import load_registry
from services.common.view.accounts import read_link
from services.common.view.client import redis_client

app = typer.Typer(help="Which account each territory uses.", no_args_is_help=True)


@app.callback()
def _accounts() -> None:
    """Which account each territory uses."""


def _scorer_applied(settings: Settings, territory_id: str, handle: str, timeout: float) -> bool:
    """Wait until the scorer's account mapping shows the territory's new handle."""
    client = redis_client(settings, sync=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            link = read_link(client, territory_id)
            if link is not None and link.handle == handle:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
    finally:
        client.close()


def set_account(
    settings: Settings, territory_id: str, raw_handle: str, timeout: float
) -> tuple[int, str]:
    """Request a territory's account change; returns the exit code and what to print."""
    try:
        handle = normalise_handle(raw_handle)
    except InvalidHandle as invalid:
        return 2, f"refused: handle {raw_handle!r} {invalid.reason}"
    registry = load_registry()
    if territory_id not in registry:
        return (
            2,
            f"refused: unknown territory {territory_id!r} (see `observatoire territories list`)",
        )
    started = time.monotonic()
    command, result = ask(
        settings,
        command="set_account",
        args={"id": territory_id, "handle": handle},
        timeout=timeout,
    )
    if result is None:
        return 1, no_result_message(command, timeout)
    if result["status"] == "refused":
        return 2, f"refused: {result['reason']}"
    left = max(0.0, timeout - (time.monotonic() - started))
    if not _scorer_applied(settings, territory_id, handle, left):
        return 1, (
            f"{result['reason']}; recorded in obs.accounts.v1, but the scorer has not applied "
            f"it within {timeout:g} s (is it running?)"
        )
    return 0, f"{result['reason']}; applied to the standings"


@app.command("set")
def set_command(
    territory_id: Annotated[str, typer.Argument(metavar="ID", help="Territory id, e.g. dep-32.")],
    handle: Annotated[str, typer.Argument(help="Instagram handle, with or without @.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait until applied.")] = 60.0,
) -> None:
    """Set the account of a territory (a set_account command); wait until it is applied."""
    settings = get_settings()
    check_command(settings, "accounts set")
    try:
        code, message = set_account(settings, territory_id, handle, timeout)
    except TopicsNotReady as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except NoCommandKey as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(message)
    raise typer.Exit(code)
