"""Redis Cluster (OBS_REDIS_CLUSTER): the local three-master cluster, the view's client on it
(scripts, pipelines, NOSCRIPT after a script cache flush, bulk deletes on every master), and
the golden log through the whole stack on a cluster, equal to `replay --batch`."""

from __future__ import annotations

import stat
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.common.clock import utcnow
from services.common.contracts import CATEGORIES, CATEGORY_IDS
from services.common.localstack import (
    ClusterNodeInfo,
    LocalRedisCluster,
    RedisServer,
    TansuBroker,
    free_port,
    port_is_open,
)
from services.common.settings import Settings
from services.common.view.client import redis_client
from services.common.view.scripts import Script
from services.common.view.wipe import unlink_keys
from tests.golden.check import assert_same_standings, batch_standings, produce_golden_log
from tests.golden.generate import generate
from tests.services import (
    ServiceProcess,
    cluster_settings,
    committed_offsets,
    fresh_stack,
    service_env,
    standings_from_redis,
    start_redis_cluster,
    wait_for,
)
from tests.signing import COMMAND_KEY

PASSWORD = "cluster-s3cr3t pass"  # a space: the config file quotes it
SLOTS = 16384


def _node(
    host: str, port: int, password: str | None = None, username: str | None = None
) -> redis.Redis:
    """A client of one node (no retry: a refusal shows at once)."""
    return redis.Redis(
        host=host,
        port=port,
        username=username,
        password=password,
        socket_timeout=2,
        retry=Retry(NoBackoff(), 0),
    )


# --- the launcher ------------------------------------------------------------------------------


