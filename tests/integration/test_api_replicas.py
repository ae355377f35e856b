"""Several API processes on one Redis serve the same thing: two `observatoire service api`
replicas on two ports and one with `OBS_API_WORKERS=2` answer every read with the same body and
the same ETag, whichever process answers; one replica's ETag gets a 304 from another; and an
event stream read on one replica resumes on another with `Last-Event-ID`, missing nothing and
repeating nothing.

With two workers on one socket the kernel picks the worker: each request is made on a fresh
connection and the worker that accepted it is found from the connection's socket (/proc), until
both workers have answered every path.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from services.common.localstack import RedisServer, free_port
from services.common.settings import Settings
from tests.integration.test_api_story import Story, tell_story
from tests.integration.test_sse import Changes, ids_of, stream
from tests.services import ServiceProcess, service_env, wait_for

# Reads of every kind: live standings (filters, pages), a published and a provisional month,
# a month's status, a territory, rank changes, dead links, and a public page.
PATHS = [
    "/api/v1/categories",
    "/api/v1/standings/departements",
    "/api/v1/standings/departements?limit=2&offset=1",
    "/api/v1/standings/departements?region=76",
    "/api/v1/standings/departements?departement=32",
    "/api/v1/editions",
    "/api/v1/editions/2021-06",
    "/api/v1/editions/2021-06/departements",
    "/api/v1/editions/2021-06/departements?region=76&limit=1",
    "/api/v1/editions/2021-07/departements",
    "/api/v1/territories/dep-32",
    "/api/v1/territories/dep-09",
    "/api/v1/rank-changes?category=departements&after_seq=0",
    "/api/v1/rank-changes?category=departements&after_seq=1&limit=2",
    "/api/v1/dead-links",
    "/classements/departements",
]
# The standings, live or of a month, answer an ETag (docs/api.md).
ETAGGED = [
    "/api/v1/standings/departements",
    "/api/v1/standings/departements?limit=2&offset=1",
    "/api/v1/standings/departements?region=76",
    "/api/v1/editions/2021-06/departements",
    "/api/v1/editions/2021-07/departements",
]


@dataclass
class Answer:
    status: int
    body: bytes
    etag: str | None
    pid: int | None = None


@dataclass
class Replica:
    """One `observatoire service api` process (a uvicorn supervisor with `workers` > 1)."""

    process: ServiceProcess
    port: int
    workers: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> set[int]:
        """The processes that serve requests: the supervisor's worker children (not
        multiprocessing's resource tracker), or the process itself."""
        assert self.process.proc is not None
        pid = self.process.proc.pid
        if self.workers == 1:
            return {pid}
        children: set[int] = set()
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                        children.add(int(child))
        return children


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server's end of a loopback TCP connection (from /proc/net/tcp)."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote and fields[9] != "0":
            return fields[9]
    return None


def _owner(pids: set[int], inode: str) -> int | None:
    target = f"socket:[{inode}]"
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if fd.readlink().as_posix() == target:
                        return pid
    return None


def get(replica: Replica, path: str, headers: dict[str, str] | None = None) -> Answer:
    """GET on a fresh connection; says which worker process answered it."""
    conn = http.client.HTTPConnection("127.0.0.1", replica.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        answer = Answer(response.status, response.read(), response.getheader("ETag"))
        # The connection is kept alive: the server's end is still open, in the worker that
        # accepted it.
        assert conn.sock is not None
        inode = wait_for(
            lambda: _socket_inode(replica.port, conn.sock.getsockname()[1]),
            timeout=2,
            what=f"the server's end of the connection for {path}",
            interval=0.01,
        )
        answer.pid = _owner(replica.worker_pids(), inode)
        return answer
    finally:
        conn.close()


def from_every_worker(replica: Replica, path: str, rounds: int = 60) -> list[Answer]:
    """Answers to `path` on fresh connections, four at a time, until each worker of the replica
    has answered at least twice."""
    pids = replica.worker_pids()
    assert len(pids) == replica.workers, pids
    answers: list[Answer] = []
    with ThreadPoolExecutor(4) as pool:
        for _ in range(rounds):
            answers += pool.map(lambda _: get(replica, path), range(4))
            served = [answer.pid for answer in answers]
            if all(served.count(pid) >= 2 for pid in pids):
                return answers
    raise AssertionError(f"not every worker of {pids} answered {path}: {served}")


@pytest.fixture(scope="module")
def replica_settings(redis_server: RedisServer, tmp_path_factory) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/11",
        rate_limit_enabled=False,
        run_dir=tmp_path_factory.mktemp("replicas"),
    )


@pytest.fixture(scope="module")
def story(replica_settings: Settings) -> Story:
    return asyncio.run(tell_story(replica_settings.redis_url))


