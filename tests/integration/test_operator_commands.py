"""Operator commands against the real broker: services refuse missing topics, `replay` produces
a file into obs.metrics.v1 and reports bad lines."""

from __future__ import annotations

import time
from datetime import timedelta

import orjson
from typer.testing import CliRunner

from services.cli import _register, app
from services.common.clock import format_timestamp, utcnow
from services.common.commands.protocol import new_command, next_second
from services.common.contracts import METHODOLOGY_VERSION
from services.common.events import build_command, build_metrics_event
from services.common.kafka import create_topics
from services.common.settings import Settings
from services.common.view.layout import LAYOUT_VERSION
from tests.kafka_read import read_all
from tests.services import ServiceProcess, service_env, wait_for
from tests.signing import COMMAND_KEY

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


def test_scorer_refuses_a_redis_view_of_another_layout_until_rebuilt(
    settings: Settings, tmp_path, redis_client
):
    """A view written by an older scorer (text versions) is never read as binary ones: the
    scorer exits 2 and names the command; after `observatoire rebuild` it starts."""
    assert all(report.ok for report in create_topics(settings))
    redis_client.set("obs:{meta}:watermark", "1700000000")  # a view with no layout recorded
    redis_client.hset("obs:{cat:departements}:cur:entry", "dep-32", "1700000000:ab|[]")
    env = service_env(settings)
    proc = ServiceProcess(["service", "scorer"], env, tmp_path / "s.log").start()
    assert proc.wait(60) == 2
    assert "layout 1" in proc.log() and "observatoire rebuild" in proc.log()

    result = CliRunner().invoke(app, ["rebuild"], env=env)
    assert result.exit_code == 0, result.output
    assert redis_client.hget("obs:{meta}:generation", "current") == "1"
    assert redis_client.get("obs:g1:{meta}:layout") == LAYOUT_VERSION
    assert not redis_client.exists("obs:{meta}:watermark", "obs:{cat:departements}:cur:entry")
    proc = ServiceProcess(["service", "scorer"], env, tmp_path / "s2.log").start()
    try:
        wait_for(lambda: "scorer starting" in proc.log(), timeout=60, what="the scorer to start")
        assert proc.proc is not None and proc.proc.poll() is None
    finally:
        proc.terminate()


def test_scorer_refuses_a_view_scored_by_another_methodology_until_rebuilt(
    settings: Settings, tmp_path, redis_client
):
    """Stored entries hold summaries that readers score with the pure methodology: a view
    recorded as scored by another methodology version is refused at start, naming the command
    that fixes it; `observatoire rebuild` rewrites it in this code's versions."""
    assert all(report.ok for report in create_topics(settings))
    redis_client.mset({"obs:{meta}:layout": LAYOUT_VERSION, "obs:{meta}:methodology": "2"})
    redis_client.set("obs:{meta}:watermark", "1700000000")
    env = service_env(settings)
    proc = ServiceProcess(["service", "scorer"], env, tmp_path / "s.log").start()
    assert proc.wait(60) == 2
    log = proc.log()
    assert "methodology v2" in log and "methodology v1" in log, log
    assert "observatoire rebuild" in log

    result = CliRunner().invoke(app, ["rebuild"], env=env)
    assert result.exit_code == 0, result.output
    assert redis_client.get("obs:g1:{meta}:methodology") == str(METHODOLOGY_VERSION)
    assert redis_client.get("obs:g1:{meta}:layout") == LAYOUT_VERSION


def test_a_retry_of_an_answered_command_in_the_same_second_is_a_new_request(
    settings: Settings, redis_client
):
    """Command ids are their content timed to the second: an identical request in the same
    second as an answered one would be that command again, so it is built anew."""
    time.sleep(next_second(utcnow()) + 0.05)  # early in a second: no rollover below
    now = utcnow()
    first = build_command(
        command="publish_edition",
        args={"edition": "2021-04"},
        requested_by="cli",
        requested_at=now,
        key=COMMAND_KEY,
    )
    refused = {"status": "refused", "reason": "edition 2021-03 must be published first"}
    redis_client.hset("obs:{meta}:command-results", first["event_id"], orjson.dumps(refused))
    retry = new_command(
        settings,
        command="publish_edition",
        args={"edition": "2021-04"},
        requested_by="cli",
        key=COMMAND_KEY,
    )
    assert retry["event_id"] != first["event_id"]
    assert retry["requested_at"] > first["requested_at"]
    # Done too: publishing again is evaluated anew ("already published", not the old answer).
    time.sleep(next_second(utcnow()) + 0.05)
    done = build_command(
        command="publish_edition",
        args={"edition": "2021-03"},
        requested_by="cli",
        requested_at=utcnow(),
        key=COMMAND_KEY,
    )
    redis_client.hset(
        "obs:{meta}:command-results", done["event_id"], orjson.dumps({"status": "done"})
    )
    again = new_command(
        settings,
        command="publish_edition",
        args={"edition": "2021-03"},
        requested_by="cli",
        key=COMMAND_KEY,
    )
    assert again["event_id"] != done["event_id"]
    # No result yet (still pending): the same request in the same second is that request.
    time.sleep(next_second(utcnow()) + 0.05)
    pending = build_command(
        command="publish_edition",
        args={"edition": "2021-05"},
        requested_by="cli",
        requested_at=utcnow(),
        key=COMMAND_KEY,
    )
    same = new_command(
        settings,
        command="publish_edition",
        args={"edition": "2021-05"},
        requested_by="cli",
        key=COMMAND_KEY,
    )
    assert same["event_id"] == pending["event_id"]