def test_the_local_cluster_has_three_masters_sharing_every_slot(redis_cluster: LocalRedisCluster):
    nodes = redis_cluster.nodes()
    assert [node.role for node in nodes] == ["master"] * 3
    assert nodes[0].port == redis_cluster.port  # the seed: OBS_REDIS_URL's port
    assert len({node.port for node in nodes}) == 3 and all(node.pid for node in nodes)
    owned: dict[int, int] = {}
    for node in nodes:
        client = _node(node.host, node.port)
        try:
            info = client.cluster("INFO")
            assert info["cluster_state"] == "ok", info
            assert int(info["cluster_slots_assigned"]) == SLOTS
            assert int(info["cluster_known_nodes"]) == 3
            for start, end, master, *_replicas in client.execute_command("CLUSTER", "SLOTS"):
                owned[int(master[1])] = owned.get(int(master[1]), 0) + end - start + 1
        finally:
            client.close()
    # Every node sees the same table: each master owns about a third of the slots.
    assert sorted(owned) == sorted(node.port for node in nodes)
    assert sum(owned.values()) == 3 * SLOTS
    assert all(count // 3 >= SLOTS // 3 - 1 for count in owned.values()), owned


@pytest.mark.parametrize("username", [None, "observatoire"], ids=["requirepass", "acl-user"])
def test_a_cluster_with_a_password_requires_it_on_every_node_and_leaves_nothing(
    tmp_path: Path, username: str | None
):
    """Three masters and a replica each: every node refuses anonymous clients, replicates
    with the password (masterauth), never shows it on a command line, and stopping removes
    every process, port and file."""
    cluster = start_redis_cluster(
        tmp_path / "logs", replicas=1, username=username, password=PASSWORD
    )
    try:
        nodes = cluster.nodes()
        assert sorted(node.role for node in nodes) == ["master"] * 3 + ["replica"] * 3
        directory = cluster.directory
        assert directory is not None
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        for node in nodes:
            anonymous = _node(node.host, node.port)
            with pytest.raises(redis.AuthenticationError):
                anonymous.ping()
            anonymous.close()
            client = _node(node.host, node.port, PASSWORD, username)
            try:
                assert client.cluster("INFO")["cluster_state"] == "ok"
                assert client.config_get("masterauth")["masterauth"] == PASSWORD
                if username is None:
                    assert client.config_get("requirepass")["requirepass"] == PASSWORD
                else:
                    assert client.config_get("masteruser")["masteruser"] == username
                if node.role == "replica":  # it synchronised through the password
                    assert client.info("replication")["master_link_status"] == "up"
            finally:
                client.close()
            cmdline = Path(f"/proc/{node.pid}/cmdline").read_bytes()
            assert PASSWORD.encode() not in cmdline
            config = directory / str(node.port) / "redis.conf"
            assert stat.S_IMODE(config.stat().st_mode) == 0o600
        logs = [path.read_text(errors="replace") for path in (tmp_path / "logs").iterdir()]
        assert logs and not any(PASSWORD in text for text in logs)
        # The cluster client reaches every slot through one seed node.
        settings = Settings(
            _env_file=None,
            redis_url=cluster.url,
            redis_cluster=True,
            redis_username=username,
            redis_password=PASSWORD,
        )
        client = redis_client(settings, sync=True)
        try:
            for i in range(30):
                client.set(f"obs:test:{{{i}}}", i)
        finally:
            client.close()

        def held(role: str) -> int:
            return sum(_dbsize(n, PASSWORD, username) for n in nodes if n.role == role)

        assert held("master") == 30
        wait_for(lambda: held("replica") == 30, timeout=10, what="the replicas to catch up")
    finally:
        cluster.stop()
    assert not directory.exists()
    for node in nodes:
        assert not port_is_open(node.host, node.port), node
        assert not Path(f"/proc/{node.pid}").exists() or _zombie(node.pid), node


def _dbsize(node: ClusterNodeInfo, password: str | None = None, username: str | None = None) -> int:
    client = _node(node.host, node.port, password, username)
    try:
        return int(client.dbsize())
    finally:
        client.close()


def _matching(node: ClusterNodeInfo, pattern: str) -> int:
    """How many keys of one node match the pattern (SCAN of that node alone)."""
    client = _node(node.host, node.port)
    try:
        return sum(1 for _ in client.scan_iter(match=pattern, count=1000))
    finally:
        client.close()


def _zombie(pid: int | None) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


# --- the view's client on the cluster --------------------------------------------------------

# Not idempotent on purpose: a call run twice would show.
INCREMENT = Script(
    "test_increment",
    "-- KEYS[1]: a counter. Returns its new value.\nreturn redis.call('INCR', KEYS[1])",
    int,
)


@pytest.fixture(params=["cluster", "server"])
def view(request: pytest.FixtureRequest) -> Iterator[tuple[Settings, list[tuple[str, int]]]]:
    """Settings of the view on the session cluster or the session Redis, and every node."""
    if request.param == "cluster":
        cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
        settings = Settings(_env_file=None, redis_url=cluster.url, redis_cluster=True)
        yield settings, [(node.host, node.port) for node in cluster.primaries()]
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        yield Settings(_env_file=None, redis_url=server.url), [(server.host, server.port)]


def _flush_scripts(nodes: list[tuple[str, int]], sha: str) -> None:
    for host, port in nodes:
        client = _node(host, port)
        try:
            assert client.script_flush() is True
            assert client.script_exists(sha) == [False]
        finally:
            client.close()


def _noscript_errors(nodes: list[tuple[str, int]]) -> dict[int, int]:
    """NOSCRIPT replies each node has given so far (INFO errorstats)."""
    counts = {}
    for host, port in nodes:
        client = _node(host, port)
        try:
            counts[port] = int(
                client.info("errorstats").get("errorstat_NOSCRIPT", {}).get("count", 0)
            )
        finally:
            client.close()
    return counts


async def test_pipelined_script_calls_survive_a_script_flush_on_every_node(view):
    """Two pipelines of script calls (on keys of every node) with the script cache flushed on
    every node in between: the second pipeline's calls each run exactly once, as the first's."""
    settings, nodes = view
    client = redis_client(settings)
    increment = INCREMENT.bind(client)
    keys = [f"obs:test:{uuid.uuid4().hex[:8]}:{{{i}}}" for i in range(30)]
    marker = f"{keys[0]}:plain"

    async def pipelined() -> list[int]:
        async with client.pipeline(transaction=False) as pipe:
            for key in keys:
                await increment.queue(pipe, [key])
            pipe.incr(marker)  # a plain command in the same pipeline runs once too
            *replies, plain = await pipe.execute()
        assert plain == await client.incr(marker, 0)
        return [increment.decode(reply) for reply in replies]

    try:
        assert await pipelined() == [1] * len(keys)
        _flush_scripts(nodes, increment._run.sha)
        before = _noscript_errors(nodes)
        assert await pipelined() == [2] * len(keys)  # each call once: none ran twice
        assert int(await client.get(marker)) == 2
        after = _noscript_errors(nodes)
        if settings.redis_cluster:
            # The calls did meet NOSCRIPT on every master, and were sent again once loaded.
            assert all(after[port] > before[port] for port in after), (before, after)
        else:
            # One server: redis-py's pipeline checks (SCRIPT EXISTS) and loads before sending.
            assert after == before
        _flush_scripts(nodes, increment._run.sha)
        assert await increment([keys[0]]) == 3  # a direct call loads it again too
    finally:
        await client.delete(*keys, marker)
        await client.aclose()


async def test_unlink_keys_finds_and_deletes_keys_on_every_master(
    redis_cluster: LocalRedisCluster,
):
    settings = Settings(_env_file=None, redis_url=redis_cluster.url, redis_cluster=True)
    client = redis_client(settings)
    prefix = f"obs:test:{uuid.uuid4().hex[:8]}"
    try:
        for i in range(300):
            await client.set(f"{prefix}:{{{i}}}", i)
            await client.set(f"{prefix}:{{{i}}}:frozen", i)
        held = {node.port: _matching(node, f"{prefix}:*") for node in redis_cluster.nodes()}
        assert all(count > 100 for count in held.values()), held  # one node's SCAN: a third

        deleted = await unlink_keys(
            client, [f"{prefix}:*"], keys=["obs:test:absent"], keep_suffixes=(":frozen",)
        )
        assert deleted == 300
        left = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        assert len(left) == 300 and all(key.endswith(b":frozen") for key in left)
        assert await unlink_keys(client, [f"{prefix}:*"]) == 300
        assert [_matching(node, f"{prefix}:*") for node in redis_cluster.nodes()] == [0, 0, 0]
    finally:
        await client.aclose()


# --- the whole stack on the cluster ------------------------------------------------------------

N_EVENTS = 6_000  # enough for every category, the handle changes and four months


def _api_pages(settings: Settings, path: str) -> list[dict]:
    """Every item of a standings list of the API, page after page."""
    items: list[dict] = []
    while True:
        response = httpx.get(
            f"{settings.api_url}{path}", params={"limit": 500, "offset": len(items)}, timeout=10
        )
        assert response.status_code == 200, response.text
        page = response.json()["items"]
        items += page
        if len(page) < 500:
            return items


def _rows(items: list[dict]) -> list[dict]:
    return [{"rank": item["rank"], "id": item["id"], "score": item["score"]} for item in items]


def _last_rank_change_top(settings: Settings, category: str) -> list[str] | None:
    url = f"{settings.api_url}/api/v1/rank-changes"
    last = httpx.get(url, params={"category": category}, timeout=10).json()["last_seq"]
    if not last:
        return None
    feed = httpx.get(url, params={"category": category, "after_seq": last - 1}, timeout=10)
    return feed.json()["events"][-1]["top"]


@pytest.mark.slow
def test_the_golden_log_through_the_whole_stack_on_a_cluster_equals_batch(
    broker: TansuBroker, redis_cluster: LocalRedisCluster, tmp_path: Path
):
    """Kafka → scorer → Redis Cluster → publisher and API: the view, the API's lists (current
    and every month) and the publisher's last rank change of each category all agree with
    `replay --batch`, as does `observatoire rebuild`, and the view is spread over the three
    masters."""
    settings = cluster_settings(
        broker,
        redis_cluster,
        tmp_path / "run",
        api_port=free_port(),
        scorer_metrics_port=free_port(),
        publisher_metrics_port=free_port(),
        command_key=COMMAND_KEY,
    )
    fresh_stack(settings).close()  # topics, and an empty cluster
    log = generate(7, N_EVENTS, end=utcnow() - timedelta(minutes=10))
    env = service_env(settings, OBS_RATE_LIMIT_ENABLED="false")
    services = {
        name: ServiceProcess(["service", name], env, tmp_path / f"{name}.log").start()
        for name in ("scorer", "publisher", "api")
    }

    def logs() -> str:
        return "\n".join(f"--- {n}\n{p.log()[-1500:]}" for n, p in services.items())

    try:
        total = produce_golden_log(settings, log)
        expected = batch_standings(log, tmp_path)
        group = f"{settings.topic_prefix}observatoire-scorer"
        wait_for(
            lambda: committed_offsets(settings, group) >= total,
            timeout=180,
            what=f"the whole log scored:\n{logs()}",
        )
        # The last batch's writes precede its commit: the view is complete now.
        current, editions = standings_from_redis(settings)
        assert set(current) == set(CATEGORY_IDS)  # the log covers every category
        assert_same_standings(current, editions, expected)

        wait_for(
            lambda: httpx.get(f"{settings.api_url}/readyz").status_code == 200,
            timeout=30,
            what=f"the API ready:\n{logs()}",
        )
        api_current = {
            category: _rows(_api_pages(settings, f"/api/v1/standings/{category}"))
            for category in expected.current
        }
        api_editions = {
            month: {
                category: _rows(_api_pages(settings, f"/api/v1/editions/{month}/{category}"))
                for category in categories
            }
            for month, categories in expected.editions.items()
        }
        assert_same_standings(api_current, api_editions, expected)

        def published(info) -> list[str]:
            ranked = [row["id"] for row in expected.current.get(info.id, [])]
            return ranked if info.published_size is None else ranked[: info.published_size]

        for info in CATEGORIES:  # the publisher's last event is the list the API shows
            wait_for(
                lambda info=info: _last_rank_change_top(settings, info.id) == published(info),
                timeout=60,
                what=f"the publisher's last {info.id} rank change:\n{logs()}",
            )
    finally:
        for process in services.values():
            process.terminate()

    # `observatoire rebuild` on the cluster: the topics read again into a new generation of
    # the view, the old one found on every master and dropped.
    rebuild = ServiceProcess(["rebuild"], env, tmp_path / "rebuild.log").start()
    assert rebuild.wait(300) == 0, rebuild.log()[-3000:]
    current, editions = standings_from_redis(settings)
    assert_same_standings(current, editions, expected)

    held = {node.port: _dbsize(node) for node in redis_cluster.primaries()}
    print(f"view keys per master: {held}")
    assert len(held) == 3 and all(count > 0 for count in held.values()), held
    assert sum(held.values()) > 1000  # summaries buckets, views, months, link states…
