"""The reference batch computation (the oracle) against standings computed by hand.

The fixture is a small log written to exercise every rule of "Methodology v1" and of the
compare-and-set order; the expected standings below were computed with pencil and paper from
the formulas (the arithmetic of each score is in the comments), never by the code under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from services.cli import replay as replay_module
from services.cli.replay import replay_command
from services.common.events import build_account_record, build_metrics_event, build_recent_post
from services.common.reference import ReferenceResult, compute_standings

NOW = "2021-07-12T06:00:00Z"  # the batch's clock: events more than 300 s after it are refused
NOW_MS = int(datetime.fromisoformat(NOW).timestamp() * 1000)
DAY_MS = 86_400_000


def post(post_id: str, published_at: str, likes: int, comments: int) -> dict[str, Any]:
    return dict(
        build_recent_post(
            post_id=post_id, published_at=published_at, likes=likes, comments=comments
        )
    )


def ok(
    handle: str, observed_at: str, followers: int, follows: int, posts: list[dict[str, Any]]
) -> dict[str, Any]:
    return build_metrics_event(
        handle=handle,
        observed_at=observed_at,
        status="ok",
        source="graph",
        account_id=None,
        followers=followers,
        follows=follows,
        media_count=1000,
        recent_posts=posts,
    )


def not_ok(handle: str, observed_at: str, status: Any) -> dict[str, Any]:
    return build_metrics_event(
        handle=handle, observed_at=observed_at, status=status, source="graph"
    )


# --- The log ---------------------------------------------------------------------------------

# Gers (dep-32, pop 192,645). Paris time 23:59:59 on 30 June: the June edition.
GERS_JUNE = ok(
    "gersledepartement",
    "2021-06-30T21:59:59Z",
    10_000,
    100,
    [
        post("g1", "2021-06-29T10:00:00Z", 150, 50),
        post("g2", "2021-06-20T10:00:00Z", 180, 20),
        post("g3", "2021-05-31T21:59:59Z", 1000, 0),  # exactly t - 720 h: outside the window
        post("g4", "2021-06-30T21:59:59Z", 190, 10),  # exactly t: inside
    ],
)
# One second later, 00:00:00 on 1 July in Paris: the July edition (and the current standings).
GERS_JULY = ok(
    "gersledepartement",
    "2021-06-30T22:00:00Z",
    12_000,
    100,
    [
        post("g1", "2021-06-29T10:00:00Z", 150, 50),
        post("g2", "2021-06-20T10:00:00Z", 180, 20),
        post("g3", "2021-05-31T21:59:59Z", 1000, 0),
        post("g4", "2021-06-30T21:59:59Z", 190, 10),
        post("g5", "2021-06-30T22:00:00Z", 240, 0),
    ],
)
# Older, placed late in the log: loses everywhere (it would score 51.8566, more than both).
GERS_OLD = ok(
    "gersledepartement",
    "2021-06-20T06:00:00Z",
    9_000,
    100,
    [post("g0", "2021-06-19T10:00:00Z", 900, 0)],
)
GERS_ERROR = not_ok("gersledepartement", "2021-07-12T00:00:00Z", "error")  # the watermark

PARIS_POSTS = [
    post(f"p{day}", f"2021-{day}T09:00:00Z", 1900, 100)
    for day in ("06-30", "07-01", "07-02", "07-03", "07-04", "07-05")
]
# Two different snapshots observed at the same second: the greater event_id wins (A here),
# though B comes later in the log and has more followers.
PARIS_A = ok("paris_maville", "2021-07-05T10:00:00Z", 500_000, 1000, PARIS_POSTS)
PARIS_B = ok("paris_maville", "2021-07-05T10:00:00Z", 520_000, 1000, PARIS_POSTS)
PARIS_GONE = not_ok("paris_maville", "2021-07-08T00:00:00Z", "not_found")  # newer than any ok

# Isère and Eure: the same figures on either side of the 30-day line (watermark 2021-07-12
# 00:00:00Z, so active from 2021-06-12T00:00:00Z included). Both have reach 0 (R <= 0.001).
TWIN_POSTS = [
    post("t1", "2021-06-01T08:00:00Z", 20, 5),
    post("t2", "2021-06-05T08:00:00Z", 10, 5),
]
ISERE = ok("isere.le.departement", "2021-06-11T23:59:59Z", 500, 1000, TWIN_POSTS)  # inactive
EURE = ok("eureennormandie", "2021-06-12T00:00:00Z", 500, 1000, TWIN_POSTS)  # just active

# Occitanie (reg-76, pop 6,124,653) gets an account from the ACCOUNTS file, whose last record
# for reg-76 is `laregionoccitanie`: the `occitanie` handle's snapshot counts for no one.
OCCITANIE_OLD_HANDLE = ok(
    "occitanie",
    "2021-07-03T08:00:00Z",
    100_000,
    10,
    [post("o1", "2021-07-01T08:00:00Z", 1000, 500), post("o2", "2021-07-02T08:00:00Z", 1000, 500)],
)
OCCITANIE = ok(
    "laregionoccitanie",
    "2021-07-10T06:00:00Z",
    200_000,
    2000,
    [
        post("r1", "2021-07-09T12:00:00Z", 0, 40),  # likes hidden: its comments only
        post("r2", "2021-07-08T12:00:00Z", 3000, 100),
        post("r3", "2021-07-01T12:00:00Z", 1900, 60),
    ],
)
# dep-52's account is removed (handle null) by the ACCOUNTS file.
HAUTE_MARNE = ok(
    "haute_marne", "2021-07-01T08:00:00Z", 50_000, 100, [post("h1", "2021-06-30T08:00:00Z", 500, 0)]
)
# Ariège (dep-09): no followers at all.
ARIEGE = ok(
    "ariegeledpt",
    "2021-07-02T08:00:00Z",
    0,
    10,
    [post(f"a{i}", f"2021-06-2{i}T08:00:00Z", 0, 0) for i in range(6)],
)
# Beaumont-en-Verdunois (com-55039), population 0: reach is null.
BEAUMONT = ok(
    "beaumont_verdunois",
    "2021-07-04T08:00:00Z",
    200,
    400,
    [post("b1", "2021-07-03T08:00:00Z", 3, 1)],
)
# The watermark is the 3rd newest account time (contract v4): two accounts no territory uses
# observe at Gers's error time, so the 3rd newest is 2021-07-12T00:00:00Z (GERS_ERROR).
WITNESS_A = not_ok("temoin_a", "2021-07-12T00:00:00Z", "error")
WITNESS_B = not_ok("temoin_b", "2021-07-12T00:00:00Z", "not_found")
# One account whose clock runs ahead (valid: 299 s after the batch's clock, within the 300 s
# of the `future` rule): the newest of all, yet alone it moves time for nobody.
AHEAD = not_ok("horloge_en_avance", "2021-07-12T06:04:59Z", "not_found")
# 301 s after the batch's clock: refused (`future`), so it neither moves the watermark nor
# revives Isère.
ISERE_FUTURE = ok("isere.le.departement", "2021-07-12T06:05:01Z", 500, 1000, TWIN_POSTS)


def line(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


TAMPERED = orjson.dumps({**EURE, "followers": 5_000_000})  # content no longer hashes to its id

METRICS_LINES: list[bytes] = [
    line(GERS_JUNE),  # 1
    line(GERS_JULY),  # 2
    line(PARIS_A),  # 3
    line(PARIS_B),  # 4
    b"",  # 5: blank, skipped but counted
    b"{not json",  # 6: invalid_json
    line(GERS_JULY),  # 7: a duplicate
    line(PARIS_GONE),  # 8
    line(ISERE),  # 9
    line(EURE),  # 10
    line(GERS_OLD),  # 11: out of order
    line(OCCITANIE_OLD_HANDLE),  # 12
    line(OCCITANIE),  # 13
    line(HAUTE_MARNE),  # 14
    line(ARIEGE),  # 15
    line(BEAUMONT),  # 16
    line(GERS_ERROR),  # 17
    line(WITNESS_A),  # 18
    line(WITNESS_B),  # 19
    line(AHEAD),  # 20
    line(ISERE_FUTURE),  # 21: future
    TAMPERED,  # 22: event_id_mismatch
]


def account(territory_id: str, handle: str | None) -> bytes:
    return orjson.dumps(
        build_account_record(
            territory_id=territory_id, handle=handle, changed_at="2021-06-01T00:00:00Z"
        )
    )


ACCOUNT_LINES: list[bytes] = [
    account("reg-76", "occitanie"),  # 1
    account("dep-52", None),  # 2
    account("com-99999", "nowhere"),  # 3: a well-formed id the registry does not know
    account("reg-76", "laregionoccitanie"),  # 4: the last record for reg-76 wins
    account("com-55039", "beaumont_verdunois"),  # 5
    b"[]",  # 6: not_an_object
]

# --- The standings, by hand -----------------------------------------------------------------
#
# Points: engagement 100*min(1, E*/0.05) with E* = (n*E + 0.03)/(n + 3), E = interactions /
# (n * followers); reach 100*clamp(log10(R/0.001)/log10(500)), R = followers/pop;
# activity 100*min(1, n/30); audience 100*clamp(log10(F/100)/4); ratio 100*clamp(log10(Q)/2),
# Q = followers/max(follows, 1). Score = (5 eng + 4 reach + 3 act + 2 aud + ratio)/15.
#
# GERS_JUNE, dep-32: n = 3 (g1, g2, g4), interactions 600, E = 600/30,000 = 0.02,
#   E* = (0.06 + 0.03)/6 = 0.015 -> 30; R = 10,000/192,645 = 0.0519090 -> log10(51.9090)
#   = 1.715243 / 2.698970 -> 63.551735; activity 3/30 -> 10; audience log10(100)/4 -> 50;
#   ratio log10(100)/2 -> 100. (150 + 254.206939 + 30 + 100 + 100)/15 = 42.280463 -> 42.2805
# GERS_JULY, dep-32: n = 4 (g1, g2, g4, g5; g3 is now before the window), interactions 840,
#   E = 840/48,000 = 0.0175, E* = (0.07 + 0.03)/7 = 0.0142857 -> 28.571429;
#   R = 12,000/192,645 = 0.0622908 -> 66.485493; activity 4/30 -> 13.333333;
#   audience log10(120)/4 -> 51.979531; ratio log10(120)/2 > 1 -> 100.
#   (142.857143 + 265.941971 + 40 + 103.959062 + 100)/15 = 43.517212 -> 43.5172
# PARIS_A, dep-75 and com-75056 (both pop 2,103,778): n = 6, interactions 12,000,
#   E = 12,000/3,000,000 = 0.004, E* = (0.024 + 0.03)/9 = 0.006 -> 12;
#   R = 500,000/2,103,778 = 0.237668 -> log10(237.668) = 2.375970 -> 88.032475;
#   activity 6/30 -> 20; audience log10(5000)/4 -> 92.474250; ratio log10(500)/2 > 1 -> 100.
#   (60 + 352.129900 + 60 + 184.948500 + 100)/15 = 50.471893 -> 50.4719
#   (PARIS_B would give 50.6286: E* 0.0058974 -> 11.794872, R 0.247174 -> 88.663580,
#   audience log10(5200)/4 -> 92.900084)
# ISERE, EURE (dep-38, dep-27): n = 2, interactions 40, E = 40/1,000 = 0.04,
#   E* = (0.08 + 0.03)/5 = 0.022 -> 44; R = 500/1,298,990 and 500/602,714, both < 0.001 -> 0;
#   activity 2/30 -> 6.666667; audience log10(5)/4 -> 17.474250; ratio log10(0.5) < 0 -> 0.
#   (220 + 0 + 20 + 34.948500 + 0)/15 = 18.329900 -> 18.3299 (a tie: dep-27 before dep-38)
# OCCITANIE, reg-76: n = 3, interactions 40 (hidden likes: comments only) + 3,100 + 1,960
#   = 5,100, E = 5,100/600,000 = 0.0085, E* = (0.0255 + 0.03)/6 = 0.00925 -> 18.5;
#   R = 200,000/6,124,653 = 0.0326549 -> log10(32.6549) = 1.513950 -> 56.093566;
#   activity 3/30 -> 10; audience log10(2000)/4 -> 82.525750; ratio log10(100)/2 -> 100.
#   (92.5 + 224.374262 + 30 + 165.051500 + 100)/15 = 40.795051 -> 40.7951
# ARIEGE, dep-09: 0 followers: engagement, reach, audience and ratio 0; activity 6/30 -> 20.
#   (3 * 20)/15 = 4.0
# BEAUMONT, com-55039 (pop 0): n = 1, E = 4/200 = 0.02, E* = (0.02 + 0.03)/4 = 0.0125 -> 25;
#   reach null -> 0; activity 1/30 -> 3.333333; audience log10(2)/4 -> 7.525750;
#   ratio log10(0.5) < 0 -> 0. (125 + 0 + 10 + 15.051500 + 0)/15 = 10.003433 -> 10.0034

EXPECTED_CURRENT = {
    "regions": [{"rank": 1, "id": "reg-76", "score": 40.7951}],
    "departements": [
        {"rank": 1, "id": "dep-75", "score": 50.4719},
        {"rank": 2, "id": "dep-32", "score": 43.5172},
        {"rank": 3, "id": "dep-27", "score": 18.3299},
        {"rank": 4, "id": "dep-09", "score": 4.0},
    ],
    "grandes-villes": [{"rank": 1, "id": "com-75056", "score": 50.4719}],
    "petites-villes": [{"rank": 1, "id": "com-55039", "score": 10.0034}],
}
EXPECTED_EDITIONS = {
    "2021-06": {
        "departements": [
            {"rank": 1, "id": "dep-32", "score": 42.2805},
            {"rank": 2, "id": "dep-27", "score": 18.3299},
            {"rank": 3, "id": "dep-38", "score": 18.3299},
        ],
    },
    "2021-07": {
        "regions": [{"rank": 1, "id": "reg-76", "score": 40.7951}],
        "departements": [
            {"rank": 1, "id": "dep-75", "score": 50.4719},
            {"rank": 2, "id": "dep-32", "score": 43.5172},
            {"rank": 3, "id": "dep-09", "score": 4.0},
        ],
        "grandes-villes": [{"rank": 1, "id": "com-75056", "score": 50.4719}],
        "petites-villes": [{"rank": 1, "id": "com-55039", "score": 10.0034}],
    },
}


def compute(metrics: list[bytes] = METRICS_LINES, accounts: list[bytes] = ACCOUNT_LINES):
    return compute_standings(metrics, account_lines=accounts, now_ms=NOW_MS)


def test_fixture_is_what_its_comments_say() -> None:
    # Preconditions of the hand computation, not results of the code under test.
    assert PARIS_A["event_id"] > PARIS_B["event_id"]
    assert GERS_OLD["observed_at"] < GERS_JUNE["observed_at"] < GERS_JULY["observed_at"]
    assert OCCITANIE["recent_posts"][0]["likes_hidden"] is True


def test_current_standings_match_the_hand_computation() -> None:
    result = compute()
    # The 3rd newest account: Gers's error (with the two witnesses), not the account ahead
    # of the others, nor the refused future one.
    assert result.watermark == "2021-07-12T00:00:00Z"
    assert result.current == EXPECTED_CURRENT
    assert list(result.current) == ["regions", "departements", "grandes-villes", "petites-villes"]


def test_edition_months_match_the_hand_computation() -> None:
    result = compute()
    assert result.editions == EXPECTED_EDITIONS
    assert list(result.editions) == ["2021-06", "2021-07"]


def test_invalid_lines_are_reported_with_their_line_numbers() -> None:
    result = compute()
    assert [(number, reason) for number, reason, _ in result.rejected] == [
        (6, "invalid_json"),
        (21, "future"),
        (22, "event_id_mismatch"),
    ]
    assert "2021-07-12T06:05:01Z is 301 s after the record timestamp" in result.rejected[1][2]
    assert [(number, reason) for number, reason, _ in result.rejected_accounts] == [
        (3, "unknown_territory"),
        (6, "not_an_object"),
    ]


def test_log_order_duplicates_and_late_events_do_not_change_the_standings() -> None:
    shuffled = list(reversed([raw for raw in METRICS_LINES if raw]))
    result = compute(shuffled + shuffled)
    assert result.current == EXPECTED_CURRENT
    assert result.editions == EXPECTED_EDITIONS


def test_without_the_accounts_file_only_the_bundled_mapping_applies() -> None:
    result = compute(accounts=[])
    assert "regions" not in result.current  # reg-76 has no bundled account
    assert "petites-villes" not in result.current
    # dep-52 keeps its bundled handle: Haute-Marne's snapshot counts now. By hand (pop
    # 168,331): n = 1, E = 500/50,000 = 0.01, E* = (0.01 + 0.03)/4 = 0.01 -> 20;
    # R = 50,000/168,331 = 0.297034 -> log10(297.034) = 2.472806 -> 91.620355; activity 1/30
    # -> 3.333333; audience log10(500)/4 -> 67.474250; ratio log10(500)/2 > 1 -> 100.
    # (100 + 366.481420 + 10 + 134.948500 + 100)/15 = 47.428661 -> 47.4287
    assert result.current["departements"] == [
        {"rank": 1, "id": "dep-75", "score": 50.4719},
        {"rank": 2, "id": "dep-52", "score": 47.4287},
        {"rank": 3, "id": "dep-32", "score": 43.5172},
        {"rank": 4, "id": "dep-27", "score": 18.3299},
        {"rank": 5, "id": "dep-09", "score": 4.0},
    ]


def test_a_handle_change_rederives_the_territory_from_the_new_account() -> None:
    # reg-76 back on `occitanie`: its (only) snapshot is scored instead. By hand: n = 2,
    # E = 3,000/200,000 = 0.015, E* = (0.03 + 0.03)/5 = 0.012 -> 24; R = 100,000/6,124,653
    # -> log10(16.3275)/log10(500) -> 44.940052; activity 2/30 -> 6.666667; audience
    # log10(1000)/4 -> 75; ratio log10(10,000)/2 -> 100.
    # (120 + 179.760206 + 20 + 150 + 100)/15 = 37.984014 -> 37.984
    result = compute(accounts=[*ACCOUNT_LINES, account("reg-76", "occitanie")])
    assert result.current["regions"] == [{"rank": 1, "id": "reg-76", "score": 37.984}]
    assert result.editions["2021-07"]["regions"] == [{"rank": 1, "id": "reg-76", "score": 37.984}]


def test_not_found_and_error_only_move_the_watermark() -> None:
    # Newest per account: Gers 07-12, témoin A 07-12, Paris 07-08: the 3rd is Paris's.
    result = compute([line(PARIS_GONE), line(GERS_ERROR), line(WITNESS_A)])
    assert result.watermark == "2021-07-08T00:00:00Z"
    assert result.current == {}
    assert result.editions == {}


def test_fewer_than_three_accounts_give_no_watermark_and_nobody_is_inactive() -> None:
    # Isère is 30 days and a second older than Gers's error: inactive under a watermark of
    # 2021-07-12, but two accounts are not enough to have one.
    result = compute([line(ISERE), line(GERS_ERROR), line(GERS_OLD)])
    assert result.watermark is None
    assert result.current == {
        "departements": [
            {"rank": 1, "id": "dep-32", "score": 51.8566},
            {"rank": 2, "id": "dep-38", "score": 18.3299},
        ]
    }


def test_one_account_far_ahead_moves_time_for_nobody() -> None:
    # Two accounts a year ahead of everyone (the batch's clock is 2022 here, so they are
    # valid) leave the watermark at the 3rd newest, Gers's error and the witnesses' time.
    far = [
        not_ok("horloge_a", "2022-07-01T00:00:00Z", "not_found"),
        not_ok("horloge_b", "2022-07-02T00:00:00Z", "error"),
    ]
    lines = [raw for raw in METRICS_LINES[:19] if raw] + [line(e) for e in far]  # not AHEAD
    later = compute_standings(lines, account_lines=ACCOUNT_LINES, now_ms=NOW_MS + 366 * DAY_MS)
    assert later.watermark == "2021-07-12T00:00:00Z"
    assert later.current == EXPECTED_CURRENT


def test_an_empty_log_has_no_watermark_and_no_standings() -> None:
    assert compute([], []) == ReferenceResult(current={}, editions={}, watermark=None, rejected=[])


# --- `observatoire replay FILE --batch` --------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("replay")(replay_command)

    @app.callback()
    def _group() -> None:
        """Make `replay` a subcommand, as under `observatoire`."""

    return app


def test_batch_cli_prints_the_standings_and_reports_bad_lines(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    # Lines 21 and 22 are kept out: the CLI's clock is now, so nothing of 2021 is in the future.
    metrics.write_bytes(b"\n".join(METRICS_LINES[:20]) + b"\n")
    accounts = tmp_path / "accounts.jsonl"
    accounts.write_bytes(b"\n".join(ACCOUNT_LINES) + b"\n")
    result = CliRunner().invoke(
        _cli(), ["replay", str(metrics), "--accounts", str(accounts), "--batch"]
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == {
        "current": EXPECTED_CURRENT,
        "editions": EXPECTED_EDITIONS,
    }
    problems = result.stderr.splitlines()
    assert problems[:2] == [
        f"skipped {accounts}:3: unknown_territory: no territory com-99999 in the registry",
        f"skipped {accounts}:6: not_an_object: top-level JSON array, not an object",
    ]
    assert problems[2].startswith(f"skipped {metrics}:6: invalid_json: ")
    assert problems[3:] == ["3 invalid line(s) skipped"]


def test_batch_cli_needs_no_broker_and_accepts_a_file_without_accounts(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_bytes(line(GERS_JULY) + b"\n")
    # No broker runs in unit tests: produce mode would fail on verify_topics.
    result = CliRunner().invoke(_cli(), ["replay", str(metrics), "--batch"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == {
        "current": {"departements": [{"rank": 1, "id": "dep-32", "score": 43.5172}]},
        "editions": {"2021-07": {"departements": [{"rank": 1, "id": "dep-32", "score": 43.5172}]}},
    }
    assert result.stderr == ""


def test_batch_cli_exits_1_when_the_file_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_bytes(line(GERS_JULY) + b"\n")

    def unreadable(path: Path) -> Iterator[bytes]:
        # Permission bits do not stop root (the test may run as root): fail the read itself.
        raise PermissionError(13, "Permission denied", str(path))
        yield b""  # a generator, like the real one

    monkeypatch.setattr(replay_module, "_lines", unreadable)
    result = CliRunner().invoke(_cli(), ["replay", str(metrics), "--batch"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"error: cannot read {metrics}: Permission denied\n"
