"""The Graph source against a fake Graph API served over real HTTP on loopback.

Classification and retries per fault, the budget never exceeded (counted from the calls the
fake received), pacing from the usage headers, tokens never shown, the accounts of
`obs.accounts.v1` followed at run time, and `collect --source graph` end to end.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY, generate_latest
from pydantic import SecretStr

from services.collector.accounts_follower import AccountsFollower
from services.collector.budget import BudgetPool
from services.collector.graph import GraphClient, GraphPolicy
from services.collector.graph_source import GraphCollector, GraphReport
from services.collector.scheduler import Schedule
from services.common.events import build_account_record
from services.common.kafka import create_topics, make_producer
from services.common.settings import Settings
from tests.fakes.graph_api import IG_USER_ID, FakeGraphAPI, fake_graph_api, make_account
from tests.kafka_read import read_all
from tests.services import REPO_ROOT, service_env

TOKEN = "EAAGtest0secret0token0one"
OTHER_TOKEN = "EAAGtest0secret0token0two"
# The client's timeout leaves the fake (in this process, sharing its GIL) time to answer; its
# timeout fault answers later than that.
FAST = GraphPolicy(timeout=1.0, max_attempts=3, backoff_initial=0.01, backoff_max=0.05)
TRANSIENT = (
    "429",
    "throttle:4",
    "throttle:17",
    "throttle:32",
    "throttle:613",
    "500",
    "503",
    "timeout",
    "truncated",
    "malformed_json",
    "wrong_shape",
)


@pytest.fixture
def api() -> Iterator[FakeGraphAPI]:
    with fake_graph_api(tokens=(TOKEN, OTHER_TOKEN), timeout_delay=1.5) as fake:
        yield fake


async def observe(
    api: FakeGraphAPI,
    handles: list[str],
    *,
    tokens: tuple[str, ...] = (TOKEN,),
    calls_per_window: int = 200,
    window: float = 3600.0,
    concurrency: int = 4,
    once: bool = True,
    cadence: float = 3600.0,
    stop: threading.Event | None = None,
) -> tuple[dict[str, dict], GraphReport, BudgetPool, GraphClient]:
    """Run the Graph collector over `handles`; the snapshots by handle (the last of each)."""
    pool = BudgetPool(
        [SecretStr(t) for t in tokens],
        calls_per_window=calls_per_window,
        window_seconds=window,
        throttle_pause=0.05,
    )
    client = GraphClient(base_url=api.base_url, ig_user_id=IG_USER_ID, pool=pool, policy=FAST)
    events: list[dict] = []
    collector = GraphCollector(
        client,
        Schedule(cadence),
        handles=lambda: handles,
        submit=events.extend,
        concurrency=concurrency,
    )
    try:
        report = await collector.run(stop or threading.Event(), once=once)
    finally:
        await client.aclose()
    return {e["handle"]: e for e in events}, report, pool, client


def _max_in_any_window(times: list[float], window: float) -> int:
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


async def test_every_answer_is_classified_and_transient_faults_are_retried(api):
    now = datetime.now(UTC)
    handles = ["plain", "hidden", "paged", "gone", "denied"]
    api.add(make_account("plain", posts=20, now=now))
    api.add(make_account("hidden", posts=10, hidden_likes=True, now=now))
    # 150 posts over 60 days: 75 in the window; pages of 50 -> the second page reaches past
    # the window, so paging stops there (2 calls), and only the 75 are kept.
    api.add(make_account("paged", posts=150, days=60, now=now))
    api.add(make_account("denied"))
    api.fail_always("denied", "permission")
    for fault in TRANSIENT:
        once, always = f"once_{fault}".replace(":", "_"), f"always_{fault}".replace(":", "_")
        api.add(make_account(once, now=now))
        api.add(make_account(always, now=now))
        api.fail(once, fault)
        api.fail_always(always, fault)
        handles += [once, always]

    started = time.monotonic()
    events, report, _, _ = await observe(api, handles, concurrency=8)
    took = time.monotonic() - started

    calls = Counter(call.handle for call in api.call_log())
    assert events["plain"]["status"] == "ok" and calls["plain"] == 1
    plain = events["plain"]
    assert plain["followers"] == 15000 and plain["account_id"] == api.accounts["plain"].id
    assert len(plain["recent_posts"]) == 20 and plain["source"] == "graph"
    assert plain["recent_posts"][0]["published_at"].endswith("Z")
    assert all(p["likes_hidden"] for p in events["hidden"]["recent_posts"])
    assert len(events["paged"]["recent_posts"]) == 75 and calls["paged"] == 2
    assert events["gone"]["status"] == "not_found" and calls["gone"] == 1
    assert events["gone"]["followers"] is None
    assert events["denied"]["status"] == "error" and calls["denied"] == 1  # not retried
    for fault in TRANSIENT:
        once, always = f"once_{fault}".replace(":", "_"), f"always_{fault}".replace(":", "_")
        assert events[once]["status"] == "ok", fault
        assert calls[once] == 2, fault  # one fault, one retry
        assert events[always]["status"] == "error", fault  # never not_found
        assert calls[always] == FAST.max_attempts, fault
    assert report.observed == Counter(ok=3 + len(TRANSIENT), not_found=1, error=1 + len(TRANSIENT))
    for outcome in ("ok", "not_found", "throttled", "http_429", "server_error", "timeout"):
        assert REGISTRY.get_sample_value("obs_collector_graph_calls_total", {"outcome": outcome})
    for outcome in ("malformed", "other_error"):
        assert REGISTRY.get_sample_value("obs_collector_graph_calls_total", {"outcome": outcome})
    assert REGISTRY.get_sample_value("obs_collector_fetch_seconds_count", {"source": "graph"})
    print(f"{len(handles)} accounts, {sum(calls.values())} calls in {took:.2f} s")


@pytest.mark.parametrize("fault", TRANSIENT)
async def test_a_transient_fault_never_marks_an_account_not_found(api, fault):
    """Whatever precedes it, only the platform's own 110/2207013 answer means not_found."""
    api.add(make_account("flaky"))
    api.fail("flaky", fault, fault)  # two faults, then the account answers
    api.fail("gone", fault)  # one fault, then the platform says: not found
    api.add(make_account("lost"))
    api.fail_always("lost", fault)
    events, _, _, _ = await observe(api, ["flaky", "gone", "lost"])
    assert events["flaky"]["status"] == "ok"
    assert events["gone"]["status"] == "not_found"
    assert [c.answered for c in api.calls_for("gone")] == [fault, "not_found"]
    assert events["lost"]["status"] == "error"


