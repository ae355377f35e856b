"""Drill: the broker cut off from every client for OBS_DRILL_BROKER_CUT_SECONDS while the
collector produces, then restored.

Tansu advertises the address of a proxy (tests/drills/b_proxy.py), so the collector, the scorer,
the publisher and the API all reach it through the proxy only. The simulator produces a round
of 110 accounts a second (rounds further apart when OBS_DRILL_EVENTS is small) for twice the
cut, about half of the rounds while the proxy blackholes every connection: they wait in the
collector's spool. After the restore the spool drains by itself; the collector stops once its
rounds are done and its spool is empty. An operator command goes through the API before, during
and after the cut (publishing a month without data: produced, then refused by the publisher).

Verdict: every snapshot the collector said it spooled is in `obs.metrics.v1` (lost: those that
are not), nothing else is; duplicate deliveries (at-least-once, applied once) are a figure; the
view equals `replay --batch` of the topics; the rank-change `seq` of every category has no gap
and no repeat (doubled: the repeats) and each category's last event is the list the API shows;
the command during the cut is answered 503 (or 202 once the broker is back), the others are
executed; recovered in: from the restore until the spool is drained and the scorer has
committed everything the topic held then.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from services.api.command_sender import SEND_TIMEOUT_SECONDS
from services.collector.sim_run import simulated_world
from services.common.clock import format_timestamp, parse_timestamp, utcnow
from services.common.contracts import (
    CATEGORIES,
    TOPIC_ACCOUNTS,
    TOPIC_METRICS,
    TOPIC_RANK_CHANGES,
)
from services.common.kafka import create_topics, end_offsets
from services.common.localstack import RedisServer, TansuBroker, free_port
from services.common.settings import Settings
from tests.drills.a_helpers import (
    caught_up,
    group_committed,
    rank_change_seqs,
    replay_batch,
    scorer_group,
    settled_comparison,
)
from tests.drills.b_proxy import CuttableProxy
from tests.drills.plugin import Drill
from tests.drills.settings import drill_settings
from tests.integration.test_collector_outage import ROUND, ProxiedTansu, _gauges
from tests.kafka_read import read_all
from tests.services import ServiceProcess, service_env, wait_for
from tests.signing import COMMAND_KEY

DB = 15  # the Redis database of this drill
SIM = {
    # 110 accounts a round (the régions and the départements without a real handle), six hours
    # of event time a round: about two months of history at the default size.
    "OBS_SIM_SHARES": '{"regions": 1, "departements": 1}',
    "OBS_SIM_STEP_HOURS": "6",
    "OBS_SIM_DEAD_LINKS": "1",
    "OBS_SIM_RENAMES": "1",
}
TOKEN = "broker-cut-operator-token"
# Operator commands through the API (it produces them to obs.commands.v1): publishing a month
# without data, which the publisher refuses; nothing else changes.
MONTHS = {"before": "2001-01", "during": "2001-02", "after": "2001-03"}
PRODUCING_CUTS = 2.0  # the collector produces for about this many times the cut's length
ROUND_SECONDS = 1.0  # the simulator's interval between rounds, at least
SERVICES = ("scorer", "publisher", "api")


@dataclass
class CutStack:
    proxy: CuttableProxy
    broker: TansuBroker
    settings: Settings


@pytest.fixture
def cut_stack(redis_server: RedisServer, tmp_path: Path) -> Iterator[CutStack]:
    """Tansu on its own port advertising the proxy's; settings whose bootstrap is the proxy."""
    broker_port, proxy_port = free_port(), free_port()
    proxy = CuttableProxy(("127.0.0.1", broker_port), proxy_port).start()
    broker = ProxiedTansu(broker_port, tmp_path / "tansu.log", advertised_port=proxy_port)
    try:
        broker.start()
        settings = Settings(
            _env_file=None,
            kafka_bootstrap=f"127.0.0.1:{proxy_port}",
            topic_prefix=f"t{uuid.uuid4().hex[:12]}-",
            redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/{DB}",
            run_dir=tmp_path / "run",
            spool_dir=tmp_path / "spool",
            api_port=free_port(),
            scorer_metrics_port=free_port(),
            publisher_metrics_port=free_port(),
            collector_metrics_port=free_port(),
            rate_limit_enabled=False,
            command_key=COMMAND_KEY,
            rebuild_grace_seconds=0.0,
        )
        assert all(report.ok for report in create_topics(settings))
        client = redis_server.client()
        client.execute_command("SELECT", DB)
        client.flushdb()
        client.close()
        yield CutStack(proxy, broker, settings)
    finally:
        proxy.close()
        broker.stop()


