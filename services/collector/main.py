"""Run a collector source and produce its snapshots to `obs.metrics.v1`.

Three sources (docs/collector.md): `graph` (Instagram Graph API business discovery, the
accounts of `obs.accounts.v1`, under rate limits), `csv` (a backfill file) and `sim` (the
simulated world). Whatever the source, snapshots go through the on-disk spool and are
counted as produced only once the broker confirmed them. Each source's runner is a module
(`sim_run`, `graph_run`, `csv_run`); this one checks the source, dispatches to its runner and
owns the run around it: logging, signals, the metrics server, the spool and the final drain.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from prometheus_client import start_http_server

from services.collector.csv_run import run_csv
from services.collector.delivery import CollectorReport, CollectorUnavailable, check_topics, drain
from services.collector.graph_run import run_graph
from services.collector.producer import SpooledProducer
from services.collector.progress import NullProgress, Progress
from services.collector.sim_run import run_sim
from services.collector.spool import Spool, SpoolInterrupted, SpoolLocked
from services.common.lifecycle import arm_shutdown_watchdog, configure_logging, log_stopped
from services.common.settings import Settings

SERVICE = "collector"
SOURCES = ("sim", "graph", "csv")


def run_collector(
    settings: Settings,
    source: str,
    *,
    once: bool = False,
    file: Path | None = None,
    progress: Progress | None = None,
) -> CollectorReport:
    """Run a source in the foreground until SIGTERM/SIGINT (or one round with `once`).

    CSV imports are always one pass. Raises CollectorUnavailable (settings, file) and
    TopicsNotReady (topics missing or not as contracted) before collecting anything.
    """
    cs = settings
    check_source(cs, source, file)
    progress = progress or NullProgress()
    log = configure_logging(SERVICE, cs.log_level)
    # kafka-python warns several times a second while the broker is away; the sender says it
    # once (unreachable, then back) with the spool depth, which is what an operator needs.
    logging.getLogger("kafka").setLevel(max(logging.ERROR, logging.getLevelName(cs.log_level)))
    check_topics(cs, log)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():

        def _on_signal(signum: int, _frame: object) -> None:
            arm_shutdown_watchdog(SERVICE, cs.shutdown_watchdog_seconds, log)
            stop.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    metrics_port = cs.metrics_port(cs.collector_metrics_port)
    if metrics_port:
        try:
            start_http_server(metrics_port, addr=cs.metrics_host)
        except OSError as exc:  # e.g. `collect` beside a running collector service
            log.warning("metrics server not started on port %d: %s", metrics_port, exc)
    try:
        spool = Spool(cs.spool_dir / source, max_bytes=cs.spool_max_bytes)
    except SpoolLocked as exc:
        raise CollectorUnavailable(str(exc)) from exc
    producer = SpooledProducer(cs, spool, source=source, on_fatal=stop.set).start()
    report = CollectorReport(source)
    try:
        try:
            if source == "sim":
                report.spooled = run_sim(cs, producer, stop, once, progress, log)
            elif source == "graph":
                report.spooled = run_graph(cs, producer, stop, once, progress, log)
            else:
                assert file is not None
                report.spooled, report.skipped_rows = run_csv(
                    cs, producer, file, stop, progress, log
                )
        except SpoolInterrupted:
            pass  # stopped while the spool was full: what is spooled stays for the next run
        if producer.fatal is not None:
            raise producer.fatal
        report.stopped = stop.is_set()
        if (once or source == "csv") and not stop.is_set():
            drain(cs, producer, stop, progress, log)
        report.delivered = producer.delivered
        report.pending = spool.records
        if report.pending:
            log.warning(
                "%d record(s) wait in the spool %s; the next collector run sends them",
                report.pending,
                spool.directory,
            )
    finally:
        producer.close()
        spool.close()
        log_stopped(SERVICE, log)
    return report


def check_source(settings: Settings, source: str, file: Path | None) -> None:
    """Refuse, with what to do, a source that cannot run with these settings."""
    if source not in SOURCES:
        raise CollectorUnavailable(f"unknown source {source!r}: use sim, graph or csv")
    if source == "graph":
        missing = [
            name
            for name, ok in (
                ("OBS_GRAPH_TOKENS", bool(settings.graph_token_list)),
                ("OBS_GRAPH_IG_USER_ID", bool(settings.graph_ig_user_id)),
            )
            if not ok
        ]
        if missing:
            raise CollectorUnavailable(
                f"--source graph needs {' and '.join(missing)}: the Graph API tokens "
                "(comma-separated) and the Instagram business account the calls are made as "
                "(docs/collector.md, 'Graph source')"
            )
    if source == "csv":
        if file is None:
            raise CollectorUnavailable(
                "--source csv needs --file PATH (observatoire collect --source csv --file PATH)"
            )
        if not file.is_file():
            raise CollectorUnavailable(f"--file {file}: no such file")
