"""`observatoire replay FILE [--accounts ACCOUNTS] [--batch]`: replay an events file.

Lines are validated like a consumer would (the `future` rule against this machine's clock);
bad lines are reported with their number and reason and skipped, good ones all produced, in
file order, with confirmed delivery.

With `--batch` nothing is produced: the standings are computed in memory by the reference
batch computation (services/common/reference.py), without broker or Redis, and printed as
JSON; invalid lines are reported on stderr and the exit code stays 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from services.cli.secure_start import check_command
from services.collector.producer import EventProducer, metrics_key, territory_key
from services.common.clock import utcnow
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.kafka import TopicsNotReady, verify_topics
from services.common.reference import compute_standings
from services.common.settings import get_settings
from services.common.validation import Rejection, validate_account, validate_metrics

CHUNK = 1000


def _valid_lines(
    path: Path, validate: Callable[[bytes, int | None], object], bad: list[str]
) -> Iterator[tuple[dict, int]]:
    """Valid events of a JSON-lines file with the bytes read so far; bad lines into `bad`."""
    now_ms = int(utcnow().timestamp() * 1000)
    position = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            position += len(raw)
            line = raw.strip()
            if not line:
                continue
            result = validate(line, now_ms)
            if isinstance(result, Rejection):
                bad.append(f"{path}:{number}: {result.reason}: {result.detail}")
                continue
            yield result.to_dict(), position  # type: ignore[attr-defined]


def _produce(
    producer: EventProducer,
    path: Path,
    topic: str,
    validate: Callable[[bytes, int | None], object],
    key: Callable[[dict], str],
    time_field: str,
) -> tuple[int, list[str]]:
    bad: list[str] = []
    sent = 0
    total = path.stat().st_size
    with Progress(
        TextColumn(f"{path.name} → {topic}"), BarColumn(), DownloadColumn(), transient=True
    ) as progress:
        task = progress.add_task("replay", total=total)
        chunk: list[dict] = []
        for event, position in _valid_lines(path, validate, bad):
            chunk.append(event)
            if len(chunk) >= CHUNK:
                sent += producer.send(topic, chunk, key=key, time_field=time_field)
                chunk.clear()
                progress.update(task, completed=position)
        sent += producer.send(topic, chunk, key=key, time_field=time_field)
        progress.update(task, completed=total)
    return sent, bad


def replay_command(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="JSON lines of obs.metrics.v1."
    ),
    accounts: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="JSON lines of obs.accounts.v1, produced first."
    ),
    batch: bool = typer.Option(
        False,
        "--batch",
        help="Compute the standings without Kafka or Redis and print them as JSON.",
    ),
) -> None:
    """Produce FILE's snapshots into obs.metrics.v1 in file order (after ACCOUNTS' records).

    With --batch, produce nothing: print the standings FILE (and ACCOUNTS) give, as JSON.
    """
    if batch:  # before any broker check: the batch computation needs none
        _batch(file, accounts)
        return
    settings = get_settings()
    check_command(settings, "replay")
    try:
        verify_topics(settings, [settings.topic(TOPIC_METRICS), settings.topic(TOPIC_ACCOUNTS)])
    except TopicsNotReady as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    producer = EventProducer(settings)
    problems: list[str] = []
    try:
        if accounts is not None:
            sent, bad = _produce(
                producer, accounts, TOPIC_ACCOUNTS, validate_account, territory_key, "changed_at"
            )
            problems += bad
            typer.echo(f"{sent} account records produced to {settings.topic(TOPIC_ACCOUNTS)}")
        sent, bad = _produce(
            producer, file, TOPIC_METRICS, validate_metrics, metrics_key, "observed_at"
        )
        problems += bad
        typer.echo(f"{sent} snapshots produced to {settings.topic(TOPIC_METRICS)}")
    finally:
        producer.close()
    for problem in problems:
        typer.echo(f"skipped {problem}", err=True)
    if problems:
        typer.echo(f"{len(problems)} invalid line(s) skipped", err=True)
        raise typer.Exit(1)


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from handle


def _batch(file: Path, accounts: Path | None) -> None:
    """Print `{"current": ..., "editions": ...}` of FILE (and ACCOUNTS) on stdout."""
    now_ms = int(utcnow().timestamp() * 1000)
    try:
        result = compute_standings(
            _lines(file),
            account_lines=_lines(accounts) if accounts is not None else (),
            now_ms=now_ms,
        )
    except OSError as exc:
        typer.echo(f"error: cannot read {exc.filename or file}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from exc
    problems = [
        f"{accounts}:{number}: {reason}: {detail}"
        for number, reason, detail in result.rejected_accounts
    ] + [f"{file}:{number}: {reason}: {detail}" for number, reason, detail in result.rejected]
    typer.echo(orjson.dumps(result.to_json_object()).decode())
    for problem in problems:
        typer.echo(f"skipped {problem}", err=True)
    if problems:
        typer.echo(f"{len(problems)} invalid line(s) skipped", err=True)