async def test_not_found_after_a_first_page_is_an_error_not_a_dead_account(api):
    api.add(make_account("midway", posts=150, days=60))
    api.fail_pages("midway", "not_found")
    events, _, _, _ = await observe(api, ["midway"])
    assert events["midway"]["status"] == "error"
    assert [c.answered for c in api.calls_for("midway")] == ["ok", "not_found"]


async def test_an_invalid_token_is_dropped_not_blamed_on_the_account(api):
    api.add(make_account("gers"))
    api.add(make_account("ariege"))
    events, _, pool, _ = await observe(
        api, ["gers", "ariege"], tokens=("revoked", TOKEN), concurrency=1
    )
    assert {e["status"] for e in events.values()} == {"ok"}
    assert not pool.tokens[0].valid and pool.tokens[1].valid
    assert REGISTRY.get_sample_value("obs_collector_graph_token_valid", {"token": "1"}) == 0
    assert REGISTRY.get_sample_value("obs_collector_graph_token_valid", {"token": "2"}) == 1
    rejected = [c for c in api.call_log() if c.answered == "invalid_token"]
    assert len(rejected) == 1  # the revoked token was tried once, then never again

    api.calls.clear()
    events, report, _, _ = await observe(api, ["gers"], tokens=("revoked", "expired"))
    assert events == {}  # no snapshot at all: certainly not a not_found
    assert report.no_usable_token is not None and "code 190" in report.no_usable_token


