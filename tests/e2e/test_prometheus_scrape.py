"""A real Prometheus (Debian's `prometheus`) scraping the local stack: the collector, two scorer
workers, the publisher and the API, with the deployment's alert rules (their `for:` shortened).

Every target is up; the series an operator watches exist with their labels (consumer lag per
group, topic and partition, each partition reported by the one worker it is assigned to;
processing latency; Redis round trips; events consumed; API requests by route template; the
watermark); then both scorer workers stop and `ObservatoireServiceDown` goes pending, then
firing. A missing `prometheus` binary fails the test: it is installed by the bootstrap
(Debian package `prometheus`)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from services.cli.topics import seed_bundled_accounts
from services.common.clock import format_timestamp, utcnow
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_COMMANDS, TOPIC_METRICS, TOPIC_SCORES
from services.common.localstack import RedisServer, TansuBroker, free_port, port_is_open
from services.common.settings import METRICS_PORT_STRIDE, Settings
from tests.services import (
    REPO_ROOT,
    ServiceProcess,
    fresh_stack,
    isolated_settings,
    service_env,
    wait_for,
)

REDIS_DB = 3
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
SHORT_FOR = "2s"  # every rule's `for:` in the test's copy of the rules
SIM = {  # 119 accounts (régions and départements), a round of snapshots every second
    "OBS_SIM_SHARES": '{"regions": 1, "departements": 1}',
    "OBS_SIM_STEP_HOURS": "24",
    "OBS_SIM_INTERVAL_SECONDS": "1",
}


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if found is None:
        pytest.fail(
            "prometheus is not installed: scripts/bootstrap.sh installs the Debian package "
            "`prometheus` (apt-get install prometheus)",
            pytrace=False,
        )
    return found


class Stack:
    """The services of one test as real processes, and the ports Prometheus scrapes."""

    def __init__(self, settings: Settings, tmp: Path) -> None:
        self.settings, self.tmp = settings, tmp
        start = format_timestamp(utcnow() - timedelta(days=30))
        self.env = service_env(settings, OBS_SIM_START=start, **SIM)
        self.procs: dict[str, ServiceProcess] = {}

    def start(self, name: str, *args: str, **env: str) -> ServiceProcess:
        process = ServiceProcess(
            ["service", *args], self.env | env, self.tmp / f"{name}.log"
        ).start()
        self.procs[name] = process
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{p.log()[-1500:]}" for n, p in self.procs.items())

    def targets(self) -> dict[str, list[str]]:
        s = self.settings
        scorer = s.scorer_metrics_port
        return {
            "api": [f"127.0.0.1:{s.api_port}"],
            "scorer": [f"127.0.0.1:{scorer}", f"127.0.0.1:{scorer + METRICS_PORT_STRIDE}"],
            "publisher": [f"127.0.0.1:{s.publisher_metrics_port}"],
            "collector": [f"127.0.0.1:{s.collector_metrics_port}"],
        }


def _scorer_base_port() -> int:
    """A free port whose worker-1 port (+ METRICS_PORT_STRIDE) is free too, below the kernel's
    ephemeral range: a port taken from that range can be handed to a client connection before
    worker 1 binds it (seen in a clean-clone run: "Address already in use")."""
    for port in range(20_000 + os.getpid() % 500 * 10, 32_000, 7):
        pair = (port, port + METRICS_PORT_STRIDE)
        if not any(port_is_open("127.0.0.1", p) for p in pair) and all(map(_bindable, pair)):
            return port
    raise AssertionError("no free pair of metrics ports below 32000")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def stack(broker: TansuBroker, redis_server: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    ports = {name: free_port() for name in ("api", "publisher", "collector")}
    ports["scorer"] = _scorer_base_port()
    settings = isolated_settings(
        broker,
        redis_server,
        tmp_path / "run",
        REDIS_DB,
        api_port=ports["api"],
        scorer_metrics_port=ports["scorer"],
        publisher_metrics_port=ports["publisher"],
        collector_metrics_port=ports["collector"],
        spool_dir=tmp_path / "spool",
    )
    fresh_stack(settings).close()
    seed_bundled_accounts(settings)
    running = Stack(settings, tmp_path)
    try:
        yield running
    finally:
        for process in running.procs.values():
            process.kill()


class Prometheus:
    """`prometheus` on a free port, its configuration and data in the test's directory."""

    def __init__(self, tmp: Path, targets: dict[str, list[str]]) -> None:
        self.dir = tmp / "prometheus"
        self.dir.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.dir / "prometheus.log"
        rules = yaml.safe_load(ALERTS.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = SHORT_FOR
        (self.dir / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": ["alerts.yml"],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": addresses}]}
                for job, addresses in targets.items()
            ],
        }
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    prometheus_binary(),
                    f"--config.file={self.dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(
            lambda: httpx.get(f"{self.url}/-/ready").status_code == 200,
            timeout=20,
            what="prometheus to be ready",
            explain=self.log,
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, path: str, **params: Any) -> Any:
        body = httpx.get(f"{self.url}/api/v1/{path}", params=params).json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def alert_states(self, name: str, **labels: str) -> set[str]:
        return {
            alert["state"]
            for alert in self.api("alerts")["alerts"]
            if alert["labels"]["alertname"] == name
            and all(alert["labels"].get(k) == v for k, v in labels.items())
        }


