"""`observatoire rebuild`: wipe the derived Redis view and rebuild it from the topics."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.kafka import TopicsNotReady, end_offsets, verify_topics
from services.common.settings import get_settings


def rebuild_command() -> None:
    """Rebuild standings, details and summaries from obs.accounts.v1 and obs.metrics.v1.

    Stop the scorer first (its consumer group keeps its offsets and resumes after).
    """
    from services.scorer.rebuild import rebuild

    settings = get_settings()
    console = Console(stderr=True)
    try:
        verify_topics(settings, [settings.topic(TOPIC_ACCOUNTS), settings.topic(TOPIC_METRICS)])
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
            rebuild(settings, progress=lambda topic, n: bar.advance(tasks[topic], n))
        )
    console.print(
        f"rebuilt from {report.accounts} account records and {report.metrics} snapshots "
        f"in {report.seconds:.1f} s" + (f"; rejected: {report.rejected}" if report.rejected else "")
    )
