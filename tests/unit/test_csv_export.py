"""The CSV exports (services/api/csv_export.py): RFC 4180 text (header row, CRLF, quoting only
where needed, quotes doubled), UTF-8 accents, exact floats, the columns in the documented
order, and which representation a request gets from `format` and `Accept`."""

from __future__ import annotations

import csv
import io
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.api.csv_export import (
    EDITION,
    EDITION_COLUMNS,
    HISTORY,
    HISTORY_COLUMNS,
    STANDINGS,
    STANDINGS_COLUMNS,
    Column,
    choose_format,
    history_filename,
    standings_filename,
    to_csv,
)
from services.api.errors import ApiError

NAME = Column("name", ("name",), "texte", "Nom", "Gers")
SCORE = Column("score", ("score",), "décimal", "Score", "63.0373")
POINTS = Column("reach_points", ("indicators", "reach", "points"), "décimal", "Points", "1")


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def item(**fields) -> dict:
    """A standings item as the API serves it (the worked example's figures)."""
    base = {
        "rank": 1,
        "national_rank": 3,
        "id": "dep-32",
        "code": "32",
        "name": "Gers",
        "score": 63.0373,
        "handle": "gersledepartement",
        "simulated": False,
        "link_status": "ok",
        "observed_at": "2021-06-30T06:00:00Z",
        "movement": -2,
        "likes_hidden": False,
        "indicators": {
            "engagement": {"value": 0.03, "points": 54.78260869565217},
            "reach": {"value": 0.075, "points": 69.47321609278089},
            "activity": {"value": 0.6666666666666666, "posts": 20, "points": 66.66666666666666},
            "audience": {"value": 15000, "points": 54.402281476392034},
            "ratio": {"value": 50.0, "points": 84.94850021680094},
        },
    }
    return base | fields


def test_a_name_with_a_comma_and_quotes_is_quoted_and_its_quotes_doubled():
    text = to_csv([NAME, SCORE], [{"name": 'Saint-Denis, "la ville"', "score": 1.5}])
    assert text == 'name,score\r\n"Saint-Denis, ""la ville""",1.5\r\n'
    assert parse(text)[1] == ['Saint-Denis, "la ville"', "1.5"]


def test_only_fields_that_need_it_are_quoted_and_lines_end_with_crlf():
    text = to_csv([NAME, SCORE], [{"name": "Gers", "score": 2.0}, {"name": "a\nb", "score": 3}])
    assert text == 'name,score\r\nGers,2.0\r\n"a\nb",3\r\n'
    assert text.count("\r\n") == 3 and "\n" not in text.replace("\r\n", "").replace("a\nb", "")


def test_accents_stay_utf8_characters():
    text = to_csv([NAME], [{"name": "Méailles"}, {"name": "Île-de-France"}, {"name": "Œuilly"}])
    raw = text.encode()
    assert "Méailles".encode() in raw and "Île-de-France".encode() in raw
    assert [row[0] for row in parse(raw.decode("utf-8"))[1:]] == [
        "Méailles",
        "Île-de-France",
        "Œuilly",
    ]


FLAG = Column("ranked", ("ranked",), "booléen", "Classé ?", "true")


def test_null_is_an_empty_cell_booleans_are_words_and_missing_paths_are_empty():
    rows = [
        {"name": None, "ranked": True, "indicators": {"reach": {"points": 0}}},
        {"name": "", "ranked": False, "indicators": {}},
        {"indicators": None},
        {"name": 15000, "ranked": 1, "indicators": {"reach": None}},
    ]
    assert parse(to_csv([NAME, FLAG, POINTS], rows))[1:] == [
        ["", "true", "0"],
        ["", "false", ""],
        ["", "", ""],
        ["15000", "1", ""],
    ]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_cell_reads_back_as_the_same_float(value):
    ((text,),) = parse(to_csv([SCORE], [{"score": value}], header=False))
    assert float(text) == value
    assert math.copysign(1, float(text)) == math.copysign(1, value)


def test_the_header_row_only_when_asked():
    assert to_csv([NAME, SCORE], []) == "name,score\r\n"
    assert to_csv([NAME], [{"name": "Gers"}], header=False) == "Gers\r\n"