@pytest.fixture
def prometheus(stack: Stack) -> Iterator[Prometheus]:
    server = Prometheus(stack.tmp, stack.targets()).start()
    try:
        yield server
    finally:
        server.stop()


def _lag_partitions(text: str, group: str) -> set[tuple[str, str]]:
    """The (topic, partition) pairs a /metrics text reports lag for, for a group."""
    return {
        (sample.labels["topic"], sample.labels["partition"])
        for family in text_string_to_metric_families(text)
        if family.name == "obs_consumer_lag_records"
        for sample in family.samples
        if sample.labels["group"] == group
    }


def test_prometheus_scrapes_every_service_and_fires_service_down(stack, prometheus):
    settings = stack.settings
    prefix = settings.topic_prefix
    scorer_group = f"{prefix}observatoire-scorer"
    scorer_topics = {settings.topic(TOPIC_METRICS): 12, settings.topic(TOPIC_ACCOUNTS): 1}
    every_scorer_partition = {
        (topic, str(p)) for topic, count in scorer_topics.items() for p in range(count)
    }
    began = time.monotonic()
    stack.start("scorer-0", "scorer", OBS_WORKER_INDEX="0")
    stack.start("publisher", "publisher")
    stack.start("api", "api")
    stack.start("collector", "collector", "--source", "sim")
    # The first worker reports every partition of its group; once the second has joined, each
    # partition is reported by the worker it is assigned to, and by that one only.
    first = f"http://127.0.0.1:{settings.scorer_metrics_port}/metrics"
    wait_for(
        lambda: _lag_partitions(httpx.get(first).text, scorer_group) == every_scorer_partition,
        timeout=45,
        what="the first scorer worker to report the lag of every partition",
        explain=stack.logs,
    )
    stack.start("scorer-1", "scorer", OBS_WORKER_INDEX="1")
    api = settings.api_url
    for path in ("/api/v1/territories/dep-32", "/api/v1/standings/departements", "/readyz"):
        httpx.get(f"{api}{path}")

    wait_for(
        lambda: (
            (targets := prometheus.api("targets")["activeTargets"])
            and len(targets) == 5
            and all(t["health"] == "up" for t in targets)
        ),
        timeout=45,
        what="prometheus to scrape every target up",
        explain=lambda: f"{prometheus.api('targets')}\n{stack.logs()}",
    )
    scorer_lag = f'obs_consumer_lag_records{{group="{scorer_group}"}}'
    lag_by_partition = f"count by (topic, partition) ({scorer_lag})"
    wait_for(
        lambda: (
            (rows := prometheus.query(lag_by_partition))
            and {(r["metric"]["topic"], r["metric"]["partition"]) for r in rows}
            == every_scorer_partition
            and all(r["value"][1] == "1" for r in rows)
            and len(prometheus.query(f"count by (instance) ({scorer_lag})")) == 2
        ),
        timeout=45,
        what="the two scorer workers to share the partitions, each reported once",
        explain=lambda: f"{prometheus.query(lag_by_partition)}\n{stack.logs()}",
    )
    publisher_topics = {
        settings.topic(TOPIC_SCORES): 12,
        settings.topic(TOPIC_METRICS): 12,
        settings.topic(TOPIC_ACCOUNTS): 1,
        settings.topic(TOPIC_COMMANDS): 1,
    }
    publisher_lag = prometheus.query(
        f'count by (topic) (obs_consumer_lag_records{{group="{prefix}observatoire-publisher"}})'
    )
    assert {r["metric"]["topic"]: int(r["value"][1]) for r in publisher_lag} == publisher_topics

    # The series an operator watches, once traffic went through every service.
    metrics_topic, scores_topic = settings.topic(TOPIC_METRICS), settings.topic(TOPIC_SCORES)
    expected = {
        f'obs_event_processing_seconds_count{{service="scorer", topic="{metrics_topic}"}}',
        f'obs_event_processing_seconds_count{{service="publisher", topic="{scores_topic}"}}',
        'obs_redis_round_trips_total{service="scorer"}',
        'obs_redis_round_trips_total{service="publisher"}',
        'obs_redis_round_trips_total{service="api"}',
        'obs_scorer_events_consumed_total{topic="metrics"}',
        'obs_publisher_events_consumed_total{topic="scores"}',
        f'obs_scorer_records_produced_total{{topic="{scores_topic}"}}',
        'obs_collector_snapshots_produced_total{source="sim"}',
        'obs_api_requests_total{route="/api/v1/territories/{territory_id}"}',
        'obs_api_requests_total{route="/api/v1/standings/{category}"}',
        "obs_scorer_watermark_seconds",
    }

    def missing() -> list[str]:
        return [s for s in expected if not prometheus.query(f"{s} > 0")]

    wait_for(
        lambda: not missing(),
        timeout=30,
        what="every key series with a value",
        explain=lambda: f"missing: {missing()}\n{stack.logs()}",
    )
    # Route templates, never raw paths: a territory's id is not a label value.
    routes = {r["metric"]["route"] for r in prometheus.query("obs_api_requests_total")}
    assert not any("dep-32" in route for route in routes), routes
    assert prometheus.query("obs_api_event_streams"), "the SSE gauge is exported"
    assert prometheus.query('obs_api_redis_errors_total{job="api"}')
    scraped = time.monotonic() - began

    # Both scorer workers stop (SIGTERM): ObservatoireServiceDown goes pending, then firing.
    workers = [stack.procs[name].proc for name in ("scorer-0", "scorer-1")]
    for worker in workers:
        assert worker is not None
        worker.terminate()
    for worker in workers:
        assert worker is not None and worker.wait(10) is not None
    stopped = time.monotonic()
    wait_for(
        lambda: "pending" in prometheus.alert_states("ObservatoireServiceDown", job="scorer"),
        timeout=20,
        interval=0.1,
        what="ObservatoireServiceDown pending for the scorer",
        explain=lambda: str(prometheus.api("alerts")),
    )
    pending_after = time.monotonic() - stopped
    wait_for(
        lambda: prometheus.alert_states("ObservatoireServiceDown", job="scorer") == {"firing"},
        timeout=20,
        interval=0.1,
        what="ObservatoireServiceDown firing for both scorer workers",
        explain=lambda: str(prometheus.api("alerts")),
    )
    firing = [
        a["labels"]["instance"]
        for a in prometheus.api("alerts")["alerts"]
        if a["labels"]["alertname"] == "ObservatoireServiceDown" and a["state"] == "firing"
    ]
    assert sorted(firing) == sorted(stack.targets()["scorer"])
    print(
        f"every series scraped {scraped:.1f} s after the start; service-down pending "
        f"{pending_after:.1f} s and firing {time.monotonic() - stopped:.1f} s after the stop"
    )
