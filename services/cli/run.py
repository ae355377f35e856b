"""`observatoire run`: the whole local observatory in the foreground.

Starts Redis (nothing on disk; with OBS_REDIS_CLUSTER a three-master cluster, OBS_REDIS_URL's
port the first master) and the in-memory Tansu broker, creates the topics, then the
services as child processes (`--scorers N`: N scorer workers in one consumer group, worker i
with OBS_WORKER_INDEX=i, so its metrics port is OBS_SCORER_METRICS_PORT + 100 i), and stops
everything within 10 s of Ctrl-C or SIGTERM. Without
OBS_COMMAND_KEY it generates the key operator commands are signed with, writes it to
RUN_DIR/command.key (mode 0600, where the CLI finds it) and gives it to the services.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import typer

from services.common.commands.keys import local_key_path, write_local_key
from services.common.kafka import create_topics
from services.common.lifecycle import arm_shutdown_watchdog, configure_logging
from services.common.localstack import (
    LocalRedisCluster,
    LocalServiceError,
    RedisServer,
    TansuBroker,
)
from services.common.settings import Settings, get_settings

SERVICE = "run"
CHILD_STOP_SECONDS = 8.0  # children's own watchdogs fire at 7 s
RESTARTS_PER_MINUTE = 5
MAX_SCORERS = 12  # the partitions of obs.metrics.v1: a thirteenth worker would sit idle


class Child:
    """One service process, restarted if it dies while the stack is up."""

    def __init__(
        self, name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name, self.args, self.env = name, args, env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts: list[float] = []

    def start(self) -> None:
        self.starts = [t for t in self.starts if t > time.monotonic() - 60] + [time.monotonic()]
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "service", *self.args],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # we forward the stop ourselves, once
            env=self.env,  # None: this process's environment
        )
        log_file.close()

    def stop_async(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def wait(self, deadline: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            return self.proc.wait()


def scorer_workers(settings: Settings, scorers: int) -> list[tuple[str, int]]:
    """(child name, metrics port or 0) of each scorer worker: one worker is `scorer`, several
    are `scorer-0` … `scorer-{N-1}`, worker i running with OBS_WORKER_INDEX=i."""
    if not 1 <= scorers <= MAX_SCORERS:
        raise ValueError(f"--scorers {scorers}: from 1 to {MAX_SCORERS} (the metrics partitions)")
    return [
        (
            "scorer" if scorers == 1 else f"scorer-{index}",
            settings.model_copy(update={"worker_index": index}).metrics_port(
                settings.scorer_metrics_port
            ),
        )
        for index in range(scorers)
    ]


def service_children(
    settings: Settings,
    source: str,
    file: Path | None,
    log_dir: Path,
    env: dict[str, str] | None,
    scorers: int = 1,
) -> list[Child]:
    """The stack's service processes: the scorer workers, the publisher, the API and (unless
    `source` is none) the collector."""
    base = dict(os.environ) if env is None else env
    children = [
        Child(name, ["scorer"], log_dir, base | {"OBS_WORKER_INDEX": str(index)})
        for index, (name, _port) in enumerate(scorer_workers(settings, scorers))
    ]
    children += [
        Child("publisher", ["publisher"], log_dir, env),
        Child("api", ["api"], log_dir, env),
    ]
    if source != "none":
        args = ["collector", "--source", source]
        if file is not None:
            args += ["--file", str(file.resolve())]
        children.append(Child("collector", args, log_dir, env))
    return children


def run_stack(settings: Settings, source: str, file: Path | None, scorers: int = 1) -> None:
    """Run broker, Redis and every service until a stop signal."""
    log = configure_logging(SERVICE, settings.log_level)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        if not stop.is_set():
            arm_shutdown_watchdog(SERVICE, 9.5, log)
            stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    log_dir = settings.run_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    redis: RedisServer | LocalRedisCluster
    if settings.redis_cluster:
        redis = LocalRedisCluster.from_settings(settings, log_dir)
    else:
        redis = RedisServer.from_settings(settings, log_dir / "redis.log")
    broker = TansuBroker.from_settings(settings, log_dir / "tansu.log")
    children: list[Child] = []
    try:
        redis.start()
        if isinstance(redis, LocalRedisCluster):
            log.info(
                "local Redis Cluster (OBS_REDIS_CLUSTER=true): %s, seed %s; it %s",
                redis.summary,
                settings.redis_where,
                redis.auth_summary,
            )
        else:
            log.info("local Redis on %s %s", settings.redis_where, redis.auth_summary)
        broker.start()
        log.warning(
            "the local broker on %s runs Kafka unauthenticated (PLAINTEXT, no ACLs): Tansu 0.6.0 "
            "cannot authenticate; production runs SASL over TLS (docs/operations.md)",
            settings.kafka_bootstrap,
        )
        reports = create_topics(settings)
        if not all(report.ok for report in reports):
            raise LocalServiceError("topic verification failed; see `observatoire topics create`")
        from services.cli.topics import seed_bundled_accounts

        seeded = seed_bundled_accounts(settings, log.warning)
        log.info("topics ready (%d), %d bundled accounts seeded", len(reports), seeded)
        env = _children_env(settings, log, source)
        children = service_children(settings, source, file, log_dir, env, scorers)
        for child in children:
            child.start()
        for index, (name, port) in enumerate(scorer_workers(settings, scorers)):
            log.info(
                "%s (worker index %d of %d, one consumer group): metrics %s",
                name,
                index,
                scorers,
                f"http://{settings.metrics_host}:{port}/metrics" if port else "off",
            )
        _announce_when_ready(settings, stop, log)
        while not stop.wait(0.5):
            for child in children:
                if child.proc is not None and child.proc.poll() is not None and not stop.is_set():
                    code = child.proc.returncode
                    if len(child.starts) >= RESTARTS_PER_MINUTE:
                        log.error(
                            "%s keeps exiting (code %s); see %s", child.name, code, child.log_path
                        )
                        stop.set()
                        break
                    log.warning(
                        "%s exited with code %s; restarting (log: %s)",
                        child.name,
                        code,
                        child.log_path,
                    )
                    child.start()
    finally:
        started = time.monotonic()
        for child in children:
            child.stop_async()
        deadline = time.monotonic() + CHILD_STOP_SECONDS
        for child in children:
            code = child.wait(deadline)
            log.info("%s stopped (exit %s)", child.name, code)
        broker.stop(timeout=1.0)
        redis.stop(timeout=1.0)
        log.info("observatoire stopped in %.1f s", time.monotonic() - started)


def _children_env(
    settings: Settings, log: logging.Logger, source: str = "none"
) -> dict[str, str] | None:
    """The services' environment: this one, plus a generated command key when none is set
    (written to RUN_DIR/command.key for the CLI; the key itself is never logged), plus, on a
    local cluster with replicas, a replica to wait for unless OBS_REDIS_WAIT_REPLICAS says
    otherwise (a failover then loses nothing: docs/operations.md), plus, with the simulator,
    the demo (three months replayed as fast as the broker takes, months published
    automatically) unless OBS_SIM_DEMO or OBS_EDITION_AUTO_PUBLISH_HOURS say otherwise."""
    extra: dict[str, str] = {}
    if source == "sim":
        extra |= _demo_env(settings, log)
    if settings.command_key is None or not settings.command_key.get_secret_value():
        key = write_local_key(settings)
        log.info(
            "no OBS_COMMAND_KEY: generated a command key for this run and wrote it to %s "
            "(mode 0600); the services sign and verify operator commands with it, and the CLI "
            "reads it from there",
            local_key_path(settings),
        )
        extra["OBS_COMMAND_KEY"] = key.get_secret_value()
    replicas = settings.redis_cluster_replicas if settings.redis_cluster else 0
    if replicas and "OBS_REDIS_WAIT_REPLICAS" not in os.environ:
        extra["OBS_REDIS_WAIT_REPLICAS"] = str(replicas)
        log.info(
            "each batch waits for its Redis writes on %d replica(s) of every master before "
            "it is committed (OBS_REDIS_WAIT_REPLICAS)",
            replicas,
        )
    return os.environ | extra if extra else None


def _demo_env(settings: Settings, log: logging.Logger) -> dict[str, str]:
    """What the simulator's demo changes in the services' environment, unless set."""
    extra: dict[str, str] = {}
    if "sim_demo" not in settings.model_fields_set:
        extra["OBS_SIM_DEMO"] = "true"
    if "edition_auto_publish_hours" not in settings.model_fields_set:
        extra["OBS_EDITION_AUTO_PUBLISH_HOURS"] = f"{settings.edition_grace_hours:g}"
    if extra:
        log.info(
            "simulated demo: the last three months replayed as fast as the broker takes, each "
            "month published %g h (event time) after its end, so the first editions appear "
            "within minutes (%s to change it)",
            settings.edition_grace_hours,
            " / ".join(sorted(extra)),
        )
    return extra


def _announce_when_ready(settings: Settings, stop: threading.Event, log: logging.Logger) -> None:
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{settings.api_url}/readyz", timeout=1).status_code == 200:
                log.info(
                    "observatoire ready: %s/api/v1/standings/departements?limit=10 · API docs "
                    "%s/docs · metrics %s/metrics · logs in %s",
                    settings.api_url,
                    settings.api_url,
                    settings.api_url,
                    settings.run_dir / "logs",
                )
                return
        stop.wait(0.5)
    if not stop.is_set():
        log.error("the API did not become ready within 60 s; see %s", settings.run_dir / "logs")


def run_command(
    source: str | None = typer.Option(
        None,
        help="sim | graph | csv | none (collect nothing). Default: graph when OBS_GRAPH_TOKENS "
        "is set, else sim.",
    ),
    file: Path | None = typer.Option(None, help="Input file for --source csv."),
    scorers: int = typer.Option(
        1,
        min=1,
        max=MAX_SCORERS,
        help="Scorer workers (one consumer group); worker i serves its metrics on "
        "OBS_SCORER_METRICS_PORT + 100 i.",
    ),
) -> None:
    """The whole local stack in the foreground; Ctrl-C or SIGTERM stops it within 10 s."""
    settings = get_settings()
    if source is None:
        source = "graph" if settings.graph_token_list else "sim"
    if source not in {"sim", "graph", "csv", "none"}:
        typer.echo(f"error: unknown source {source!r} (sim, graph, csv or none)", err=True)
        raise typer.Exit(2)
    try:
        scorer_workers(settings, scorers)  # every worker's metrics port exists
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if source in {"graph", "csv"}:
        from services.collector.delivery import CollectorUnavailable
        from services.collector.main import check_source

        try:
            check_source(settings, source, file)  # refuse now, not in a restart loop
        except CollectorUnavailable as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
    try:
        run_stack(settings, source, file, scorers)
    except LocalServiceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    os._exit(0)
