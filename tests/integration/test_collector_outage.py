"""A broker outage while the collector produces: nothing lost, each event id once after dedup.

A TCP proxy sits between the collector and a Tansu broker that advertises the proxy's address
(Kafka clients reconnect to the advertised listener, so every connection goes through it).
The proxy is stopped while the simulator produces, the collector is restarted during the
outage (its spool on disk carries over), the proxy comes back, and every snapshot each
collector said it spooled must be in the topic. The in-memory broker itself never stops.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.collector.sim_run import simulated_world
from services.common.clock import format_timestamp, parse_timestamp, utcnow
from services.common.kafka import create_topics
from services.common.localstack import TansuBroker, free_port
from services.common.settings import Settings
from tests.fakes.tcp_proxy import TcpProxy
from tests.kafka_read import read_all
from tests.services import ServiceProcess, service_env, wait_for

ROUND = re.compile(r"simulator: round (\S+): (\d+) snapshots spooled")
SIM = {
    # 110 accounts a round (the 9 départements with a real handle are not simulated), a round
    # every 0.2 s: the sender is often busy, so the cut may fall mid-delivery.
    "OBS_SIM_SHARES": '{"regions": 1, "departements": 1}',
    "OBS_SIM_STEP_HOURS": "24",
    "OBS_SIM_INTERVAL_SECONDS": "0.2",
    "OBS_SIM_DEAD_LINKS": "1",
    "OBS_SIM_RENAMES": "1",
}


PER_ROUND = 110


class ProxiedTansu(TansuBroker):
    """Tansu listening on its own port but advertising another one (the proxy's)."""

    def __init__(self, port: int, log_path: Path, *, advertised_port: int) -> None:
        super().__init__(port, log_path)
        self.advertised_port = advertised_port

    def command(self) -> Sequence[str]:
        command = list(super().command())
        at = command.index("--advertised-listener-url") + 1
        command[at] = f"tcp://{self.host}:{self.advertised_port}"
        return command


@pytest.fixture
def outage_stack(tmp_path: Path) -> Iterator[tuple[TcpProxy, Settings]]:
    broker_port, proxy_port = free_port(), free_port()
    proxy = TcpProxy(("127.0.0.1", broker_port), proxy_port).start()
    broker = ProxiedTansu(broker_port, tmp_path / "tansu.log", advertised_port=proxy_port)
    broker.start()
    settings = Settings(
        _env_file=None,
        kafka_bootstrap=f"127.0.0.1:{proxy_port}",
        topic_prefix=f"t{uuid.uuid4().hex[:12]}-",
        run_dir=tmp_path / "run",
        spool_dir=tmp_path / "spool",
    )
    try:
        assert all(report.ok for report in create_topics(settings))
        yield proxy, settings
    finally:
        proxy.stop()
        broker.stop()


def _gauges(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return values


def _rounds(log: str) -> list[str]:
    return [match.group(1) for match in ROUND.finditer(log)]


def _expected(start: str, rounds: list[str]) -> tuple[set[str], set[str]]:
    """Event ids of the snapshots and account records a collector said it spooled."""
    settings = Settings(_env_file=None, **_sim_fields())
    world = simulated_world(settings, parse_timestamp(start))
    metrics: set[str] = set()
    accounts = {record["event_id"] for record in world.account_records()}
    previous = world.epoch
    for moment_text in rounds:
        moment = parse_timestamp(moment_text)
        accounts |= {r["event_id"] for r in world.account_changes(previous, moment)}
        metrics |= {event["event_id"] for event in world.snapshots(moment)}
        previous = moment
    return metrics, accounts


def _sim_fields() -> dict[str, object]:
    return {
        "sim_shares": orjson.loads(SIM["OBS_SIM_SHARES"]),
        "sim_step_hours": float(SIM["OBS_SIM_STEP_HOURS"]),
        "sim_dead_links": int(SIM["OBS_SIM_DEAD_LINKS"]),
        "sim_renames": int(SIM["OBS_SIM_RENAMES"]),
    }


def _collector(settings: Settings, tmp: Path, name: str, start: str, *args: str):
    port = free_port()
    env = service_env(settings, OBS_SIM_START=start, OBS_COLLECTOR_METRICS_PORT=str(port), **SIM)
    process = ServiceProcess(
        ["service", "collector", "--source", "sim", *args], env, tmp / f"{name}.log"
    )
    return process.start(), port


def test_every_snapshot_arrives_once_after_an_outage_and_a_restart(outage_stack, tmp_path):
    proxy, settings = outage_stack
    now = utcnow()
    starts = {
        "a": format_timestamp(now - timedelta(days=400)),
        "b": format_timestamp(now - timedelta(days=200)),
        "c": format_timestamp(now - timedelta(days=100)),
    }
    timings: dict[str, float] = {}
    began = time.monotonic()

    # A produces through the proxy.
    a, a_port = _collector(settings, tmp_path, "a", starts["a"])
    try:
        wait_for(
            lambda: (
                _gauges(a_port).get("obs_collector_snapshots_produced_total", 0) >= 3 * PER_ROUND
            ),
            timeout=60,
            what=f"collector A to deliver three rounds:\n{a.log()[-2000:]}",
        )
        delivered_before_cut = _gauges(a_port)["obs_collector_snapshots_produced_total"]
        # The network goes away; A keeps collecting into its spool.
        proxy.stop()
        timings["cut"] = time.monotonic() - began
        wait_for(
            lambda: _gauges(a_port)["obs_collector_spool_records"] >= 2 * PER_ROUND,
            timeout=30,
            what="collector A to spool two rounds during the outage",
        )
        # Restart the collector during the outage: A stops (within 10 s, broker or not).
        a_stop = a.terminate(timeout=10)
    finally:
        a.kill()
    a_log = a.log()
    assert "stopped cleanly" in a_log, a_log[-2000:]
    left_by_a = _gauges_from_spool(settings)
    assert left_by_a > 0

    b, b_port = _collector(settings, tmp_path, "b", starts["b"])
    try:
        wait_for(
            lambda: len(_rounds(b.log())) >= 2,
            timeout=60,
            what=f"collector B to collect two rounds while the broker is away:\n{b.log()[-2000:]}",
        )
        during = _gauges(b_port)
        assert during["obs_collector_spool_records"] >= left_by_a + 2 * PER_ROUND
        assert during["obs_collector_spool_oldest_age_seconds"] > 0  # A's records, waiting
        assert during["obs_collector_broker_available"] == 0
        # The network is back: B sends what A left and what it collected itself.
        proxy.start()
        back = time.monotonic()
        timings["outage"] = back - began - timings["cut"]
        # B keeps collecting meanwhile: the backlog is out once at most a round waits.
        wait_for(
            lambda: _gauges(b_port)["obs_collector_spool_records"] <= PER_ROUND,
            timeout=60,
            what=f"collector B to send the backlog:\n{b.log()[-2000:]}",
        )
        timings["drained after"] = time.monotonic() - back
        b.terminate(timeout=10)
    finally:
        b.kill()

    # C, once: sends whatever B left in the spool, plus one round of its own, and exits 0
    # only when the broker confirmed everything.
    c, _ = _collector(settings, tmp_path, "c", starts["c"], "--once")
    assert c.wait(90) == 0, c.log()[-3000:]
    timings["total"] = time.monotonic() - began

    expected_metrics: set[str] = set()
    expected_accounts: set[str] = set()
    rounds = {}
    for name, process in (("a", a), ("b", b), ("c", c)):
        rounds[name] = _rounds(process.log())
        metrics, accounts = _expected(starts[name], rounds[name])
        expected_metrics |= metrics
        expected_accounts |= accounts
    assert len(rounds["a"]) >= 5 and len(rounds["b"]) >= 2 and len(rounds["c"]) == 1

    records = read_all(settings, "obs.metrics.v1", timeout=30)
    ids = Counter(orjson.loads(r.value)["event_id"] for r in records)
    assert set(ids) == expected_metrics  # every snapshot arrived, and nothing else
    for record in records:
        event = orjson.loads(record.value)
        assert record.key.decode() == f"instagram:{event['handle']}"
    account_ids = Counter(
        orjson.loads(r.value)["event_id"] for r in read_all(settings, "obs.accounts.v1")
    )
    assert set(account_ids) == expected_accounts
    duplicates = sum(ids.values()) - len(ids)
    print(
        f"\n{len(ids)} snapshots ({sum(len(r) for r in rounds.values())} rounds: "
        f"A {len(rounds['a'])}, B {len(rounds['b'])}, C 1), {duplicates} duplicate deliveries; "
        f"{int(delivered_before_cut)} delivered before the cut, {left_by_a} records left in "
        f"the spool by A; A stopped in {a_stop:.1f} s; "
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
    )


def _gauges_from_spool(settings: Settings) -> int:
    """Records left in the simulator's spool (read with the spool itself, now unlocked)."""
    from services.collector.spool import Spool

    spool = Spool(settings.spool_dir / "sim", max_bytes=1 << 30)
    try:
        return spool.records
    finally:
        spool.close()
