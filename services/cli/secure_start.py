"""The start gate of every process that reaches the broker (the services and the operator
commands): its Kafka security settings must make a usable combination, and on the kafka
profile nothing it uses may be unauthenticated unless `OBS_ALLOW_INSECURE=true`
(`services.common.security` decides; this module exits 2 or warns)."""

from __future__ import annotations

from collections.abc import Callable, Collection

import typer

from services.common.kafka.clients import security
from services.common.kafka.profiles import InvalidKafkaSecurity
from services.common.security import (
    COMMAND_NEEDS,
    Need,
    insecure_reasons,
    insecure_warning,
    refusal,
)
from services.common.settings import Settings


def check_start(
    settings: Settings, who: str, needs: Collection[Need], warn: Callable[[str], None]
) -> None:
    """Return when `who` may start on these settings (after `warn`ing of what it runs without,
    under OBS_ALLOW_INSECURE); exit 2 with one message otherwise."""
    try:
        connection = security(settings)
        if connection.tls:
            connection.ssl_context()  # the CA bundle is read now, not at the first client
    except InvalidKafkaSecurity as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    reasons = insecure_reasons(settings, needs)
    if not reasons:
        return
    if not settings.allow_insecure:
        typer.echo(f"error: {refusal(who, reasons)}", err=True)
        raise typer.Exit(2)
    warn(insecure_warning(who, reasons))


def check_command(settings: Settings, command: str) -> None:
    """`check_start` for an operator command (`COMMAND_NEEDS`' key): the warning goes to
    stderr."""
    check_start(
        settings,
        f"`observatoire {command}`",
        COMMAND_NEEDS[command],
        lambda message: typer.echo(f"warning: {message}", err=True),
    )
