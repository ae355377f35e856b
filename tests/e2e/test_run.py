"""`observatoire run` as a newcomer runs it: everything up, départements ranked, Ctrl-C. It
runs two scorer workers (`--scorers 2`), each serving its metrics on its own port."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.common.contracts import CATEGORY_IDS
from services.common.localstack import free_port, port_is_open
from tests.drills.plugin import Drill
from tests.services import REPO_ROOT, wait_for

REDIS_PASSWORD = "e2e-redis-s3cr3t"


def test_run_serves_ranked_departements_and_stops_within_10_seconds(tmp_path: Path):
    """Through a password-protected Redis: every service authenticates, anonymous clients do not."""
    ports = {name: free_port() for name in ("kafka", "redis", "api", "scorer", "collector")}
    ports["scorer-1"] = ports["scorer"] + 100  # worker index 1
    assert not port_is_open("127.0.0.1", ports["scorer-1"])
    env = _run_env(tmp_path, ports, OBS_REDIS_PASSWORD=REDIS_PASSWORD)
    proc, log_path = _start_run(tmp_path, env, "--scorers", "2")
    api = f"http://127.0.0.1:{ports['api']}"
    try:
        started = time.monotonic()
        body = _ranked_departements(api, log_path, "from `observatoire run`")
        ready_after = time.monotonic() - started
        assert [item["rank"] for item in body["items"]] == list(range(1, 11))
        scores = [item["score"] for item in body["items"]]
        assert scores == sorted(scores, reverse=True)
        assert all(item["simulated"] for item in body["items"])
        # The demo fills every page: each category has simulated territories ranked.
        totals = wait_for(
            lambda: all((t := _category_totals(api)).values()) and t["petites-villes"] > 100 and t,
            timeout=60,
            what="every category ranked by the demo",
            explain=lambda: _logs(log_path),
        )
        assert min(totals.values()) > 0 and totals["petites-villes"] > 100  # several pages
        for worker in ("scorer", "scorer-1"):  # both workers of the group share the partitions
            wait_for(
                lambda worker=worker: re.search(
                    r'obs_scorer_events_consumed_total\{topic="metrics"\} [1-9]',
                    httpx.get(f"http://127.0.0.1:{ports[worker]}/metrics").text,
                ),
                timeout=30,
                what=f"{worker} to consume snapshots",
                explain=lambda: _logs(log_path),
            )
        anonymous = redis.Redis(port=ports["redis"], protocol=2, retry=Retry(NoBackoff(), 0))
        with pytest.raises(redis.AuthenticationError, match="Authentication required"):  # NOAUTH
            anonymous.ping()
        anonymous.close()
        publisher_log = tmp_path / "run" / "logs" / "publisher.log"
        wait_for(  # it starts once its recovery has read (and written) Redis
            lambda: "publisher starting" in publisher_log.read_text(),
            timeout=30,
            what="the publisher to start through the password",
            explain=lambda: _logs(log_path),
        )
        print(f"ranked départements served {ready_after:.1f} s after `run` started")
        # No OBS_COMMAND_KEY: `run` generated one, for its owner's eyes only, and the CLI
        # signs with it from the file.
        key_file = tmp_path / "run" / "command.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        command_key = key_file.read_text()
        assert len(command_key) >= 43
        cli = subprocess.run(
            [sys.executable, "-m", "services.cli", "accounts", "set", "dep-32", "@e2e.signed"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert cli.returncode == 0, f"{cli.stdout}{cli.stderr}"
        assert "uses @e2e.signed" in cli.stdout
        assert command_key not in cli.stdout + cli.stderr

        took = _interrupt(proc)
    finally:
        _kill(proc)
    text = log_path.read_text()
    assert took < 10, text[-3000:]
    assert proc.returncode == 0, text[-3000:]
    assert "observatoire stopped" in text
    assert f"local Redis on 127.0.0.1:{ports['redis']} requires a password" in text
    assert f"generated a command key for this run and wrote it to {key_file}" in text
    logs = [text, *(p.read_text() for p in (tmp_path / "run" / "logs").glob("*.log"))]
    assert not any(REDIS_PASSWORD in written for written in logs)
    assert not any(command_key in written for written in logs)
    for name, port in ports.items():
        assert not port_is_open("127.0.0.1", port), f"{name} still listening after stop"
    for index in (0, 1):
        assert f"http://127.0.0.1:{ports['scorer'] + 100 * index}/metrics" in text
    for service in ("scorer-0", "scorer-1", "api", "collector"):
        service_log = (tmp_path / "run" / "logs" / f"{service}.log").read_text()
        assert "stopped" in service_log, f"{service} did not say it stopped:\n{service_log[-2000:]}"


def test_run_on_a_redis_cluster_starts_three_masters_and_serves(tmp_path: Path):
    """OBS_REDIS_CLUSTER=true: `run` starts three masters (the first on OBS_REDIS_URL's port),
    every service works through the cluster, and Ctrl-C stops the nodes and removes their files."""
    names = ("kafka", "redis", "api", "scorer", "collector", "publisher")
    ports = {name: free_port() for name in names}
    scratch = tmp_path / "tmp"  # the cluster's throwaway directory goes here
    scratch.mkdir()
    env = _run_env(tmp_path, ports, OBS_REDIS_CLUSTER="true", TMPDIR=str(scratch))
    proc, log_path = _start_run(tmp_path, env)
    api = f"http://127.0.0.1:{ports['api']}"
    try:
        body = _ranked_departements(api, log_path, "on the cluster")
        assert [item["rank"] for item in body["items"]] == list(range(1, 11))
        announced = re.search(
            r"local Redis Cluster \(OBS_REDIS_CLUSTER=true\): 3 masters \(([^)]*)\)",
            log_path.read_text(),
        )
        assert announced, log_path.read_text()[-3000:]
        masters = [int(address.rsplit(":", 1)[1]) for address in announced[1].split(", ")]
        assert masters[0] == ports["redis"] and len(set(masters)) == 3
        for port in masters:
            node = redis.Redis(port=port, retry=Retry(NoBackoff(), 0))
            info = node.cluster("INFO")
            assert (info["cluster_state"], info["cluster_known_nodes"]) == ("ok", "3")
            assert node.dbsize() > 0  # the view is spread over the three
            node.close()
        publisher_log = tmp_path / "run" / "logs" / "publisher.log"
        wait_for(
            lambda: "publisher starting" in publisher_log.read_text(),
            timeout=30,
            what="the publisher to start on the cluster",
            explain=lambda: _logs(log_path),
        )
        assert any(scratch.iterdir())  # the nodes' files, while they run
        took = _interrupt(proc)
    finally:
        _kill(proc)
    text = log_path.read_text()
    assert took < 10, text[-3000:]
    assert proc.returncode == 0, text[-3000:]
    for port in masters:
        assert not port_is_open("127.0.0.1", port), f"node {port} still listening after stop"
    assert list(scratch.iterdir()) == []


def _run_env(tmp_path: Path, ports: dict[str, int], **extra: str) -> dict[str, str]:
    """`observatoire run`'s environment on these ports, none of the developer's OBS_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBS_")} | {
        "OBS_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports['kafka']}",
        "OBS_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "OBS_API_PORT": str(ports["api"]),
        "OBS_SCORER_METRICS_PORT": str(ports["scorer"]),
        "OBS_COLLECTOR_METRICS_PORT": str(ports["collector"]),
        "OBS_RUN_DIR": str(tmp_path / "run"),
        "PYTHONPATH": str(REPO_ROOT),
    }
    if "publisher" in ports:
        env["OBS_PUBLISHER_METRICS_PORT"] = str(ports["publisher"])
    return env | extra


