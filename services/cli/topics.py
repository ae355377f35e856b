"""`observatoire topics …`: create and verify the contract topics, seed `obs.accounts.v1`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from services.cli.secure_start import check_command
from services.common.account_seed import seed_accounts_if_empty
from services.common.contracts import TOPIC_ACCOUNTS
from services.common.kafka import TopicReport, TopicsNotReady, create_topics, topic_is_empty
from services.common.settings import Settings, get_settings

app = typer.Typer(help="Kafka topics of the contract.", no_args_is_help=True)


@app.callback()
def _topics() -> None:
    """Kafka topics of the contract (names, partitions, retention: ARCHITECTURE.md)."""


@app.command("create")
def create() -> None:
    """Create every contract topic (idempotent), verify it, seed obs.accounts.v1 when empty."""
    console = Console()
    settings = get_settings()
    check_command(settings, "topics create")
    try:
        code = run_create(settings, console)
    except TopicsNotReady as exc:  # the broker cannot be reached
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    raise typer.Exit(code)


def run_create(settings: Settings, console: Console) -> int:
    """What `topics create` does; returns the exit code (1 when a topic is not as contracted)."""
    reports = create_topics(settings)
    console.print(render_reports(reports, settings))
    problems = [problem for report in reports for problem in report.problems]
    for problem in problems:
        console.print(f"[red]✗[/red] {problem}")
    if problems:
        console.print(
            f"[red]{len(problems)} problem(s): the topics do not match the contract.[/red] "
            "Services will refuse to start until they do (docs/operations.md)."
        )
        return 1
    unverified = sorted({key for report in reports for key in report.configs_unverified})
    if unverified:
        console.print(f"[yellow]not reported by the broker, not verified:[/yellow] {unverified}")
    seeded = seed_bundled_accounts(
        settings, lambda text: console.print(f"[yellow]![/yellow] {text}")
    )
    if seeded:
        console.print(f"seeded {seeded} bundled accounts into {settings.topic(TOPIC_ACCOUNTS)}")
    else:
        console.print(f"{TOPIC_ACCOUNTS} already holds records (or none bundled): not seeded")
    console.print(f"[green]✓[/green] {len(reports)} topics ready on {settings.kafka_bootstrap}")
    return 0


def render_reports(reports: list[TopicReport], settings: Settings) -> Table:
    """The per-topic report as a rich table."""
    table = Table(title=f"topics on {settings.kafka_bootstrap} ({settings.broker_profile})")
    for column in ("topic", "partitions", "cleanup.policy", "retention.ms", "status"):
        table.add_column(column)
    for report in reports:
        partitions = f"{report.partitions_actual}/{report.partitions_expected}"
        status = "created" if report.created else "existed"
        table.add_row(
            report.name,
            partitions,
            _config_cell(report, "cleanup.policy"),
            _config_cell(report, "retention.ms"),
            f"[green]{status}[/green]" if report.ok else f"[red]{status}: problem[/red]",
        )
    return table


def _config_cell(report: TopicReport, key: str) -> str:
    wanted = report.configs_expected.get(key, "")
    if key not in report.configs_reported:
        return f"{wanted} (unverified)"
    return report.configs_reported[key]


# --- seeding obs.accounts.v1 -----------------------------------------------------------------


def bundled_account_records(
    report: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """The `obs.accounts.v1` records of the bundled accounts file (the seeding hook).

    Rows the loader cannot use are left out and told to `report` with their line and reason
    (never silently dropped or "fixed"); `changed_at` is the time of seeding.
    """
    from services.common.accounts import account_records, bundled_accounts_path, load_accounts
    from services.common.clock import utcnow

    loaded = load_accounts()
    for problem in loaded.problems:
        if report is not None:
            report(
                f"{bundled_accounts_path().name} line {problem.line}: {problem.territory_id} "
                f"{problem.raw!r}: {problem.reason} (not seeded)"
            )
    return account_records(loaded, utcnow())


def seed_bundled_accounts(settings: Settings, report: Callable[[str], None] | None = None) -> int:
    """Seed `obs.accounts.v1` from the bundled accounts if that topic is empty; the count."""
    if not topic_is_empty(settings, TOPIC_ACCOUNTS):
        return 0  # skip loading the registry: nothing to do
    return seed_accounts_if_empty(settings, bundled_account_records(report))