@pytest.fixture(scope="module")
def replicas(replica_settings: Settings, story: Story, tmp_path_factory) -> Iterator[dict]:
    """`a` and `b`: two single-process replicas; `pair`: one replica with two workers."""
    logs = tmp_path_factory.mktemp("replica-logs")
    started: dict[str, Replica] = {}
    try:
        for name, workers in (("a", 1), ("b", 1), ("pair", 2)):
            port = free_port()
            env = service_env(
                replica_settings.model_copy(update={"api_port": port}),
                OBS_RATE_LIMIT_ENABLED="false",
                OBS_API_WORKERS=str(workers),
            )
            process = ServiceProcess(["service", "api"], env, logs / f"api-{name}.log").start()
            started[name] = Replica(process, port, workers)
        for name, replica in started.items():
            wait_for(
                lambda replica=replica: (
                    httpx.get(replica.url + "/readyz").status_code == 200
                    and len(replica.worker_pids()) == replica.workers
                ),
                timeout=60,
                what=f"API {name} to be ready:\n{replica.process.log()[-2000:]}",
            )
        # Every worker of the pair ready too (each starts its own app).
        pair = started["pair"]
        wait_for(
            lambda: len({a.pid for a in from_every_worker(pair, "/readyz")}) == 2,
            timeout=60,
            what=f"both workers ready:\n{pair.process.log()[-2000:]}",
        )
        yield started
    finally:
        for replica in started.values():
            replica.process.terminate()


def test_every_replica_and_worker_answers_the_same_body_and_etag(replicas):
    a, b, pair = replicas["a"], replicas["b"], replicas["pair"]
    for path in PATHS:
        reference = get(a, path)
        assert reference.status == 200, (path, reference.body[:300])
        others = [get(b, path), *from_every_worker(pair, path)]
        for answer in others:
            assert answer.status == 200, (path, answer.body[:300])
            assert answer.body == reference.body, f"{path}: bodies differ between replicas"
            assert answer.etag == reference.etag, f"{path}: ETags differ between replicas"
        if path in ETAGGED:
            assert reference.etag is not None, f"{path} carries no ETag"


def test_an_etag_from_one_replica_is_a_304_on_another(replicas):
    a, b, pair = replicas["a"], replicas["b"], replicas["pair"]
    assert ETAGGED, "no ETagged path to check"
    for path in ETAGGED:
        etag = get(a, path).etag
        assert etag is not None, path
        again = get(b, path, {"If-None-Match": etag})
        assert again.status == 304 and again.body == b"" and again.etag == etag, path
        pids = set()
        for _ in range(60):
            answer = get(pair, path, {"If-None-Match": etag})
            assert answer.status == 304 and answer.etag == etag, path
            pids.add(answer.pid)
            if pids == pair.worker_pids():
                break
        assert pids == pair.worker_pids(), f"{path}: not every worker revalidated"
        stale = get(b, path, {"If-None-Match": '"0123456789abcdef01234567"'})
        assert stale.status == 200


def test_after_a_rank_change_every_replica_serves_the_new_list_alike(
    replicas, replica_settings, story
):
    a, b, pair = replicas["a"], replicas["b"], replicas["pair"]
    path = "/api/v1/standings/departements"
    before = get(a, path)
    # Every process has rendered (and remembered) the old list.
    assert get(b, path).etag == before.etag
    assert {answer.etag for answer in from_every_worker(pair, path)} == {before.etag}
    seq = Changes(replica_settings.redis_url).next()
    after = get(b, path)
    assert after.etag != before.etag
    assert orjson.loads(after.body)["rank_changes_seq"] == seq
    for answer in [get(a, path), *from_every_worker(pair, path)]:
        assert (answer.body, answer.etag) == (after.body, after.etag)
    assert get(pair, path, {"If-None-Match": before.etag or ""}).status == 200


@pytest.mark.parametrize("resume_on", ["b", "pair"])
def test_a_stream_resumes_on_another_replica_missing_nothing(
    replicas, replica_settings, story, resume_on
):
    a, other = replicas["a"], replicas[resume_on]
    changes = Changes(replica_settings.redis_url)
    changes.minute = {"b": 10, "pair": 30}[resume_on]  # a list flip each call, later each test
    first_live = changes.next()
    with stream(a.url, {"after_seq": str(first_live - 1)}) as first:
        first.wait_for(lambda r: len(r.events()) == 1, "the event after the cursor")
        second_live = changes.next()
        first.wait_for(lambda r: len(r.events()) == 2, "a live event on replica a")
        seen = first.events()
        last_id = seen[-1].id
    assert ids_of(seen) == [first_live, second_live]
    # Disconnected from a: three rank changes meanwhile, then the client goes to the other one.
    missed = [changes.next() for _ in range(3)]
    assert missed == [second_live + 1, second_live + 2, second_live + 3]
    with stream(other.url, **{"Last-Event-ID": str(last_id)}) as resumed:
        resumed.wait_for(lambda r: len(r.events()) == 3, "the events missed while away")
        after = changes.next()
        resumed.wait_for(lambda r: len(r.events()) == 4, "a live event after resuming")
        time.sleep(0.3)  # nothing more comes (no repeat)
        got = resumed.events()
    assert ids_of(got) == [*missed, after]
    assert ids_of(seen) + ids_of(got) == list(range(first_live, after + 1))
    assert [orjson.loads(m.data)["seq"] for m in got] == ids_of(got)
    recorded = httpx.get(
        other.url + "/api/v1/rank-changes",
        params={"category": "departements", "after_seq": last_id},
    ).json()
    assert [orjson.loads(m.data) for m in got] == recorded["events"]
