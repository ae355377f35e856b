"""Run a collector source and produce its snapshots to `obs.metrics.v1`.

Three sources (docs/collector.md): `graph` (Instagram Graph API business discovery, the
accounts of `obs.accounts.v1`, under rate limits), `csv` (a backfill file) and `sim` (the
simulated world). Whatever the source, snapshots go through the on-disk spool and are
counted as produced only once the broker confirmed them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from prometheus_client import start_http_server

from services.collector import metrics as m
from services.collector.accounts_follower import AccountsFollower
from services.collector.budget import BudgetPool, NoUsableToken
from services.collector.csv_source import CsvFormatError, parse_csv
from services.collector.graph import GraphClient, GraphPolicy
from services.collector.graph_source import GraphCollector
from services.collector.producer import SpooledProducer, metrics_key, territory_key
from services.collector.progress import NullProgress, Progress
from services.collector.scheduler import Schedule
from services.collector.simulator import SimulatedWorld
from services.collector.spool import Spool, SpoolInterrupted, SpoolLocked
from services.common.accounts import load_accounts
from services.common.clock import PARIS, format_timestamp, parse_timestamp, utcnow
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.kafka import BrokerUnreachable, verify_topics
from services.common.lifecycle import arm_shutdown_watchdog, configure_logging, log_stopped
from services.common.localstack import port_is_open
from services.common.settings import Settings
from services.common.territories import load_registry

SERVICE = "collector"
SOURCES = ("sim", "graph", "csv")
DEFAULT_HISTORY = timedelta(days=75)
DEMO_MONTHS = 3
CSV_CHUNK = 500
SCHEDULE_STATE = "graph-schedule.json"


class CollectorUnavailable(RuntimeError):
    """A source that cannot run with the current settings (the message says what to set)."""


@dataclass(slots=True)
class CollectorReport:
    """What a run did; `pending` records were still spooled when it ended."""

    source: str
    spooled: int = 0
    delivered: int = 0
    pending: int = 0
    skipped_rows: list[str] = field(default_factory=list)
    stopped: bool = False  # a stop signal ended the run


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
    _verify_topics(cs, log)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():

        def _on_signal(signum: int, _frame: object) -> None:
            arm_shutdown_watchdog(SERVICE, cs.shutdown_watchdog_seconds, log)
            stop.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    if cs.collector_metrics_port:
        try:
            start_http_server(cs.collector_metrics_port, addr=cs.metrics_host)
        except OSError as exc:  # e.g. `collect` beside a running collector service
            log.warning("metrics server not started on port %d: %s", cs.collector_metrics_port, exc)
    try:
        spool = Spool(cs.spool_dir / source, max_bytes=cs.spool_max_bytes)
    except SpoolLocked as exc:
        raise CollectorUnavailable(str(exc)) from exc
    producer = SpooledProducer(cs, spool, source=source, on_fatal=stop.set).start()
    report = CollectorReport(source)
    try:
        try:
            if source == "sim":
                report.spooled = _run_sim(cs, producer, stop, once, progress, log)
            elif source == "graph":
                report.spooled = _run_graph(cs, producer, stop, once, progress, log)
            else:
                assert file is not None
                report.spooled, report.skipped_rows = _run_csv(
                    cs, producer, file, stop, progress, log
                )
        except SpoolInterrupted:
            pass  # stopped while the spool was full: what is spooled stays for the next run
        if producer.fatal is not None:
            raise producer.fatal
        report.stopped = stop.is_set()
        if (once or source == "csv") and not stop.is_set():
            _drain(cs, producer, stop, progress, log)
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


def _verify_topics(settings: Settings, log: logging.Logger) -> None:
    """Refuse to start on missing topics; an unreachable broker only delays delivery."""
    servers = [server.rpartition(":") for server in settings.kafka_servers]
    if not any(port_is_open(host or "127.0.0.1", int(port or 9092)) for host, _, port in servers):
        log.warning(
            "broker %s unreachable: collecting anyway, snapshots wait in the spool %s",
            settings.kafka_bootstrap,
            settings.spool_dir,
        )
        return
    try:
        verify_topics(settings, [settings.topic(TOPIC_METRICS), settings.topic(TOPIC_ACCOUNTS)])
    except BrokerUnreachable as exc:
        log.warning("%s; collecting anyway, snapshots wait in the spool", exc)


def _drain(
    settings: Settings,
    producer: SpooledProducer,
    stop: threading.Event,
    progress: Progress,
    log: logging.Logger,
) -> None:
    """Wait (bounded) until the broker confirmed everything spooled."""
    pending = producer.spool.records
    if not pending:
        return
    progress.begin("delivering to the broker", total=pending)
    log.info("waiting for the broker to confirm %d record(s)", pending)
    delivered_before = producer.delivered
    waited = 0.0
    while waited < settings.collector_drain_timeout_seconds and not stop.is_set():
        if producer.wait_drained(0.25) or producer.fatal is not None:
            break
        waited += 0.25
        progress.update(producer.delivered - delivered_before)
    progress.update(producer.delivered - delivered_before)
    if producer.fatal is not None:
        raise producer.fatal


# --- simulator -------------------------------------------------------------------------------


def demo_start(now: datetime) -> datetime:
    """Midnight (Paris) on the first day of the month DEMO_MONTHS before `now`'s month."""
    local = now.astimezone(PARIS)
    month_index = local.year * 12 + local.month - 1 - DEMO_MONTHS
    first = datetime(month_index // 12, month_index % 12 + 1, 1, tzinfo=PARIS)
    return first.astimezone(now.tzinfo)


def simulated_world(settings: Settings, start: datetime) -> SimulatedWorld:
    """The world the simulator source produces, as configured."""
    real = {territory_id for territory_id, _ in load_accounts().accounts}
    return SimulatedWorld(
        load_registry(),
        seed=settings.sim_seed,
        real_handles=real,
        shares=settings.sim_shares,
        epoch=start,
        dead_links=settings.sim_dead_links,
        renames=settings.sim_renames,
    )


def _run_sim(
    settings: Settings,
    producer: SpooledProducer,
    stop: threading.Event,
    once: bool,
    progress: Progress,
    log: logging.Logger,
) -> int:
    now = utcnow()
    if settings.sim_start:
        start = parse_timestamp(settings.sim_start)
    else:
        start = demo_start(now) if settings.sim_demo else now - DEFAULT_HISTORY
    world = simulated_world(settings, start)
    spooled = producer.submit(
        TOPIC_ACCOUNTS,
        world.account_records(),
        key=territory_key,
        time_field="changed_at",
        stop=stop,
    )
    log.info(
        "simulator: %d simulated accounts registered (seed %d%s), replaying from %s",
        spooled,
        settings.sim_seed,
        ", demo mode" if settings.sim_demo else "",
        format_timestamp(start),
    )
    for dead in world.dead_links.values():
        log.info("simulator: %s goes dead at %s", dead.handle, format_timestamp(dead.since))
    for rename in world.renames.values():
        log.info(
            "simulator: %s becomes %s at %s (registered at %s)",
            rename.old_handle,
            rename.new_handle,
            format_timestamp(rename.renamed_at),
            format_timestamp(rename.registered_at),
        )
    step = timedelta(hours=settings.sim_step_hours)
    rounds = (
        1 if once else max(1, -(-int((now - start).total_seconds()) // int(step.total_seconds())))
    )
    progress.begin("simulator: rounds (event time up to now)", total=rounds)
    moment = start
    while not stop.is_set():
        previous, moment = moment, min(moment + step, utcnow())
        changes = world.account_changes(previous, moment)
        if changes:
            spooled += producer.submit(
                TOPIC_ACCOUNTS, changes, key=territory_key, time_field="changed_at", stop=stop
            )
        sent = producer.submit(
            TOPIC_METRICS,
            world.snapshots(moment),
            key=metrics_key,
            time_field="observed_at",
            stop=stop,
        )
        spooled += sent
        # Tests and operators read this line: the round's snapshots are durably spooled.
        log.info(
            "simulator: round %s: %d snapshots spooled (%d awaiting the broker)",
            format_timestamp(moment),
            sent,
            producer.spool.records,
        )
        progress.advance()
        if once:
            break
        catching_up = moment + step <= utcnow()
        if settings.sim_demo and catching_up:
            # As fast as the broker takes it: the next round once this one is mostly out.
            producer.spool.wait_until(
                lambda spool: spool.records <= len(world.accounts) or stop.is_set(), None
            )
        else:
            stop.wait(settings.sim_interval_seconds)
    return spooled


# --- Graph API -------------------------------------------------------------------------------


def _run_graph(
    settings: Settings,
    producer: SpooledProducer,
    stop: threading.Event,
    once: bool,
    progress: Progress,
    log: logging.Logger,
) -> int:
    follower = AccountsFollower(settings).start()
    try:
        deadline = settings.collector_drain_timeout_seconds if once else None
        progress.begin("reading obs.accounts.v1")
        waited = 0.0
        while not follower.ready.wait(0.2) and not stop.is_set():
            waited += 0.2
            if deadline is not None and waited >= deadline:
                raise CollectorUnavailable(
                    f"could not read {settings.topic(TOPIC_ACCOUNTS)} within {deadline:.0f} s "
                    f"(broker {settings.kafka_bootstrap}): no account to observe"
                )
        if stop.is_set():
            return 0
        tokens = settings.graph_token_list
        log.info(
            "graph: %d token(s), %d calls per hour each, cadence %g h, %d account(s) mapped",
            len(tokens),
            settings.graph_calls_per_hour,
            settings.collector_cadence_hours,
            len(follower.handles()),
        )
        spooled = 0

        def submit(events: list[dict]) -> int:
            nonlocal spooled
            count = producer.submit(
                TOPIC_METRICS, events, key=metrics_key, time_field="observed_at", stop=stop
            )
            spooled += count
            return count

        async def collect() -> None:
            pool = BudgetPool(
                tokens,
                calls_per_window=settings.graph_calls_per_hour,
                window_seconds=3600.0,
                throttle_pause=settings.graph_throttle_pause_seconds,
            )
            assert settings.graph_ig_user_id is not None
            client = GraphClient(
                base_url=settings.graph_base_url,
                ig_user_id=settings.graph_ig_user_id,
                pool=pool,
                policy=GraphPolicy(
                    timeout=settings.graph_timeout_seconds,
                    max_attempts=settings.graph_max_attempts,
                    page_size=settings.graph_page_size,
                ),
            )
            collector = GraphCollector(
                client,
                Schedule(
                    settings.collector_cadence_hours * 3600,
                    settings.collector_error_retry_hours * 3600,
                ),
                handles=lambda: follower.handles().keys(),
                version=lambda: follower.version,
                submit=submit,
                concurrency=settings.collector_concurrency,
                state_path=producer.spool.directory / SCHEDULE_STATE,
                progress=progress,
            )
            try:
                report = await collector.run(stop, once=once)
            finally:
                await client.aclose()
            log.info(
                "graph: %d call(s); observed %s",
                report.calls,
                ", ".join(f"{n} {status}" for status, n in sorted(report.observed.items()))
                or "nothing",
            )
            if report.no_usable_token is not None:
                raise NoUsableToken(report.no_usable_token)

        try:
            asyncio.run(collect())
        except NoUsableToken as exc:
            raise CollectorUnavailable(str(exc)) from exc
        return spooled
    finally:
        follower.stop()


# --- CSV -------------------------------------------------------------------------------------


def _run_csv(
    settings: Settings,
    producer: SpooledProducer,
    file: Path,
    stop: threading.Event,
    progress: Progress,
    log: logging.Logger,
) -> tuple[int, list[str]]:
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
