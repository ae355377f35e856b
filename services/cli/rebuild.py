"""`observatoire rebuild`: rebuild the derived Redis view from the topics, beside the live one
(services/rebuild.py)."""

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
    restart: Annotated[
        bool,
        typer.Option(
            "--restart",
            help="Give up a rebuild left unfinished (interrupted) and start again.",
        ),
    ] = False,
) -> None:
    """Rebuild the Redis view from the topics, beside the live one, without downtime.

    A new generation of the view is built while the services run (the scorers write both,
    the publisher holds for its part), then readers switch to it and the old one is dropped
    after OBS_REBUILD_GRACE_SECONDS. It works as well with every service stopped.
    """
    from services.rebuild import RebuildRefused, rebuild_view

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
    with _progress(console, ("scorer", "publisher"), totals) as advance:
        try:
            report = asyncio.run(
                rebuild_view(
                    settings,
                    progress=advance,
                    step=lambda what: console.print(f"rebuild: {what}"),
                    workers=workers,
                    restart=restart,
                )
            )
        except RebuildRefused as exc:
            console.print(f"error: {exc}")
            raise typer.Exit(2) from exc
    scorer = report.scorer
    console.print(
        f"generation {report.generation}: scorer's part from {scorer.accounts} account records "
        f"and {scorer.metrics} snapshots ({scorer.covered} with their day's point from "
        f"{scorer.day_summaries} obs.day-summaries.v1 records; {scorer.unexamined} superseded "
        f"by a newer valid one, not validated) in {scorer.seconds:.1f} s"
        + (f"; rejected: {scorer.rejected}" if scorer.rejected else "")
        + (
            f"; day summaries not used: {scorer.day_summaries_refused}"
            if scorer.day_summaries_refused
            else ""
        )
    )
    console.print(
        f"rebuilt the {report.publisher.summary()}"
        + ("" if report.publisher_held else " (no live publisher)")
    )
    console.print(
        f"readers read generation {report.generation} (generation {report.previous} dropped: "
        f"{report.dropped} keys) after {report.seconds:.1f} s"
    )


@contextlib.contextmanager
def _progress(
    console: Console, parts: tuple[str, ...], totals: dict[str, int]
) -> Iterator[Callable[[str, str, int], None]]:
    """A bar per part and topic; yields `advance(part, topic, records)`. A bar's total grows
    with the records read when the end offsets came out short (the local broker under-reports
    them for partitions written in multi-record batches)."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        bars = [(part, topic) for part in parts for topic in totals]
        tasks = {b: bar.add_task(f"{b[0]} {b[1]}", total=totals[b[1]]) for b in bars}
        done = dict.fromkeys(bars, 0)

        def advance(part: str, topic: str, records: int) -> None:
            done[part, topic] += records
            total = max(totals[topic], done[part, topic])
            bar.update(tasks[part, topic], completed=done[part, topic], total=total)

        yield advance