def _spooled(log: str) -> list[tuple[str, int]]:
    """(moment, snapshots) of every round the collector said it spooled."""
    return [(m.group(1), int(m.group(2))) for m in ROUND.finditer(log)]


def _expected(settings: Settings, start: datetime, moments: Sequence[str]) -> tuple[set, set]:
    """Event ids of the snapshots and account records of a collector's rounds."""
    world = simulated_world(settings, start)
    accounts = {record["event_id"] for record in world.account_records()}
    metrics: set[str] = set()
    previous = world.epoch
    for text in moments:
        moment = parse_timestamp(text)
        accounts |= {r["event_id"] for r in world.account_changes(previous, moment)}
        metrics |= {event["event_id"] for event in world.snapshots(moment)}
        previous = moment
    return metrics, accounts


def _api_list(settings: Settings, category: str, size: int) -> list[str]:
    """The published list the API shows: the first `size` of the category's standings."""
    reply = httpx.get(
        f"{settings.api_url}/api/v1/standings/{category}", params={"limit": size}, timeout=10
    )
    reply.raise_for_status()
    return [item["id"] for item in reply.json()["items"]]


@pytest.mark.drills
def test_drill_broker_cut(drill: Drill, cut_stack: CutStack, tmp_path: Path) -> None:
    sizes = drill_settings()
    proxy, settings = cut_stack.proxy, cut_stack.settings
    timeout = sizes.recover_timeout_seconds
    cut_seconds = sizes.broker_cut_seconds

    sim_settings = Settings(
        _env_file=None,
        sim_shares=orjson.loads(SIM["OBS_SIM_SHARES"]),
        sim_step_hours=float(SIM["OBS_SIM_STEP_HOURS"]),
        sim_dead_links=int(SIM["OBS_SIM_DEAD_LINKS"]),
        sim_renames=int(SIM["OBS_SIM_RENAMES"]),
    )
    per_round = len(simulated_world(sim_settings, utcnow()).accounts)
    # A round every ROUND_SECONDS at most (the sender must outpace the simulator on this busy
    # machine, or the backlog never drains), for PRODUCING_CUTS times the cut: about half the
    # rounds during the cut; fewer, further apart, when OBS_DRILL_EVENTS asks for fewer.
    interval = max(ROUND_SECONDS, PRODUCING_CUTS * cut_seconds * per_round / sizes.events)
    rounds = max(4, round(PRODUCING_CUTS * cut_seconds / interval))
    target = rounds * per_round
    step = timedelta(hours=float(SIM["OBS_SIM_STEP_HOURS"]))
    # Every round in the past (catching up) until the collector is stopped.
    start = utcnow() - step * (rounds + 20)
    env = service_env(settings, OBS_RATE_LIMIT_ENABLED="false", OBS_OPERATOR_TOKEN=TOKEN)
    collector_env = (
        env
        | SIM
        | {
            "OBS_SIM_START": format_timestamp(start),
            "OBS_SIM_INTERVAL_SECONDS": f"{interval:.3f}",
        }
    )
    processes = {
        name: ServiceProcess(["service", name], env, tmp_path / f"{name}.log").start()
        for name in SERVICES
    }
    collector = ServiceProcess(
        ["service", "collector", "--source", "sim"], collector_env, tmp_path / "collector.log"
    )
    processes["collector"] = collector
    port = settings.collector_metrics_port

    def logs() -> str:
        return "\n".join(f"--- {n}\n{p.log()[-1500:]}" for n, p in processes.items())

    def spooled() -> int:
        return sum(n for _, n in _spooled(collector.log()))

    try:
        wait_for(
            lambda: httpx.get(f"{settings.api_url}/readyz", timeout=2).status_code == 200,
            timeout=60,
            what="the API ready",
            explain=logs,
        )
        collector.start()
        drill.progress(
            f"scorer, publisher, API and collector up (every client through the proxy); "
            f"{rounds} rounds of {per_round} snapshots, one every {interval:.2f} s"
        )
        before = wait_for(
            lambda: (
                (n := _gauges(port).get("obs_collector_snapshots_produced_total", 0))
                >= target / (2 * PRODUCING_CUTS)
                and n
            ),
            timeout=timeout,
            what="a quarter of the snapshots delivered before the cut",
            explain=logs,
        )
        group = scorer_group(settings)
        scored = wait_for(
            lambda: group_committed(settings, group, (TOPIC_METRICS,))[TOPIC_METRICS],
            timeout=timeout,
            what="the scorer committing before the cut",
            explain=logs,
        )

        _command_executed(settings, MONTHS["before"], timeout)

        proxy.cut()
        cut_at = time.monotonic()
        drill.progress(
            f"broker cut off ({int(before):,} snapshots delivered, {scored:,} committed); "
            f"for {cut_seconds:g} s"
        )
        asked: dict[str, tuple[str, float]] = {}
        command = threading.Thread(
            target=lambda: asked.update(during=_command(settings, MONTHS["during"])),
            daemon=True,
        )
        command.start()
        while time.monotonic() - cut_at < cut_seconds:
            time.sleep(min(1.0, max(0.0, cut_seconds - (time.monotonic() - cut_at))))
        during = _gauges(port)
        proxy.restore()
        restored = time.monotonic()
        command.join(timeout)
        waiting = int(during["obs_collector_spool_records"])
        drill.progress(
            f"broker restored: {waiting:,} records waiting in the collector's spool, "
            f"{proxy.blackholed} connections blackholed during the cut"
        )
        drill.expect(waiting >= per_round, f"only {waiting} records spooled during the cut")
        status, took = asked.get("during", ("no answer", 0.0))
        drill.figures["operator command during the cut"] = f"{status} after {took:.1f} s"
        # 503 and its reason, or 202 if the broker came back in time; never a 500 or a hang.
        drill.expect(status in ("202", "503"), f"an operator command during the cut: {status}")
        drill.expect(
            status != "503" or took <= SEND_TIMEOUT_SECONDS + 5,
            f"the API answered 503 after {took:.1f} s, not within its {SEND_TIMEOUT_SECONDS:g} s",
        )

        wait_for(
            lambda: _gauges(port)["obs_collector_spool_records"] <= per_round,
            timeout=timeout,
            what="the collector's spool drained",
            explain=logs,
        )
        drained = time.monotonic()
        ends = end_offsets(settings, TOPIC_METRICS)
        drill.progress(
            f"spool drained {drained - restored:.1f} s after the restore; "
            "waiting for the scorer to commit what the topic held then"
        )
        wait_for(
            lambda: (
                group_committed(settings, group, (TOPIC_METRICS,))[TOPIC_METRICS]
                >= sum(ends.values())
            ),
            timeout=timeout,
            what="the scorer caught up",
            explain=logs,
        )
        drill.recover_seconds = time.monotonic() - restored
        _command_executed(settings, MONTHS["after"], timeout)
        drill.figures["spool drained in"] = f"{drained - restored:.1f} s"
        # The sender waits for a delivery up to its delivery timeout (30 s) before it says the
        # broker is unreachable: a shorter cut shows only in the spool's depth and age.
        drill.figures["collector said unreachable"] = (
            "yes" if "cannot deliver to the broker" in collector.log() else "no"
        )

        wait_for(
            lambda: spooled() >= target,
            timeout=timeout,
            what=f"{target:,} snapshots spooled",
            explain=logs,
        )
        wait_for(
            lambda: _gauges(port)["obs_collector_spool_records"] == 0,
            timeout=timeout,
            interval=0.01,
            what="the spool empty",
            explain=logs,
        )
        collector.terminate(timeout=10)
        left = _left_in_spool(settings)
        drill.progress(
            f"collector stopped after {spooled():,} snapshots spooled ({left} left in its spool)"
        )
        assert "stopped cleanly" in collector.log(), collector.log()[-2000:]
        expected_metrics, expected_accounts = _expected(
            sim_settings, start, [moment for moment, _ in _spooled(collector.log())]
        )
        if left:  # the next run sends them: one more round of its own, then it drains
            extra_start = utcnow() - step
            last = ServiceProcess(
                ["service", "collector", "--source", "sim", "--once"],
                collector_env | {"OBS_SIM_START": format_timestamp(extra_start)},
                tmp_path / "collector-once.log",
            ).start()
            processes["collector --once"] = last
            assert last.wait(timeout) == 0, last.log()[-3000:]
            more_metrics, more_accounts = _expected(
                sim_settings, extra_start, [moment for moment, _ in _spooled(last.log())]
            )
            expected_metrics |= more_metrics
            expected_accounts |= more_accounts
            drill.figures["left at stop, sent by the next run"] = f"{left}"

        drill.progress("waiting for the scorer to commit both topics")
        wait_for(lambda: caught_up(settings), timeout=timeout, what="both topics committed")
        records = read_all(settings, TOPIC_METRICS, timeout=60)
        ids = Counter(orjson.loads(record.value)["event_id"] for record in records)
        accounts = read_all(settings, TOPIC_ACCOUNTS, timeout=30)
        account_ids = Counter(orjson.loads(record.value)["event_id"] for record in accounts)
        drill.sent = len(expected_metrics)
        drill.applied = len(set(ids) & expected_metrics)
        drill.lost = len(expected_metrics - set(ids))
        drill.dead_lettered = len(read_all(settings, f"{TOPIC_METRICS}.dlq", timeout=30))
        redelivered = sum(ids.values()) - len(ids)
        drill.figures["redelivered"] = f"{redelivered} (at-least-once, applied once)"
        drill.expect(set(ids) <= expected_metrics, f"{len(set(ids) - expected_metrics)} unknown")
        drill.expect(
            set(account_ids) == expected_accounts,
            f"account records: {len(expected_accounts - set(account_ids))} missing, "
            f"{len(set(account_ids) - expected_accounts)} unknown",
        )

        drill.progress("comparing the view with `replay --batch` of the topics")
        metrics_path, accounts_path = tmp_path / "metrics.jsonl", tmp_path / "accounts.jsonl"
        metrics_path.write_bytes(b"\n".join(record.value for record in records) + b"\n")
        accounts_path.write_bytes(b"\n".join(record.value for record in accounts) + b"\n")
        batch, refused = replay_batch(metrics_path, accounts_path, env)
        drill.expect(not refused, f"`replay --batch` refused lines: {dict(refused)}")
        result = settled_comparison(settings.redis_url, batch)
        drill.equal_to_batch = result.equal
        drill.expect(result.equal, "; ".join(result.examples))
        drill.figures["ranked rows"] = f"{result.expected_rows:,}"

        drill.progress("checking the rank changes against the API's lists")
        for info in CATEGORIES:
            if info.id not in ("regions", "departements"):
                continue
            size = info.published_size or 500
            wait_for(
                lambda info=info, size=size: (
                    (events := _rank_changes(settings, info.id))
                    and events[-1]["top"] == _api_list(settings, info.id, size)
                ),
                timeout=60,
                what=f"the last {info.id} rank change equal to the API's list",
                explain=logs,
            )
        events = [orjson.loads(r.value) for r in read_all(settings, TOPIC_RANK_CHANGES)]
        gaps, repeats = rank_change_seqs(events)
        drill.doubled = repeats
        drill.expect(gaps == 0, f"{gaps} rank-change seq missing")
        drill.figures["rank changes"] = f"{len(events):,}"
        drill.figures["cut"] = f"{cut_seconds:g} s"

        for name, process in processes.items():
            if name in SERVICES:
                assert process.proc is not None and process.proc.poll() is None, (
                    f"{name} exited during the drill:\n{process.log()[-3000:]}"
                )
        assert result.expected_rows > 50
        assert len(events) > 2
    finally:
        for process in processes.values():
            if process.proc is not None:
                process.terminate()


