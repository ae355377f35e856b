"""`collect --source csv`: bad rows reported and skipped, good ones produced, twice the same ids."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from services.collector.csv_source import COLUMNS, parse_csv
from services.common.kafka import create_topics
from services.common.settings import Settings
from tests.kafka_read import read_all
from tests.services import REPO_ROOT, service_env


def _csv(path: Path, accounts: int) -> tuple[Path, dict[int, str]]:
    """A file of `accounts` accounts × 3 snapshots with posts, and two bad rows."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
    lines = [",".join(COLUMNS)]
    bad: dict[int, str] = {}
    for a in range(accounts):
        handle = f"mairie_{a:03d}"
        for day in range(0, 40, 2):
            published = (start + timedelta(days=day, hours=a % 24)).strftime("%Y-%m-%dT%H:%M:%SZ")
            likes = 0 if a % 7 == 0 else 10 + day
            lines.append(f"post,{handle},,,,,,,{a:04d}{day:04d},{published},{likes},{day % 5}")
        for snap in (10, 25, 39):
            observed = (start + timedelta(days=snap)).strftime("%Y-%m-%dT%H:%M:%SZ")
            followers = 1000 + 37 * a + snap
            lines.append(
                f"snapshot,@Mairie_{a:03d},{observed},ok,1784{a:06d},{followers},80,300,,,,"
            )
        if a == 3:
            lines.append(f"snapshot,{handle},2021-13-01T00:00:00Z,ok,,1,1,1,,,,")
            bad[len(lines)] = "is not a real date and time"
            lines.append(f"snapshot,{handle} bis,2021-06-01T00:00:00Z,ok,,1,1,1,,,,")
            bad[len(lines)] = "contains a space"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, bad


def _collect(path: Path, settings: Settings) -> subprocess.CompletedProcess[str]:
    env = service_env(settings, OBS_COLLECTOR_METRICS_PORT="0")
    return subprocess.run(
        [sys.executable, "-m", "services.cli.collect", "--source", "csv", "--file", str(path)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_importing_a_csv_twice_produces_the_same_event_ids(settings: Settings, tmp_path: Path):
    assert all(report.ok for report in create_topics(settings))
    path, bad = _csv(tmp_path / "backfill.csv", accounts=60)
    with path.open(encoding="utf-8", newline="") as handle:
        expected = parse_csv(handle, now=datetime.now(UTC))
    assert len(expected.events) == 180

    first = _collect(path, settings)
    second = _collect(path, settings)
    for run in (first, second):
        assert run.returncode == 1, run.stderr[-3000:]  # rows were skipped
        for line, reason in bad.items():
            assert f"skipped {path}:{line}: " in run.stderr and reason in run.stderr
        assert "180 record(s) collected, 180 confirmed by the broker, 2 row(s) skipped" in (
            run.stderr
        )
        assert f"reading {path.name}" in run.stderr  # the progress bar
    records = read_all(settings, "obs.metrics.v1")
    ids = Counter(orjson.loads(r.value)["event_id"] for r in records)
    assert len(records) == 360
    assert set(ids) == {e["event_id"] for e in expected.events}
    assert set(ids.values()) == {2}  # each snapshot twice, with the same id: nothing new
    keys = {r.key.decode() for r in records}
    assert keys == {f"instagram:mairie_{a:03d}" for a in range(60)}


def test_a_file_that_is_not_a_collector_csv_is_refused(settings: Settings, tmp_path: Path):
    assert all(report.ok for report in create_topics(settings))
    path = tmp_path / "accounts.csv"
    path.write_text("territory_id,handle\ndep-32,gers\n", encoding="utf-8")
    run = _collect(path, settings)
    assert run.returncode == 2
    assert "the header lacks" in run.stderr and "Traceback" not in run.stderr
