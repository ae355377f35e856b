"""`observatoire collect --source graph|csv|sim [--file PATH] [--once]`: collect, with progress.

The operator's way to run a collector source in the foreground: the same code as the
collector service (`observatoire service collector`), with a progress bar on stderr and a
summary. Exit codes: 0 done; 1 some CSV rows were skipped or some snapshots could not be
delivered before the end (they stay spooled for the next run); 2 the source cannot run (no
token, no file, not a collector CSV, topics missing).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from services.cli.secure_start import check_command
from services.common.kafka import TopicsNotReady
from services.common.settings import get_settings


class RichProgress:
    """The collector's `Progress` as a rich bar on stderr (one task per phase)."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def begin(self, description: str, total: float | None = None) -> None:
        if self._task is not None:
            self._progress.stop_task(self._task)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, amount: float = 1.0) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)

    def update(self, completed: float) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=completed)

    def note(self, message: str) -> None:
        self._progress.console.print(message)


def collect_command(
    source: str = typer.Option(..., "--source", help="graph | csv | sim"),
    file: Path | None = typer.Option(
        None, "--file", dir_okay=False, help="The CSV file to import (--source csv)."
    ),
    once: bool = typer.Option(
        False, "--once", help="One round (every due account, one simulated step), then exit."
    ),
) -> None:
    """Collect snapshots into obs.metrics.v1 from the Graph API, a CSV file or the simulator."""
    from services.collector.delivery import CollectorUnavailable
    from services.collector.main import run_collector

    console = Console(stderr=True, soft_wrap=True)  # messages stay whole lines (grep-able)
    settings = get_settings()
    check_command(settings, "collect")
    try:
        with RichProgress(console) as progress:
            report = run_collector(settings, source, once=once, file=file, progress=progress)
    except (CollectorUnavailable, TopicsNotReady) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    for line in report.skipped_rows:
        console.print(f"skipped {line}", highlight=False)
    console.print(
        f"{report.source}: {report.spooled} record(s) collected, {report.delivered} confirmed "
        f"by the broker"
        + (f", {len(report.skipped_rows)} row(s) skipped" if report.skipped_rows else "")
        + (f", {report.pending} still spooled" if report.pending else ""),
        highlight=False,
    )
    if report.skipped_rows or (report.pending and not report.stopped):
        raise typer.Exit(1)


def main() -> None:
    """`python -m services.cli.collect …` (until `collect` is registered in the main CLI)."""
    typer.run(collect_command)


if __name__ == "__main__":
    main()