def test_standings_columns_are_flattened_in_the_documented_order():
    indicators = [
        f"{name}_{part}"
        for name in ("engagement", "reach", "activity", "audience", "ratio")
        for part in ("value", "points")
    ]
    lead = "rank national_rank id code name score handle link_status observed_at movement"
    assert [c.name for c in STANDINGS_COLUMNS] == [*lead.split(), *indicators, "activity_posts"]
    assert [c.name for c in EDITION_COLUMNS] == [
        *lead.split(),
        "streak",
        *indicators,
        "activity_posts",
    ]
    history = "date period observed_at score rank ranked followers posts"
    assert [c.name for c in HISTORY_COLUMNS] == history.split()


def test_every_column_is_in_the_dictionary():
    for column in (*EDITION_COLUMNS, *HISTORY_COLUMNS):
        assert column.kind and column.meaning and column.example, column.name
        assert column.meaning.endswith((".", "?")), column.name


def test_a_standings_body_gives_one_row_per_item_with_every_value():
    body = {
        "category": "departements",
        "edition": None,
        "as_of": "2021-07-03T06:00:00Z",
        "items": [item(), item(rank=2, id="dep-75", name="Paris", movement=None)],
    }
    header, first, second = parse(STANDINGS.render(body))
    row = dict(zip(header, first, strict=True))
    assert row["rank"] == "1" and row["national_rank"] == "3" and row["movement"] == "-2"
    assert row["score"] == "63.0373" and row["handle"] == "gersledepartement"
    assert row["engagement_points"] == "54.78260869565217"
    assert row["audience_value"] == "15000" and row["ratio_value"] == "50.0"
    assert row["activity_posts"] == "20"
    assert dict(zip(header, second, strict=True))["movement"] == ""


def test_an_edition_row_carries_its_streak():
    body = {"category": "departements", "edition": "2021-06", "items": [item(streak=3)]}
    header, row = parse(EDITION.render(body))
    assert dict(zip(header, row, strict=True))["streak"] == "3"


def test_a_history_body_gives_one_row_per_point():
    body = {
        "id": "dep-32",
        "as_of": "2021-07-03T06:00:00Z",
        "points": [
            {
                "date": "2021-06-30",
                "period": "day",
                "observed_at": "2021-06-30T06:00:00Z",
                "score": 63.0373,
                "rank": None,
                "ranked": False,
                "followers": 15000,
                "posts": 20,
            }
        ],
    }
    assert parse(HISTORY.render(body)) == [
        [c.name for c in HISTORY_COLUMNS],
        ["2021-06-30", "day", "2021-06-30T06:00:00Z", "63.0373", "", "false", "15000", "20"],
    ]


def test_file_names_say_category_and_edition_or_time():
    live = {"category": "departements", "edition": None, "as_of": "2021-07-03T06:00:00Z"}
    assert standings_filename(live, {}) == "observatoire-departements-direct-2021-07-03T060000Z.csv"
    assert (
        standings_filename(live | {"edition": "2021-06"}, {"region": "76"})
        == "observatoire-departements-2021-06-region-76.csv"
    )
    assert (
        history_filename({"id": "dep-32", "as_of": None}, {})
        == "observatoire-historique-dep-32-sans-date.csv"
    )


@pytest.mark.parametrize(
    "format_param,accept,expected",
    [
        (None, None, "json"),
        (None, "*/*", "json"),
        (None, "text/csv", "csv"),
        (None, "TEXT/CSV; charset=utf-8", "csv"),
        (None, "application/json, text/csv;q=0.5", "json"),
        (None, "application/json;q=0.5, text/csv", "csv"),
        (None, "text/csv, application/json", "json"),  # a tie: JSON
        (None, "text/csv;q=0, */*", "json"),
        (None, "text/csv;q=abc", "json"),
        (None, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "json"),
        ("csv", None, "csv"),
        ("csv", "application/json", "csv"),
        ("json", "text/csv", "json"),
    ],
)
def test_the_format_parameter_wins_then_the_accept_header(format_param, accept, expected):
    assert choose_format(format_param, accept) == expected


@pytest.mark.parametrize("value", ["xml", "CSV", "", "csv,json"])
def test_an_unknown_format_is_a_422(value):
    with pytest.raises(ApiError) as raised:
        choose_format(value, "text/csv")
    assert raised.value.status == 422 and raised.value.code == "invalid_parameter"
    assert "json or csv" in raised.value.message
