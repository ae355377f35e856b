"""The Graph collector's schedule comes from the log it describes, `obs.metrics.v1`.

`collect --source graph --once` run twice, as `observatoire run` does: against a new broker
(here, a new topic prefix) it observes every account again, whatever an earlier run left in
the spool directory; against the same log it observes only what is due (an `error` after
`OBS_COLLECTOR_ERROR_RETRY_HOURS`), even from another spool directory; a snapshot still
waiting in the spool counts as observed.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from services.collector.spool import Spool
from services.common.accounts import load_accounts
from services.common.clock import to_epoch, utcnow
from services.common.events import build_metrics_event
from services.common.kafka import create_topics
from services.common.settings import Settings
from tests.fakes.graph_api import IG_USER_ID, FakeGraphAPI, fake_graph_api, make_account
from tests.kafka_read import read_all
from tests.services import REPO_ROOT, service_env

TOKEN = "EAAGtest0secret0token0restart"
# The real accounts of the bundled mapping (Paris twice on one account); latenareze is unknown
# to the fake: it answers not_found, like the seed's dead link.
ALL_HANDLES = frozenset(account.handle for account in load_accounts().accounts)
HANDLES = ALL_HANDLES - {"latenareze"}
ERROR_RETRY_SECONDS = 2.0


@pytest.fixture
def api() -> Iterator[FakeGraphAPI]:
    with fake_graph_api(tokens=(TOKEN,)) as fake:
        for handle in HANDLES:
            fake.add(make_account(handle))
        yield fake


def _new_log(settings: Settings) -> Settings:
    """The same settings on a new, empty set of topics (a new in-memory broker)."""
    from services.cli.topics import seed_bundled_accounts

    fresh = settings.model_copy(update={"topic_prefix": f"t{uuid.uuid4().hex[:12]}-"})
    assert all(report.ok for report in create_topics(fresh))
    assert seed_bundled_accounts(fresh) == 18
    return fresh


def _collect_once(settings: Settings, api: FakeGraphAPI) -> tuple[set[str], str]:
    """`collect --source graph --once`; the handles it called the Graph API for, its log."""
    api.calls.clear()
    env = service_env(
        settings,
        OBS_GRAPH_BASE_URL=api.base_url,
        OBS_GRAPH_TOKENS=TOKEN,
        OBS_GRAPH_IG_USER_ID=IG_USER_ID,
        OBS_GRAPH_TIMEOUT_SECONDS="2",
        OBS_COLLECTOR_METRICS_PORT="0",
        OBS_COLLECTOR_ERROR_RETRY_HOURS=str(ERROR_RETRY_SECONDS / 3600),
    )
    result = subprocess.run(
        [sys.executable, "-m", "services.cli.collect", "--source", "graph", "--once"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {c.handle for c in api.call_log() if c.handle}, result.stderr


def _snapshots(settings: Settings) -> Counter[str]:
    """Snapshots per handle in `obs.metrics.v1`."""
    return Counter(orjson.loads(r.value)["handle"] for r in read_all(settings, "obs.metrics.v1"))


def test_a_collector_against_a_new_broker_observes_every_account_again(
    settings: Settings, api: FakeGraphAPI
):
    first = _new_log(settings)
    called, first_log = _collect_once(first, api)
    assert called == ALL_HANDLES
    # What an earlier version left beside the spool: every account observed a moment ago.
    stale = settings.spool_dir / "graph" / "graph-schedule.json"
    now = time.time()
    stale.write_bytes(
        orjson.dumps({"cadence": 86400.0, "accounts": {h: [now, "ok"] for h in ALL_HANDLES}})
    )

    second = _new_log(settings)  # `observatoire run` again: a new broker, the same spool
    called, second_log = _collect_once(second, api)
    assert called == ALL_HANDLES
    assert _snapshots(second) == Counter(ALL_HANDLES)
    assert not stale.exists() and "graph-schedule.json: the schedule is derived" in second_log
    for log in (first_log, second_log):
        assert "0 of 17 account(s) observed recently" in log and "17 due now" in log


def test_a_restart_against_the_same_log_observes_only_what_is_due(
    settings: Settings, api: FakeGraphAPI, tmp_path: Path
):
    api.fail_always("stylemillau", "permission")  # an `error` snapshot, retried sooner
    log_settings = _new_log(settings)
    called, _ = _collect_once(log_settings, api)
    assert called == ALL_HANDLES
    errors = [
        orjson.loads(r.value)
        for r in read_all(log_settings, "obs.metrics.v1")
        if orjson.loads(r.value)["status"] == "error"
    ]
    assert [e["handle"] for e in errors] == ["stylemillau"]

    # Another spool directory: what the restart knows can only come from the log.
    elsewhere = log_settings.model_copy(update={"spool_dir": tmp_path / "other-spool"})
    retry_at = to_epoch(errors[0]["observed_at"]) + ERROR_RETRY_SECONDS + 1
    while time.time() < retry_at:  # the error's retry time, not a guess
        time.sleep(0.1)
    called, log = _collect_once(elsewhere, api)
    assert called == {"stylemillau"}  # the error only: the others are within the cadence
    assert "16 of 17 account(s) observed recently" in log and "1 due now" in log
    assert "(from the beginning)" in log  # Tansu cannot list offsets by time
    assert _snapshots(log_settings)["gersledepartement"] == 1


def test_a_snapshot_not_yet_delivered_is_not_observed_again(settings: Settings, api: FakeGraphAPI):
    waiting = build_metrics_event(
        handle="gersledepartement",
        observed_at=utcnow(),
        status="ok",
        source="graph",
        followers=15000,
        follows=300,
        media_count=520,
    )
    # Left by a run whose broker went away before confirming it.
    spool = Spool(settings.spool_dir / "graph", max_bytes=10**6)
    spool.append([("obs.metrics.v1", "instagram:gersledepartement", waiting)])
    spool.close()

    fresh = _new_log(settings)
    called, _ = _collect_once(fresh, api)
    # Read from the spool, or from the log if the sender delivered it first: never observed
    # again (tests/unit/test_collector_recent_attempts.py reads the spool alone).
    assert called == ALL_HANDLES - {"gersledepartement"}
    assert _snapshots(fresh) == Counter(ALL_HANDLES)  # delivered to the new broker
