"""The CSV source: the documented format, bad rows reported by line, stable event ids."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from services.collector.csv_source import COLUMNS, CsvFormatError, parse_csv
from services.common.events import MetricsSnapshot

NOW = datetime(2021, 7, 1, tzinfo=UTC)
HEADER = ",".join(COLUMNS)

GOOD = f"""{HEADER}
# Gers, end of June 2021
snapshot,@GersLeDepartement,2021-06-30T06:00:00Z,ok,17841400123456789,15000,300,1200,,,,
post,gersledepartement,,,,,,,17900000000000001,2021-06-29T17:02:00+0000,412,17
post,gersledepartement,,,,,,,17900000000000002,2021-06-20T08:00:00Z,0,9
post,gersledepartement,,,,,,,17900000000000003,2021-05-01T08:00:00Z,50,1
snapshot,gersledepartement,2021-05-15T06:00:00Z,ok,17841400123456789,14000,290,1100,,,,
snapshot,latenareze,2021-06-30T06:00:00Z,not_found,,,,,,,,
"""


def _parse(text: str):
    return parse_csv(io.StringIO(text, newline=""), now=NOW)


def test_snapshots_take_the_posts_of_their_window_newest_first():
    result = _parse(GOOD)
    assert result.problems == []
    assert (result.rows, result.snapshots, result.posts) == (6, 3, 3)
    june, may, dead = result.events
    assert june["handle"] == "gersledepartement" and june["source"] == "csv"
    assert [p["id"] for p in june["recent_posts"]] == ["17900000000000001", "17900000000000002"]
    assert june["recent_posts"][0]["published_at"] == "2021-06-29T17:02:00Z"
    assert june["recent_posts"][1]["likes_hidden"] is True
    assert [p["id"] for p in may["recent_posts"]] == ["17900000000000003"]
    assert dead["status"] == "not_found" and dead["followers"] is None
    for event in result.events:
        MetricsSnapshot.model_validate(event)


def test_the_same_file_gives_the_same_event_ids():
    first = [e["event_id"] for e in _parse(GOOD).events]
    assert first == [e["event_id"] for e in _parse(GOOD).events]
    changed = GOOD.replace("15000,300", "15001,300")
    assert next(e["event_id"] for e in _parse(changed).events) != first[0]


def test_a_post_pinned_to_a_snapshot_belongs_to_it_alone():
    text = (
        GOOD
        + "post,gersledepartement,2021-05-15T06:00:00Z,,,,,,17900000000000002,"
        + "2021-05-10T08:00:00Z,7,1\n"
    )
    june, may, _ = _parse(text).events
    assert [p["id"] for p in may["recent_posts"]] == ["17900000000000002", "17900000000000003"]
    assert may["recent_posts"][0]["likes"] == 7
    assert [p["id"] for p in june["recent_posts"]] == ["17900000000000001", "17900000000000002"]


BAD_ROWS = {
    "tweet,gers,2021-06-30T06:00:00Z,ok,,1,1,1,,,,": "neither snapshot nor post",
    "snapshot,gers le departement,2021-06-30T06:00:00Z,ok,,1,1,1,,,,": "contains a space",
    "snapshot,gers,2021-06-31T06:00:00Z,ok,,1,1,1,,,,": "not a real date",
    "snapshot,gers,30/06/2021,ok,,1,1,1,,,,": "is not a time",
    "snapshot,gers,2021-06-30T06:00:00Z,dead,,1,1,1,,,,": "status 'dead'",
    "snapshot,gers,2021-06-30T06:00:00Z,ok,,-1,1,1,,,,": "followers '-1'",
    "snapshot,gers,2021-06-30T06:00:00Z,ok,,1.5,1,1,,,,": "followers '1.5'",
    "snapshot,gers,2021-06-30T06:00:00Z,ok,,,1,1,,,,": "followers ''",
    "snapshot,gers,2021-06-30T06:00:00Z,not_found,,10,,,,,,": "must be empty",
    "snapshot,gers,2099-06-30T06:00:00Z,ok,,1,1,1,,,,": "in the future",
    "snapshot,gers,2021-06-30T06:00:00Z,ok,,1,1,1,1789,,,": "post_id must be empty",
    "post,gers,,,,,,,1789,2021-06-30T06:00:00Z,1,": "comments ''",
    "post,gers,,,,,,,bad id!,2021-06-30T06:00:00Z,1,1": "not a platform id",
    "post,gers,,ok,,,,,1789,2021-06-30T06:00:00Z,1,1": "status must be empty",
    "snapshot,gers,2021-06-30T06:00:00Z,ok,,1,1": "7 cells, the header has 12",
}


def test_bad_rows_are_reported_with_their_line_and_reason_and_good_ones_all_imported():
    lines = [HEADER]
    expected = {}
    for row, reason in BAD_ROWS.items():
        lines.append(
            "snapshot,good,2021-06-30T06:00:00Z,ok,,10,1,1,,,,".replace("good", f"g{len(lines)}")
        )
        lines.append(row)
        expected[len(lines)] = reason
    result = _parse("\n".join(lines) + "\n")
    assert [p.line for p in result.problems] == list(expected)
    for problem in result.problems:
        assert expected[problem.line] in problem.reason, (problem, expected[problem.line])
    assert len(result.events) == len(BAD_ROWS)  # every good row, none of the bad ones


def test_duplicates_are_reported_against_their_first_line():
    text = f"""{HEADER}
snapshot,gers,2021-06-30T06:00:00Z,ok,,1,1,1,,,,
snapshot,gers,2021-06-30T06:00:00Z,ok,,2,1,1,,,,
post,gers,,,,,,,1789,2021-06-29T06:00:00Z,1,1
post,gers,,,,,,,1789,2021-06-29T06:00:00Z,1,1
post,gers,2021-06-01T00:00:00Z,,,,,,1790,2021-05-29T06:00:00Z,1,1
"""
    result = _parse(text)
    assert [str(p) for p in result.problems] == [
        "line 3: a second snapshot of gers observed at 2021-06-30T06:00:00Z (first on line 2)",
        "line 5: post 1789 of gers is listed twice (first on line 4)",
        "line 6: no snapshot of gers observed at 2021-06-01T00:00:00Z in the file for this post",
    ]
    assert len(result.events) == 1


def test_a_file_without_the_columns_is_refused_as_a_whole():
    with pytest.raises(CsvFormatError, match="lacks"):
        _parse("handle,followers\ngers,1\n")
    with pytest.raises(CsvFormatError, match="no header"):
        _parse("# only a comment\n\n")


def test_columns_may_come_in_any_order_with_extra_ones():
    columns = ["note", *reversed(COLUMNS)]
    values = {"record": "snapshot", "handle": "gers", "observed_at": "2021-06-30T06:00:00Z"}
    values |= {"status": "ok", "followers": "5", "follows": "1", "media_count": "2"}
    row = ",".join(values.get(c, "") for c in columns)
    result = _parse(",".join(columns) + "\n" + row + "\n")
    assert result.problems == [] and result.events[0]["followers"] == 5