def _start_run(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[subprocess.Popen, Path]:
    """`observatoire run ARGS` in `tmp_path` (no .env of the developer's); its log's path."""
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", *args],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return proc, log_path


def _interrupt(proc: subprocess.Popen) -> float:
    """Ctrl-C (SIGINT) to `observatoire run`; how long it took to exit (10 s at most)."""
    proc.send_signal(signal.SIGINT)
    stopping = time.monotonic()
    proc.wait(10)
    return time.monotonic() - stopping


def _kill(proc: subprocess.Popen) -> None:
    """A `run` still running when its test ends (it failed) is killed with the processes it
    started (broker, Redis, services: each in its own session, so they would outlive it and
    hold their ports for the next tests). A `run` that exited is left alone, so the tests'
    checks of what it stopped still count."""
    if proc.poll() is None:
        started = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        proc.kill()
        for pid in started.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        proc.wait()


def _category_totals(api: str) -> dict[str, int]:
    """How many territories each category ranks now."""
    return {
        category: httpx.get(f"{api}/api/v1/standings/{category}", params={"limit": 1}).json()[
            "total"
        ]
        for category in CATEGORY_IDS
    }


def _ranked_departements(api: str, log_path: Path, where: str) -> dict:
    """The first ten départements once `observatoire run` ranks at least ten (60 s at most)."""
    return wait_for(
        lambda: (
            (
                r := httpx.get(f"{api}/api/v1/standings/departements", params={"limit": 10})
            ).status_code
            == 200
            and r.json()["total"] >= 10
            and r.json()
        ),
        timeout=60,
        what=f"ranked départements {where}",
        explain=lambda: _logs(log_path),
    )


def _logs(log_path: Path) -> str:
    """The end of `run`'s log and of each service's, read when a wait fails."""
    logs = [log_path, *sorted((log_path.parent / "run" / "logs").glob("*.log"))]
    return "\n".join(f"--- {p.name}:\n{p.read_text(errors='replace')[-1500:]}" for p in logs)


@pytest.mark.drills
def test_the_demo_publishes_its_first_edition_within_minutes(tmp_path: Path, drill: Drill):
    """`make run` without a token, as a newcomer runs it: the simulated demo replays three
    months and publishes the first complete month by itself, every category in it, within a
    few minutes (measured here: about 3 minutes on a busy machine)."""
    names = ("kafka", "redis", "api", "scorer", "collector", "publisher")
    ports = {name: free_port() for name in names}
    proc, log_path = _start_run(tmp_path, _run_env(tmp_path, ports))
    api = f"http://127.0.0.1:{ports['api']}"
    try:
        started = time.monotonic()
        first = wait_for(
            lambda: next(
                (
                    e
                    for e in httpx.get(f"{api}/api/v1/editions").json()["editions"]
                    if e["status"] == "published"
                ),
                None,
            ),
            timeout=360,
            what="a published edition",
            explain=lambda: _logs(log_path),
        )
        after = time.monotonic() - started
        print(f"edition {first['edition']} published {after:.0f} s after `run` started")
        drill.figures["edition"] = f"{first['edition']} published {after:.0f} s after start"
        assert first["categories"] is not None
        assert set(first["categories"]) == set(CATEGORY_IDS)
        assert all(count > 0 for count in first["categories"].values()), first
        drill.figures["ranked in it"] = f"{sum(first['categories'].values()):,}"
        took = _interrupt(proc)
        drill.figures["stopped in"] = f"{took:.1f} s"
        drill.figures["took"] = f"{time.monotonic() - started:.0f} s"
    finally:
        _kill(proc)
    assert took < 10 and proc.returncode == 0, log_path.read_text()[-3000:]
