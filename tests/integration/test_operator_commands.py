"""Operator commands against the real broker: services refuse missing topics, `replay` produces
a file into obs.metrics.v1 and reports bad lines."""

from __future__ import annotations

from datetime import timedelta

import orjson
from typer.testing import CliRunner

from services.cli import _register, app
from services.common.clock import format_timestamp, utcnow
from services.common.events import build_metrics_event
from services.common.kafka import create_topics, read_all
from services.common.settings import Settings
from tests.services import ServiceProcess, service_env

_register()


def test_scorer_refuses_to_start_when_a_topic_is_missing(settings: Settings, tmp_path):
    proc = ServiceProcess(["service", "scorer"], service_env(settings), tmp_path / "s.log").start()
    assert proc.wait(60) == 2
    assert "obs.metrics.v1" in proc.log() and "topics create" in proc.log()


def test_replay_produces_valid_lines_in_order_and_reports_bad_ones(
    settings: Settings, tmp_path, monkeypatch
):
    assert all(report.ok for report in create_topics(settings))
    moment = utcnow() - timedelta(hours=1)
    events = [
        build_metrics_event(
            handle=f"acct{i}",
            observed_at=format_timestamp(moment + timedelta(minutes=i)),
            status="ok",
            source="csv",
            followers=100 + i,
            follows=1,
            media_count=1,
        )
        for i in range(3)
    ]
    lines = [
        orjson.dumps(events[0]),
        b"not json",
        orjson.dumps(events[1]),
        b"",
        orjson.dumps(events[2]),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    for name, value in service_env(settings).items():
        if name.startswith("OBS_"):
            monkeypatch.setenv(name, value)
    from services.common.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["replay", str(path)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    assert "3 snapshots produced" in result.output
    assert f"{path}:2: invalid_json" in result.output
    records = read_all(settings, settings.topic("obs.metrics.v1"), timeout=10)
    sent_at = {orjson.loads(r.value)["event_id"]: r.timestamp for r in records}
    assert set(sent_at) == {e["event_id"] for e in events}
    times = [sent_at[e["event_id"]] for e in events]
    assert times == sorted(times)  # produced in file order
    keys = {r.key for r in records}
    assert keys == {f"instagram:acct{i}".encode() for i in range(3)}