async def test_tokens_never_appear_in_logs_errors_reprs_or_metrics(api, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    api.add(make_account("gers"))
    handles = ["gers", "gone"]
    for fault in (*TRANSIENT, "permission"):
        handle = f"f_{fault}".replace(":", "_")
        api.add(make_account(handle))
        api.fail(handle, fault)
        handles.append(handle)
    events, report, pool, client = await observe(api, handles, tokens=("revoked0token", TOKEN))
    texts = [
        caplog.text,
        repr(pool),
        repr(client),
        str(report),
        orjson.dumps(list(events.values())).decode(),
        generate_latest(REGISTRY).decode(),
    ]
    _, report_no_token, _, _ = await observe(api, ["gers"], tokens=("revoked0token",))
    texts.append(str(report_no_token.no_usable_token))
    assert {c.token for c in api.call_log()} >= {TOKEN, "revoked0token"}  # they were sent
    for text in texts:
        assert TOKEN not in text and "revoked0token" not in text
    assert "token #1" in caplog.text  # named by position


async def test_the_budget_is_never_exceeded(api):
    handles = [f"acct{i:02d}" for i in range(12)]
    for handle in handles:
        api.add(make_account(handle))
    window, budget = 1.5, 5
    started = time.monotonic()
    events, _, _, _ = await observe(
        api, handles, calls_per_window=budget, window=window, concurrency=4
    )
    took = time.monotonic() - started
    times = [c.at for c in api.call_log()]
    assert len(events) == 12 and len(times) == 12
    assert _max_in_any_window(times, window) == budget  # used, never exceeded
    assert took >= 2 * window  # 12 calls at 5 per window need three windows
    used = REGISTRY.get_sample_value("obs_collector_graph_budget_used", {"token": "1"})
    remaining = REGISTRY.get_sample_value("obs_collector_graph_budget_remaining", {"token": "1"})
    assert used is not None and remaining is not None and used + remaining == budget

    # Two tokens: twice the budget, each token within its own.
    api.calls.clear()
    started = time.monotonic()
    events, _, _, _ = await observe(
        api, handles, tokens=(TOKEN, OTHER_TOKEN), calls_per_window=budget, window=window
    )
    took_two = time.monotonic() - started
    log = api.call_log()
    assert len(events) == 12
    assert _max_in_any_window([c.at for c in log], window) <= 2 * budget
    for token in (TOKEN, OTHER_TOKEN):
        assert _max_in_any_window([c.at for c in log if c.token == token], window) <= budget
    print(
        f"12 accounts, budget {budget}/{window} s: {took:.2f} s with one token, "
        f"{took_two:.2f} s with two"
    )


async def test_when_the_budget_is_short_the_stalest_go_first_and_none_starves(api):
    handles = [f"acct{i}" for i in range(6)]
    for handle in handles:
        api.add(make_account(handle))
    stop = threading.Event()

    async def until_enough_calls() -> None:
        await _until(lambda: len(api.call_log()) >= 18, "18 calls")
        stop.set()

    watcher = asyncio.create_task(until_enough_calls())
    # Every account is due again almost at once (cadence 10 ms): the budget (3 calls per
    # 0.6 s) is the only limit, and much smaller than the work.
    await asyncio.wait_for(
        observe(
            api,
            handles,
            calls_per_window=3,
            window=0.6,
            once=False,
            cadence=0.01,
            stop=stop,
            concurrency=2,
        ),
        timeout=30,
    )
    await watcher
    log = api.call_log()
    order = [c.handle for c in log]
    assert sorted(order[:6]) == handles  # the never observed first
    # Round-robin: stalest first. Two workers may swap two neighbouring calls on the wire,
    # so every 7 consecutive calls (6 accounts + 1) hold every account.
    for start in range(0, len(order) - 6):
        assert set(order[start : start + 7]) == set(handles), " ".join(order)
    assert _max_in_any_window([c.at for c in log], 0.6) <= 3


async def test_usage_headers_at_90_percent_slow_the_collector_down(api):
    handles = [f"acct{i}" for i in range(5)]
    for handle in handles:
        api.add(make_account(handle))
    # 20 calls per 2 s window: at 90 % the remaining 10 % (2 calls) spread over the window,
    # one call per second; below 75 % no pacing at all. Pacing starts with the first answer:
    # the two calls the two workers sent before it are not spaced.
    api.usage_percent = 10
    await observe(api, handles, calls_per_window=20, window=2.0, concurrency=2)
    calm = [c.at for c in api.call_log()]
    api.calls.clear()
    api.usage_percent = 90
    await observe(api, handles, calls_per_window=20, window=2.0, concurrency=2)
    busy = [c.at for c in api.call_log()]
    calm_gaps = [b - a for a, b in itertools.pairwise(calm)]
    busy_gaps = [b - a for a, b in itertools.pairwise(busy[1:])]
    print(
        f"gaps between calls: {max(calm_gaps):.3f} s at most at 10 %, "
        f"{min(busy_gaps):.3f}-{max(busy_gaps):.3f} s at 90 % "
        f"(5 calls in {calm[-1] - calm[0]:.3f} s, then {busy[-1] - busy[0]:.3f} s)"
    )
    assert calm[-1] - calm[0] < 0.5
    assert min(busy_gaps) >= 0.9  # 1 s between grants, minus loopback latency
    assert busy[-1] - busy[0] >= 3 * 0.9


async def test_the_handles_of_obs_accounts_are_followed_at_run_time(api, settings: Settings):
    assert all(report.ok for report in create_topics(settings))
    for handle in ("gersledepartement", "paris_maville", "gers_nouveau"):
        api.add(make_account(handle))
    now = datetime.now(UTC) - timedelta(minutes=1)
    records = [
        build_account_record(territory_id="dep-32", handle="gersledepartement", changed_at=now),
        build_account_record(territory_id="dep-75", handle="paris_maville", changed_at=now),
        build_account_record(territory_id="com-75056", handle="paris_maville", changed_at=now),
        build_account_record(
            territory_id="dep-01", handle="sim.dep.01", changed_at=now, simulated=True
        ),
    ]
    _produce_accounts(settings, records)
    follower = AccountsFollower(settings).start()
    stop = threading.Event()
    pool = BudgetPool([SecretStr(TOKEN)], calls_per_window=200, throttle_pause=0.05)
    client = GraphClient(base_url=api.base_url, ig_user_id=IG_USER_ID, pool=pool, policy=FAST)
    events: list[dict] = []
    schedule = Schedule(cadence_seconds=0.3)
    collector = GraphCollector(
        client,
        schedule,
        handles=lambda: follower.handles().keys(),
        version=lambda: follower.version,
        submit=events.extend,
    )
    task = asyncio.create_task(collector.run(stop))
    try:
        await _until(lambda: {"gersledepartement", "paris_maville"} <= _called(api), "first calls")
        _produce_accounts(
            settings,
            [build_account_record(territory_id="dep-32", handle="gers_nouveau", changed_at=now)],
        )
        await _until(lambda: "gers_nouveau" in schedule, "the new handle to be scheduled")
        changed_at = time.monotonic()
        # observed twice since: the old handle, were it still scheduled, would be due as often
        await _until(lambda: len(api.calls_for("gers_nouveau")) >= 2, "the new handle observed")
    finally:
        stop.set()
        await task
        await client.aclose()
        follower.stop()
    assert "sim.dep.01" not in _called(api)  # simulated accounts are not on Instagram
    late = [c for c in api.calls_for("gersledepartement") if c.at > changed_at]
    assert len(late) <= 1  # at most one already in flight when the change arrived
    assert Counter(e["handle"] for e in events)["paris_maville"] >= 1


def _called(api: FakeGraphAPI) -> set[str]:
    return {c.handle for c in api.call_log() if c.handle}


async def _until(condition, what: str, within: float = 20.0) -> None:
    """Poll `condition` until it holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _produce_accounts(settings: Settings, records: list[dict]) -> None:
    producer = make_producer(settings)
    try:
        for record in records:
            producer.send(
                settings.topic("obs.accounts.v1"),
                key=record["id"].encode(),
                value=orjson.dumps(record),
            ).get(timeout=10)
    finally:
        producer.close()


# --- the command, end to end ---------------------------------------------------------------


def _collect(
    args: list[str], env: dict[str, str], timeout: float = 90
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.cli.collect", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_collect_graph_once_observes_every_account_of_the_topic(api, settings, tmp_path: Path):
    from services.cli.topics import seed_bundled_accounts

    assert all(report.ok for report in create_topics(settings))
    assert seed_bundled_accounts(settings) == 18
    handles = {"gersledepartement", "paris_maville", "isere.le.departement", "haute_marne"}
    handles |= {"eureennormandie", "departement.ardeche", "ariegeledpt", "hautevienne_dep"}
    handles |= {"ma_charente_maritime", "cc_comtal_lot_truyere", "paysbigouden"}
    handles |= {"lescoevrons", "isignyomahaintercom", "stylemillau", "ccpaysdevalois"}
    handles |= {"creuseconfluence"}
    for handle in handles:
        api.add(make_account(handle, hidden_likes=handle == "haute_marne"))
    api.fail("paris_maville", "500")
    # latenareze is unknown to the fake: it answers 110/2207013, like the seed's dead link
    env = service_env(
        settings,
        OBS_GRAPH_BASE_URL=api.base_url,
        OBS_GRAPH_TOKENS=f" {TOKEN} , {OTHER_TOKEN} ",
        OBS_GRAPH_IG_USER_ID=IG_USER_ID,
        OBS_GRAPH_TIMEOUT_SECONDS="2",
        OBS_COLLECTOR_METRICS_PORT="0",
    )
    result = _collect(["--source", "graph", "--once"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    records = read_all(settings, "obs.metrics.v1")
    events = {r.key.decode(): orjson.loads(r.value) for r in records}
    assert len(records) == 17  # 18 territories, Paris twice on one account
    assert set(events) == {f"instagram:{h}" for h in handles | {"latenareze"}}
    assert events["instagram:latenareze"]["status"] == "not_found"
    assert events["instagram:paris_maville"]["status"] == "ok"  # retried after the 500
    assert {e["status"] for k, e in events.items() if k != "instagram:latenareze"} == {"ok"}
    assert "17 record(s) collected, 17 confirmed" in result.stderr
    assert TOKEN not in result.stderr + result.stdout


def test_collect_graph_without_a_token_is_a_clear_error(settings):
    env = service_env(settings, OBS_COLLECTOR_METRICS_PORT="0", OBS_GRAPH_TOKENS="")
    result = _collect(["--source", "graph", "--once"], env, 60)
    assert result.returncode == 2, result.stderr
    assert "--source graph needs OBS_GRAPH_TOKENS and OBS_GRAPH_IG_USER_ID" in result.stderr
    assert "Traceback" not in result.stderr
    service = subprocess.run(
        [sys.executable, "-m", "services.cli", "service", "collector", "--source", "graph"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert service.returncode == 2 and "needs OBS_GRAPH_TOKENS" in service.stderr
    assert "Traceback" not in service.stderr
