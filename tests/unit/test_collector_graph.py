"""Graph API answers: classification, exact timestamps, hidden likes, paging, usage headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.collector.budget import Usage, pacing_interval, parse_usage_headers
from services.collector.graph import (
    RETRIED,
    MalformedBody,
    Outcome,
    classify,
    fields_expression,
    parse_graph_time,
    parse_page,
)


def _error(code: int, subcode: int | None = None, **extra: object) -> bytes:
    error: dict[str, object] = {"message": "m", "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    return json.dumps({"error": error | extra}).encode()


PROFILE = {
    "business_discovery": {
        "id": "17841400123456789",
        "username": "gersledepartement",
        "followers_count": 15000,
        "follows_count": 300,
        "media_count": 1200,
        "media": {
            "data": [
                {
                    "id": "17890000000000001",
                    "timestamp": "2021-06-29T17:02:00+0000",
                    "like_count": 412,
                    "comments_count": 17,
                },
                {
                    "id": "17890000000000002",
                    "timestamp": "2021-06-28T08:00:59+0000",
                    "like_count": 0,
                    "comments_count": 9,
                },
            ],
            "paging": {
                "cursors": {"before": "QVFIUjRt", "after": "QVFIUmlK"},
                "next": "https://graph.facebook.com/v21.0/1?fields=…",
            },
        },
    },
    "id": "17841400000000001",
}


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (400, _error(110, 2207013), Outcome.NOT_FOUND),
        (400, _error(4), Outcome.THROTTLED),
        (403, _error(17), Outcome.THROTTLED),
        (400, _error(32), Outcome.THROTTLED),
        (400, _error(613), Outcome.THROTTLED),
        (429, b"", Outcome.HTTP_429),
        (429, _error(80002), Outcome.HTTP_429),
        (500, _error(1), Outcome.SERVER_ERROR),
        (503, b"<html>Service Unavailable</html>", Outcome.SERVER_ERROR),
        (502, b"", Outcome.SERVER_ERROR),
        (200, b'{"business_discovery": {"id": 1,,}', Outcome.MALFORMED),
        (200, b'{"business_discovery": {"id": "1", "followers_co', Outcome.MALFORMED),
        (200, b"[]", Outcome.MALFORMED),
        (200, b'{"business_discovery": {"id": "1", "followers_count": "many"}}', Outcome.MALFORMED),
        (401, _error(190), Outcome.INVALID_TOKEN),
        (400, _error(190, 463), Outcome.INVALID_TOKEN),
        (403, _error(10), Outcome.OTHER_ERROR),
        (400, _error(100), Outcome.OTHER_ERROR),
        (400, _error(2, is_transient=True), Outcome.SERVER_ERROR),
        (404, b"{}", Outcome.OTHER_ERROR),
    ],
)
def test_classification_follows_the_documented_table(status, body, outcome):
    assert classify(status, body).outcome is outcome


@pytest.mark.parametrize(
    "body",
    [
        _error(110),  # code without the subcode: ambiguous, not evidence of a dead account
        _error(100, 2207013),
        _error(110, 33),
    ],
)
def test_only_code_110_with_subcode_2207013_means_not_found(body):
    assert classify(400, body).outcome is not Outcome.NOT_FOUND


def test_transient_faults_are_retried_and_not_found_is_not():
    assert {
        Outcome.THROTTLED,
        Outcome.HTTP_429,
        Outcome.SERVER_ERROR,
        Outcome.TIMEOUT,
        Outcome.TRANSPORT_ERROR,
        Outcome.MALFORMED,
    } == RETRIED
    assert Outcome.NOT_FOUND not in RETRIED and Outcome.INVALID_TOKEN not in RETRIED


def test_an_ok_answer_is_parsed_with_exact_times_and_hidden_likes():
    result = classify(200, json.dumps(PROFILE).encode())
    assert result.outcome is Outcome.OK and result.page is not None
    page = result.page
    assert (page.account_id, page.followers, page.follows, page.media_count) == (
        "17841400123456789",
        15000,
        300,
        1200,
    )
    assert [p.published_at for p in page.posts] == [
        datetime(2021, 6, 29, 17, 2, 0, tzinfo=UTC),
        datetime(2021, 6, 28, 8, 0, 59, tzinfo=UTC),
    ]
    assert page.posts[1].likes == 0 and page.posts[1].comments == 9
    assert page.after == "QVFIUmlK"


def test_the_last_page_has_no_cursor_even_when_cursors_are_given():
    document = json.loads(json.dumps(PROFILE))
    del document["business_discovery"]["media"]["paging"]["next"]
    assert parse_page(document).after is None


def test_an_account_without_posts_is_ok():
    document = json.loads(json.dumps(PROFILE))
    del document["business_discovery"]["media"]
    page = parse_page(document)
    assert page.posts == () and page.after is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-06-29T17:02:00+0000", datetime(2021, 6, 29, 17, 2, 0, tzinfo=UTC)),
        ("2021-06-29T19:02:00+0200", datetime(2021, 6, 29, 17, 2, 0, tzinfo=UTC)),
        ("2021-06-29T17:02:00Z", datetime(2021, 6, 29, 17, 2, 0, tzinfo=UTC)),
        ("2021-06-29T17:02:00+00:00", datetime(2021, 6, 29, 17, 2, 0, tzinfo=UTC)),
        ("2020-12-31T23:30:00-0100", datetime(2021, 1, 1, 0, 30, 0, tzinfo=UTC)),
    ],
)
def test_graph_timestamps_are_parsed_exactly(text, expected):
    assert parse_graph_time(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2021-06-29 17:02:00+0000",
        "2021-06-29T17:02:00.123+0000",
        "2021-06-29T17:02:00",
        "2021-02-30T17:02:00+0000",
        "1624986120",
        None,
    ],
)
def test_other_timestamps_are_malformed(text):
    with pytest.raises(MalformedBody):
        parse_graph_time(text)


def test_fields_ask_for_a_profile_and_one_page_of_media():
    assert fields_expression("gers", 50, None) == (
        "business_discovery.username(gers){id,username,followers_count,follows_count,"
        "media_count,media.limit(50){id,timestamp,like_count,comments_count}}"
    )
    assert "media.after(QVFI).limit(50){" in fields_expression("gers", 50, "QVFI")


def test_usage_headers_give_the_highest_percentage_and_the_wait():
    headers = {
        "x-app-usage": '{"call_count":28,"total_time":25,"total_cputime":25}',
        "X-Business-Use-Case-Usage": json.dumps(
            {
                "1784": [
                    {
                        "type": "instagram",
                        "call_count": 91,
                        "total_cputime": 10,
                        "total_time": 12,
                        "estimated_time_to_regain_access": 3,
                    }
                ]
            }
        ),
    }
    assert parse_usage_headers(headers) == Usage(91.0, 180.0)
    assert parse_usage_headers({"X-App-Usage": '{"call_count": 12}'}) == Usage(12.0, None)
    assert parse_usage_headers({}) is None
    assert parse_usage_headers({"X-App-Usage": "not json"}) is None
    assert parse_usage_headers({"X-App-Usage": '{"call_count": true}'}) is None


@pytest.mark.parametrize(
    ("usage", "interval"),
    [(0, 0.0), (74.9, 0.0), (75, 18.0), (89.9, 18.0), (90, 180.0), (95, 360.0), (99.9, 3600.0)],
)
def test_pacing_slows_down_as_the_platform_usage_grows(usage, interval):
    assert pacing_interval(usage, 200, 3600) == pytest.approx(interval)
