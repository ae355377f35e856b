"""The golden log generator: deterministic, valid, and holding every case it promises."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.common.clock import edition_of, parse_timestamp, utcnow
from services.common.contracts import CATEGORY_IDS
from services.common.reference import compute_standings
from services.common.territories import load_registry
from services.common.validation import Rejection, validate_account, validate_metrics
from tests.golden.generate import GoldenLog, generate

END = datetime(2021, 7, 10, 6, 0, tzinfo=UTC)
END_TEXT = "2021-07-10T06:00:00Z"
END_MS = int(END.timestamp() * 1000)


@pytest.fixture(scope="module")
def log() -> GoldenLog:
    return generate(2021, 5000, end=END)


def initial_mapping(log: GoldenLog) -> dict[str, str | None]:
    return {record["id"]: record["handle"] for record in log.accounts}


def final_mapping(log: GoldenLog) -> dict[str, str | None]:
    return {record["id"]: record["handle"] for record in log.final_accounts()}


def ok_events(log: GoldenLog) -> list[dict[str, Any]]:
    return [event for event in log.metrics if event["status"] == "ok"]


# --- Determinism and validity ----------------------------------------------------------------


def test_same_seed_gives_the_same_log_and_another_seed_another() -> None:
    first = generate(5, 1500, end=END)
    again = generate(5, 1500, end=END)
    assert first.metrics == again.metrics
    assert first.accounts == again.accounts
    assert first.accounts_after == again.accounts_after
    other = generate(6, 1500, end=END)
    assert [e["event_id"] for e in other.metrics] != [e["event_id"] for e in first.metrics]


def test_log_has_the_requested_size_and_valid_events_only(log: GoldenLog) -> None:
    assert len(log.metrics) == 5000
    for event in log.metrics:
        result = validate_metrics(orjson.dumps(event), END_MS)
        assert not isinstance(result, Rejection), result
    for record in log.final_accounts():
        checked = validate_account(orjson.dumps(record), END_MS)
        assert not isinstance(checked, Rejection), checked
        assert record["id"] in load_registry()


def test_events_span_about_three_months_and_never_pass_the_end(log: GoldenLog) -> None:
    times = [event["observed_at"] for event in log.metrics]
    assert max(times) <= END_TEXT
    assert parse_timestamp(min(times)) >= END - timedelta(days=93)
    assert parse_timestamp(min(times)) <= END - timedelta(days=85)


def test_a_log_ending_now_has_nothing_from_the_future() -> None:
    now = utcnow()
    recent = generate(3, 1000, end=now)
    now_ms = int(now.timestamp() * 1000)
    assert all(
        not isinstance(validate_metrics(orjson.dumps(event), now_ms), Rejection)
        for event in recent.metrics
    )


def test_snapshots_are_realistic(log: GoldenLog) -> None:
    posts = [len(event["recent_posts"]) for event in ok_events(log)]
    assert 5 <= statistics.median(posts) <= 30
    handles = {event["handle"] for event in log.metrics}
    assert 200 <= len(handles) <= 600


def test_write_puts_the_initial_then_the_later_account_records_in_one_file(
    log: GoldenLog, tmp_path: Path
) -> None:
    metrics_path, accounts_path = log.write(tmp_path)
    metrics = [orjson.loads(raw) for raw in metrics_path.read_bytes().splitlines()]
    accounts = [orjson.loads(raw) for raw in accounts_path.read_bytes().splitlines()]
    assert metrics == log.metrics
    assert accounts == log.accounts + [record for _, record in log.accounts_after]


# --- Every planted case is there -------------------------------------------------------------


def test_accounts_cover_every_category_some_shared_and_the_bundled_ones(log: GoldenLog) -> None:
    registry = load_registry()
    mapping = initial_mapping(log)
    assert {registry[tid].category for tid in mapping} == set(CATEGORY_IDS)
    shared = [h for h, count in Counter(mapping.values()).items() if count >= 2]
    assert "paris_maville" in shared
    assert len(shared) >= 5
    assert mapping["dep-32"] == "gersledepartement"


def test_there_are_duplicates_placed_later(log: GoldenLog) -> None:
    seen: set[str] = set()
    duplicates = 0
    for event in log.metrics:
        duplicates += event["event_id"] in seen
        seen.add(event["event_id"])
    assert duplicates >= 10


def test_there_are_out_of_order_and_backfilled_events(log: GoldenLog) -> None:
    newest_of: dict[str, str] = {}
    newest = log.metrics[0]["observed_at"]
    out_of_order = backfilled = 0
    for event in log.metrics:
        observed_at = event["observed_at"]
        if observed_at < newest_of.get(event["handle"], ""):
            out_of_order += 1  # an older snapshot of the account after a newer one
        if parse_timestamp(newest) - parse_timestamp(observed_at) > timedelta(days=20):
            backfilled += 1  # an old snapshot placed among much newer ones
        newest_of[event["handle"]] = max(observed_at, newest_of.get(event["handle"], ""))
        newest = max(newest, observed_at)
    assert out_of_order >= 20
    assert backfilled >= 5


def test_there_are_equal_observed_at_with_different_content(log: GoldenLog) -> None:
    ids: dict[tuple[str, str], set[str]] = {}
    for event in ok_events(log):
        ids.setdefault((event["handle"], event["observed_at"]), set()).add(event["event_id"])
    assert sum(len(found) >= 2 for found in ids.values()) >= 3


def test_an_older_ok_comes_after_a_not_found_of_the_same_account(log: GoldenLog) -> None:
    not_found_at: dict[str, str] = {}
    late_oks = 0
    for event in log.metrics:
        handle = event["handle"]
        if event["status"] == "not_found":
            not_found_at.setdefault(handle, event["observed_at"])
        elif event["status"] == "ok" and event["observed_at"] < not_found_at.get(handle, ""):
            late_oks += 1
    assert late_oks >= 1


def test_statuses_hidden_likes_and_zero_followers_occur(log: GoldenLog) -> None:
    statuses = Counter(event["status"] for event in log.metrics)
    assert statuses["not_found"] >= 5
    assert statuses["error"] >= 5
    hidden = [
        post for event in ok_events(log) for post in event["recent_posts"] if post["likes_hidden"]
    ]
    assert hidden and all(p["likes"] == 0 and p["comments"] > 0 for p in hidden)
    assert any(event["followers"] == 0 for event in ok_events(log))


def test_a_territory_of_population_zero_has_an_observed_account(log: GoldenLog) -> None:
    registry = load_registry()
    mapping = final_mapping(log)
    zero = [tid for tid, handle in mapping.items() if handle and registry[tid].population == 0]
    assert zero
    observed = {event["handle"] for event in ok_events(log)}
    assert any(mapping[tid] in observed for tid in zero)


def test_some_mapped_accounts_stop_more_than_thirty_days_before_the_end(log: GoldenLog) -> None:
    mapped = {handle for handle in final_mapping(log).values() if handle}
    last_ok: dict[str, str] = {}
    for event in ok_events(log):
        last_ok[event["handle"]] = max(event["observed_at"], last_ok.get(event["handle"], ""))
    watermark = parse_timestamp(max(event["observed_at"] for event in log.metrics))
    inactive = [
        handle
        for handle in mapped
        if handle in last_ok and watermark - parse_timestamp(last_ok[handle]) > timedelta(days=30)
    ]
    assert len(inactive) >= 5


def test_snapshots_straddle_a_month_boundary_by_one_second(log: GoldenLog) -> None:
    times: dict[str, set[str]] = {}
    for event in ok_events(log):
        times.setdefault(event["handle"], set()).add(event["observed_at"])
    pairs = [
        (before, after)
        for stamps in times.values()
        for after in stamps
        for before in [
            (parse_timestamp(after) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ]
        if before in stamps
        and edition_of(parse_timestamp(before)) != edition_of(parse_timestamp(after))
    ]
    # Summer months in Paris (UTC+2): June ends at 2021-06-30T22:00:00Z.
    assert ("2021-06-30T21:59:59Z", "2021-06-30T22:00:00Z") in pairs
    assert ("2021-05-31T21:59:59Z", "2021-05-31T22:00:00Z") in pairs


def test_a_territory_changes_handle_mid_stream_and_another_loses_its_account(
    log: GoldenLog,
) -> None:
    initial = initial_mapping(log)
    changes = [(i, r) for i, r in log.accounts_after if r["handle"] is not None]
    removals = [(i, r) for i, r in log.accounts_after if r["handle"] is None]
    assert changes and removals
    for i, record in changes + removals:
        assert 0 < i < len(log.metrics)
        assert initial[record["id"]] not in (None, record["handle"])
    index, record = changes[0]
    new_handle = record["handle"]
    # The new account is observed after the change, the old one is observed before it.
    assert any(e["handle"] == new_handle for e in log.metrics[index:])
    assert all(e["handle"] != new_handle for e in log.metrics[:index])
    assert any(e["handle"] == initial[record["id"]] for e in log.metrics[:index])


# --- The oracle on a golden log --------------------------------------------------------------


def test_reference_ranks_every_category_of_a_golden_log(log: GoldenLog) -> None:
    result = compute_standings(
        (orjson.dumps(event) for event in log.metrics),
        account_lines=(orjson.dumps(record) for record in log.final_accounts()),
        now_ms=END_MS,
    )
    assert result.rejected == [] and result.rejected_accounts == []
    assert list(result.current) == list(CATEGORY_IDS)
    newest: dict[tuple[str, str], str] = {}  # account -> its newest observed_at
    for event in log.metrics:
        account = (event["platform"], event["handle"])
        newest[account] = max(event["observed_at"], newest.get(account, ""))
    # The 3rd newest account's time (contract v4), below the newest event of all.
    assert result.watermark == sorted(newest.values(), reverse=True)[2]
    assert result.watermark < max(newest.values())
    ranked = {entry["id"] for entries in result.current.values() for entry in entries}
    for _, record in log.accounts_after:
        if record["handle"] is None:
            assert record["id"] not in ranked
    for editions in result.editions.values():
        for entries in editions.values():
            assert [entry["rank"] for entry in entries] == list(range(1, len(entries) + 1))
    assert {"2021-05", "2021-06", "2021-07"} <= set(result.editions)
