"""The rank-change stream (Server-Sent Events) on a real server and a real Redis: a client
that disconnects and resumes with `Last-Event-ID` misses nothing; a new client starts from
now and gets heartbeats; a cursor from another history gets a reset; and the API stops
within 10 s of SIGTERM with a stream open."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest

from services.api.options import ApiOptions
from services.common.localstack import RedisServer, free_port
from services.common.settings import Settings
from tests.integration.test_api_story import Story, live_api, push_rank_change, tell_story
from tests.services import ServiceProcess, service_env

STREAM = "/api/v1/rank-changes/stream"
OPTIONS = ApiOptions(sse_heartbeat_seconds=0.3, sse_poll_seconds=0.05, sse_retry_ms=500)


@dataclass
class Message:
    """One SSE message (a comment has only `comment`)."""

    event: str | None = None
    id: int | None = None
    data: bytes = b""
    comment: str | None = None
    retry: int | None = None


@dataclass
class StreamReader:
    """Reads an SSE response in a thread, collecting messages as they come."""

    response: httpx.Response
    messages: list[Message] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)

    def start(self) -> StreamReader:
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        current = Message()
        try:
            for line in self.response.iter_lines():
                if line == "":
                    if current != Message():
                        self.messages.append(current)
                    current = Message()
                elif line.startswith(":"):
                    self.messages.append(Message(comment=line[1:].strip()))
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "event":
                        current.event = value
                    elif name == "id":
                        current.id = int(value)
                    elif name == "data":
                        current.data += value.encode()
                    elif name == "retry":
                        current.retry = int(value)
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    def events(self, kind: str = "rank-change") -> list[Message]:
        return [m for m in list(self.messages) if m.event == kind]

    def wait_for(self, condition, what: str, timeout: float = 10.0):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self):
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; got {self.messages!r}")


@pytest.fixture(scope="module")
def stream_settings(redis_server: RedisServer, tmp_path_factory) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/9",
        rate_limit_enabled=False,
        run_dir=tmp_path_factory.mktemp("sse"),
    )


@pytest.fixture(scope="module")
def story(stream_settings: Settings) -> Story:
    return asyncio.run(tell_story(stream_settings.redis_url))


@pytest.fixture(scope="module")
def api(stream_settings: Settings, story: Story) -> Iterator[str]:
    with live_api(stream_settings, OPTIONS) as url:
        yield url


class Changes:
    """Rank changes made by later snapshots of Haute-Garonne, up and down in turn (one
    instance per module: each call must flip the list the previous one left)."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.minute = 0

    def next(self) -> int:
        self.minute += 1
        followers = 900_000 if self.minute % 2 else 1_000
        moment = f"2021-07-04T06:{self.minute:02d}:00Z"
        return asyncio.run(push_rank_change(self.redis_url, "dep-31", followers, moment))


@pytest.fixture(scope="module")
def changes(stream_settings: Settings, story: Story) -> Changes:
    return Changes(stream_settings.redis_url)


@contextlib.contextmanager
def stream(url: str, params: dict | None = None, **headers: str) -> Iterator[StreamReader]:
    """An open stream of the départements' rank changes, read in a thread."""
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=30)) as client,
        client.stream(
            "GET",
            url + STREAM,
            params={"category": "departements", **(params or {})},
            headers=headers,
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield StreamReader(response).start()


def ids_of(messages: list[Message]) -> list[int]:
    return [m.id for m in messages if m.id is not None]


def test_a_client_that_resumes_with_last_event_id_misses_nothing(api, story, changes):
    first_seq = story.rank_change_seqs["departements"]
    with stream(api, {"after_seq": 0}) as first:
        first.wait_for(lambda r: len(r.events()) == first_seq, "the recorded events")
        assert first.messages[0].retry == OPTIONS.sse_retry_ms
        seen = first.events()
        assert ids_of(seen) == list(range(1, first_seq + 1))
        for message in seen:
            event = orjson.loads(message.data)
            assert event["seq"] == message.id and event["category"] == "departements"
        live = changes.next()
        assert live == first_seq + 1
        first.wait_for(lambda r: len(r.events()) == live, "a live event")
        last_id = first.events()[-1].id
    # Disconnected: three more changes happen meanwhile.
    missed = [changes.next() for _ in range(3)]
    assert missed == [live + 1, live + 2, live + 3]
    with stream(api, {"after_seq": 0}, **{"Last-Event-ID": str(last_id)}) as resumed:
        resumed.wait_for(lambda r: len(r.events()) == 3, "the events missed while away")
        after = changes.next()
        resumed.wait_for(lambda r: len(r.events()) == 4, "a live event after resuming")
        got = ids_of(first.events()) + ids_of(resumed.events())
    assert got == list(range(1, after + 1))  # every seq once, in order: nothing lost


def test_a_new_client_starts_from_now_and_gets_heartbeats(api, changes):
    with stream(api) as reader:
        reader.wait_for(
            lambda r: sum(1 for m in r.messages if m.comment == "heartbeat") >= 2,
            "two heartbeats",
        )
        assert reader.events() == []  # nothing from the past
        seq = changes.next()
        reader.wait_for(lambda r: len(r.events()) == 1, "the new event")
        assert reader.events()[0].id == seq


def test_a_stream_outlives_the_request_deadline_while_its_client_reads(stream_settings, story):
    deadline = 0.5
    guarded = stream_settings.model_copy(update={"api_request_timeout_seconds": deadline})
    with live_api(guarded, OPTIONS) as url, stream(url) as reader:
        reader.wait_for(
            lambda r: sum(1 for m in r.messages if m.comment == "heartbeat") >= 5,
            "five heartbeats, three times the request deadline",
        )
        assert not reader.ended.is_set()


def test_a_cursor_from_another_history_gets_a_reset(api):
    with stream(api, **{"Last-Event-ID": "99999"}) as reader:
        reader.wait_for(lambda r: len(r.events("reset")) == 1, "a reset notice")
        reset = reader.events("reset")[0]
        notice = orjson.loads(reset.data)
        assert notice["last_event_id"] == 99999 and reset.id == notice["last_seq"]


def test_bad_stream_requests_get_json_errors(api):
    with httpx.Client() as client:
        bad = client.get(
            api + STREAM, params={"category": "departements"}, headers={"Last-Event-ID": "x"}
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"
        unknown = client.get(api + STREAM, params={"category": "cantons"})
        assert unknown.status_code == 404
        assert client.get(api + STREAM).status_code == 422


def test_streams_per_client_are_bounded(stream_settings, story):
    options = ApiOptions(sse_heartbeat_seconds=0.3, sse_max_streams_per_client=1)
    with live_api(stream_settings, options) as url, stream(url):
        refused = httpx.get(url + STREAM, params={"category": "departements"})
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_streams"


def test_the_api_stops_within_10_seconds_of_sigterm_with_a_stream_open(
    stream_settings, story, tmp_path
):
    settings = stream_settings.model_copy(update={"api_port": free_port()})
    env = service_env(settings, OBS_RATE_LIMIT_ENABLED="false")
    api = ServiceProcess(["service", "api"], env, tmp_path / "api.log").start()
    url = f"http://127.0.0.1:{settings.api_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, api.log()[-2000:]
            time.sleep(0.1)
        with stream(url, {"after_seq": 0}) as reader:
            reader.wait_for(lambda r: len(r.events()) >= 1, "the stream to flow")
            took = api.terminate(timeout=10)
            assert reader.ended.wait(5), "the stream did not end with the server"
        assert took < 10, took
        assert "stopped cleanly" in api.log(), api.log()[-2000:]
    finally:
        api.kill()
