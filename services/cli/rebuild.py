"""`observatoire rebuild`: wipe the derived Redis view and rebuild it from the topics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.cli.secure_start import check_command
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
    check_command(settings, "rebuild")
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
    with _progress(console, "scorer", totals) as advance:
        report = asyncio.run(rebuild(settings, progress=advance, workers=workers))
    console.print(
        f"rebuilt from {report.accounts} account records and {report.metrics} snapshots "
        f"({report.unexamined} superseded by a newer valid one, not validated) "
        f"in {report.seconds:.1f} s" + (f"; rejected: {report.rejected}" if report.rejected else "")
    )
    from services.publisher.rebuild import rebuild_publisher

    with _progress(console, "publisher", totals) as advance:
        publisher_report = asyncio.run(rebuild_publisher(settings, progress=advance))
    console.print(f"rebuilt the {publisher_report.summary()}")


@contextlib.contextmanager
def _progress(
    console: Console, who: str, totals: dict[str, int]
) -> Iterator[Callable[[str, int], None]]:
    """A bar per topic; yields `advance(topic, records)`. A bar's total grows with the records
    read when the end offsets came out short (the local broker under-reports them for
    partitions written in multi-record batches)."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks = {t: bar.add_task(f"{who} {t}", total=total) for t, total in totals.items()}
        done = dict.fromkeys(totals, 0)

        def advance(topic: str, records: int) -> None:
            done[topic] += records
            bar.update(tasks[topic], completed=done[topic], total=max(totals[topic], done[topic]))

        yield advance