def _command(settings: Settings, month: str) -> tuple[str, float]:
    """POST /api/v1/editions/{month}/publish: the answer's status (or the client's error), and
    how long it took."""
    began = time.monotonic()
    try:
        status = str(
            httpx.post(
                f"{settings.api_url}/api/v1/editions/{month}/publish",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=60,
            ).status_code
        )
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return status, time.monotonic() - began


def _command_executed(settings: Settings, month: str, timeout: float) -> None:
    """An operator command accepted by the API (202) and executed by the publisher: the API
    produced it through the proxy, the publisher consumed it and answered."""
    reply = httpx.post(
        f"{settings.api_url}/api/v1/editions/{month}/publish",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )
    assert reply.status_code == 202, reply.text
    status_url = f"{settings.api_url}{reply.json()['status_url']}"
    wait_for(
        lambda: httpx.get(status_url, timeout=10).json()["status"] == "refused",
        timeout=timeout,
        what=f"the publisher to refuse publishing {month} (a month without data)",
    )


def _rank_changes(settings: Settings, category: str) -> list[dict]:
    records = read_all(settings, TOPIC_RANK_CHANGES, timeout=20)
    return [orjson.loads(r.value) for r in records if r.key == category.encode()]


def _left_in_spool(settings: Settings) -> int:
    """Records left in the simulator's spool (read with the spool itself, now unlocked)."""
    from services.collector.spool import Spool

    spool = Spool(settings.spool_dir / "sim", max_bytes=1 << 30)
    try:
        return spool.records
    finally:
        spool.close()
