"""`observatoire rebuild`: wipe the derived Redis view and rebuild it from the topics."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from services.common.contracts import (
    TOPIC_ACCOUNTS,
    TOPIC_COMMAND_RESULTS,
    TOPIC_EDITIONS,
    TOPIC_METRICS,
    TOPIC_RANK_CHANGES,
)
from services.common.kafka import TopicsNotReady, end_offsets, verify_topics
from services.common.settings import get_settings


def rebuild_command(
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Processes sharing obs.metrics.v1's partitions (default: OBS_REBUILD_WORKERS).",
        ),
    ] = None,
) -> None:
    """Rebuild standings, details and summaries from obs.accounts.v1 and obs.metrics.v1.

    Then the publisher's facts from its own topics. Stop the scorer and the publisher first
    (their consumer groups keep their offsets and resume after).
    """
    from services.scorer.rebuild import rebuild

    settings = get_settings()
    console = Console(stderr=True)
    try:
        verify_topics(
            settings,
            [
                settings.topic(name)
                for name in (
                    TOPIC_ACCOUNTS,
                    TOPIC_METRICS,
                    TOPIC_RANK_CHANGES,
                    TOPIC_EDITIONS,
                    TOPIC_COMMAND_RESULTS,
                )
            ],
        )
    except TopicsNotReady as exc:
        console.print(f"error: {exc}")
        raise typer.Exit(2) from exc
    totals = {t: sum(end_offsets(settings, t).values()) for t in (TOPIC_ACCOUNTS, TOPIC_METRICS)}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks = {t: bar.add_task(t, total=totals[t]) for t in totals}
        report = asyncio.run(
            rebuild(
                settings,
                progress=lambda topic, n: _advance(bar, tasks[topic], n),
                workers=workers,
            )
        )
    console.print(
        f"rebuilt from {report.accounts} account records and {report.metrics} snapshots "
        f"({report.unexamined} superseded by a newer valid one, not validated) "
        f"in {report.seconds:.1f} s" + (f"; rejected: {report.rejected}" if report.rejected else "")
    )
    from services.publisher.rebuild import rebuild_publisher

    publisher_report = asyncio.run(rebuild_publisher(settings))
    console.print(f"rebuilt the {publisher_report.summary()}")


def _advance(bar: Progress, task: TaskID, records: int) -> None:
    """Count records read; the total grows with them when the end offsets came out short (the
    local broker under-reports them for partitions written in multi-record batches)."""
    bar.advance(task, records)
    state = bar.tasks[task]
    if state.total is not None and state.completed > state.total:
        bar.update(task, total=state.completed)
