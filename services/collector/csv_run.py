"""The `csv` source: one pass over a backfill file, its snapshots spooled in chunks.

Parsing is `csv_source`'s (pure); this reads the file with progress, logs and counts the
rows it skipped, and spools the snapshots `CSV_CHUNK` at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from services.collector import metrics as m
from services.collector.csv_source import CsvFormatError, parse_csv
from services.collector.delivery import CollectorUnavailable
from services.collector.producer import SpooledProducer, metrics_key
from services.collector.progress import Progress
from services.common.clock import utcnow
from services.common.contracts import TOPIC_METRICS
from services.common.settings import Settings

CSV_CHUNK = 500


def run_csv(
    settings: Settings,
    producer: SpooledProducer,
    file: Path,
    stop: threading.Event,
    progress: Progress,
    log: logging.Logger,
) -> tuple[int, list[str]]:
    """Import `file`; return the snapshots spooled and the rows skipped (`file:line: reason`)."""
    progress.begin(f"reading {file.name}", total=file.stat().st_size)
    try:
        with file.open("r", encoding="utf-8-sig", newline="") as handle:
            result = parse_csv(_progress_lines(handle, progress), now=utcnow())
    except CsvFormatError as exc:
        raise CollectorUnavailable(f"{file}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise CollectorUnavailable(f"{file}: not UTF-8 text ({exc.reason})") from exc
    skipped = [f"{file}:{problem.line}: {problem.reason}" for problem in result.problems]
    for line in skipped:
        log.warning("skipped %s", line)
    m.CSV_ROWS.labels("imported").inc(result.rows - len(result.problems))
    m.CSV_ROWS.labels("skipped").inc(len(result.problems))
    log.info(
        "csv: %d row(s): %d snapshot(s), %d post(s) (%d outside every window), %d skipped",
        result.rows,
        result.snapshots,
        result.posts,
        result.posts_unused,
        len(result.problems),
    )
    progress.begin(f"spooling {len(result.events)} snapshots", total=len(result.events))
    spooled = 0
    for index in range(0, len(result.events), CSV_CHUNK):
        chunk = result.events[index : index + CSV_CHUNK]
        spooled += producer.submit(
            TOPIC_METRICS, chunk, key=metrics_key, time_field="observed_at", stop=stop
        )
        progress.advance(len(chunk))
    return spooled, skipped


def _progress_lines(handle: Iterator[str], progress: Progress) -> Iterator[str]:
    for line in handle:
        progress.advance(len(line.encode("utf-8")))
        yield line
