"""The one place a Redis client is built: from Settings, synchronous or asyncio.

Connection security (AUTH, TLS) and Redis Cluster are added here and nowhere else.

With `redis_cluster` the client is redis-py's cluster client, `redis_url` its seed node. Every
script's keys are on one slot (tests/unit/test_view_scripts.py) and so are the keys of every
MULTI, so the view's code runs unchanged on it; what redis-py's asyncio cluster pipeline lacks
is the script loading its single-server pipeline does: `ViewCluster`'s pipeline runs a script
call answered NOSCRIPT again, once the scripts it carries are loaded on every primary (a
promoted replica or a fresh node starts with an empty script cache).

Every asyncio client built here counts its round trips to Redis (a command, or a pipeline
executed) in `obs_redis_round_trips_total{service}`, as the service its process runs
(`count_round_trips_as`, called by each service's metrics module; a process that names no
service, e.g. the command line, counts nothing). The synchronous clients (command line only)
are not counted.
"""

from __future__ import annotations

from typing import Any, Literal, cast, overload

import hiredis
import redis
import redis.asyncio
import redis.asyncio.client
import redis.asyncio.cluster
import redis.cluster
from prometheus_client import Counter
from redis.commands.core import AsyncScript
from redis.exceptions import DataError, NoScriptError, RedisError, WatchError

from services.common.metrics import REDIS_ROUND_TRIPS
from services.common.settings import Settings

NOSCRIPT_RELOADS = 3  # scripts flushed again between a load and the call: give up after this


class RoundTrips:
    """This process's counts of Redis round trips, and of failed ones, for its service."""

    __slots__ = ("failed", "sent")

    def __init__(self) -> None:
        self.sent: Any = None  # a child of obs_redis_round_trips_total once a service is named
        self.failed: Any = None  # a counter of failed round trips, if the service keeps one

    def count(self) -> None:
        if self.sent is not None:
            self.sent.inc()

    def failure(self, exc: BaseException) -> None:
        # NOSCRIPT is answered by loading the script (redis-py does, or ViewClusterPipeline);
        # WATCH conflicts are not failures of Redis.
        if self.failed is not None and not isinstance(exc, NoScriptError | WatchError):
            self.failed.inc()


ROUND_TRIPS = RoundTrips()


def count_round_trips_as(service: str, failures: Counter | None = None) -> Counter:
    """Count this process's Redis round trips as `service`'s from now on (and, with
    `failures`, the round trips that fail: connection refused or lost, timeout, error reply).
    Returns `obs_redis_round_trips_total`, for the service's metrics module to list."""
    ROUND_TRIPS.sent = REDIS_ROUND_TRIPS.labels(service)
    ROUND_TRIPS.failed = failures
    return REDIS_ROUND_TRIPS


@overload
def redis_client(
    settings: Settings,
    *,
    sync: Literal[False] = False,
    socket_timeout: float | None = None,
    health_check_interval: int = 0,
) -> redis.asyncio.Redis: ...


@overload
def redis_client(
    settings: Settings,
    *,
    sync: Literal[True],
    socket_timeout: float | None = None,
    health_check_interval: int = 0,
) -> redis.Redis: ...


def redis_client(
    settings: Settings,
    *,
    sync: bool = False,
    socket_timeout: float | None = None,
    health_check_interval: int = 0,
) -> redis.asyncio.Redis | redis.Redis:
    """A client of the derived view at `settings.redis_url` (asyncio unless `sync`).

    It authenticates with `redis_username` / `redis_password` when set; a `rediss://` URL
    connects over TLS, its `ssl_*` query parameters (e.g. `ssl_ca_certs`) read by redis-py.
    With `redis_cluster` it is a cluster client seeded by that URL (same credentials, TLS and
    timeouts on every node); it serves every command the view's code sends, hence the casts.
    """
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "health_check_interval": health_check_interval,
        **redis_credentials(settings),
    }
    if settings.redis_cluster:
        if sync:
            return cast(
                redis.Redis, redis.cluster.RedisCluster.from_url(settings.redis_url, **options)
            )
        return cast(redis.asyncio.Redis, ViewCluster.from_url(settings.redis_url, **options))
    if sync:
        return redis.Redis.from_url(settings.redis_url, **options)
    client = ViewRedis.from_url(settings.redis_url, **options)
    pool = client.connection_pool
    pool.connection_class = packed_by_hiredis(pool.connection_class)
    return client


class _HiredisPacking:
    """Commands packed by hiredis, in C, rather than by redis-py's asyncio connection in
    Python: the same bytes (redis-py's synchronous client does the same when hiredis is
    installed; tests/unit/test_view_client.py compares them), about five times faster per
    command. The scorer sends one or two script calls per snapshot."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            pass
        try:  # bytearray and memoryview, which hiredis does not take
            return [hiredis.pack_command(tuple(_as_bytes(arg) for arg in args))]
        except TypeError as error:
            raise DataError(str(error)) from error


def _as_bytes(arg: Any) -> Any:
    return bytes(arg) if isinstance(arg, bytearray | memoryview) else arg


_PACKED: dict[type, type] = {}


def packed_by_hiredis(
    connection_class: type[redis.asyncio.connection.AbstractConnection],
) -> type[redis.asyncio.connection.AbstractConnection]:
    """The connection class (TCP, TLS or Unix socket, as the URL chose) packing its commands
    with hiredis (one class each, made once)."""
    packed = _PACKED.get(connection_class)
    if packed is None:
        name = f"Packed{connection_class.__name__}"
        packed = _PACKED[connection_class] = type(name, (_HiredisPacking, connection_class), {})
    return packed


def redis_credentials(settings: Settings) -> dict[str, str]:
    """redis-py's `username` / `password` arguments from the settings' secrets (none if unset)."""
    credentials: dict[str, str] = {}
    if settings.redis_username is not None:
        credentials["username"] = settings.redis_username
    if settings.redis_password is not None:
        credentials["password"] = settings.redis_password.get_secret_value()
    return credentials


class ViewRedis(redis.asyncio.Redis):
    """redis-py's asyncio client, counting its round trips (ROUND_TRIPS)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        ROUND_TRIPS.count()
        try:
            return await super().execute_command(*args, **options)
        except (RedisError, OSError) as exc:
            ROUND_TRIPS.failure(exc)
            raise

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> ViewPipeline:
        return ViewPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class ViewPipeline(redis.asyncio.client.Pipeline):
    """redis-py's asyncio pipeline, counting one round trip per execution (plus the
    commands it sends at once: WATCH, and SCRIPT EXISTS / LOAD before its scripts run)."""

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        ROUND_TRIPS.count()
        try:
            return await super().immediate_execute_command(*args, **options)
        except (RedisError, OSError) as exc:
            ROUND_TRIPS.failure(exc)
            raise

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if not self.command_stack and not self.watching:  # sends nothing
            return await super().execute(raise_on_error)
        ROUND_TRIPS.count()
        try:
            return await super().execute(raise_on_error)
        except (RedisError, OSError) as exc:
            ROUND_TRIPS.failure(exc)
            raise


class ViewCluster(redis.asyncio.cluster.RedisCluster):
    """redis-py's asyncio cluster client whose pipelines survive NOSCRIPT; it counts its
    round trips (ROUND_TRIPS: a command counts one, whatever nodes it goes to)."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        ROUND_TRIPS.count()
        try:
            return await super().execute_command(*args, **kwargs)
        except (RedisError, OSError) as exc:
            ROUND_TRIPS.failure(exc)
            raise

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ViewClusterPipeline:
        if shard_hint:
            raise redis.cluster.RedisClusterException("shard_hint is deprecated in cluster mode")
        # redis-py declares `_event_dispatcher` abstract on its pipelines' base, which mypy
        # then reports for any ClusterPipeline: the client's dispatcher is the one used.
        return ViewClusterPipeline(self, transaction)  # type: ignore[abstract]


class ViewClusterPipeline(redis.asyncio.cluster.ClusterPipeline):
    """A cluster pipeline that keeps a copy of its queued commands and the scripts its EVALSHA
    calls run (`scripts`, as redis-py's single-server pipeline has).

    A call answered NOSCRIPT did not run: its scripts are loaded on every primary and that
    call alone is sent again (up to NOSCRIPT_RELOADS times), the other replies kept. So a
    reply is never the second run of a command. Transactions are not retried (none carries a
    script: rank_changes.py reads plain keys).
    """

    def __init__(
        self, client: redis.asyncio.cluster.RedisCluster, transaction: bool | None = None
    ) -> None:
        super().__init__(client, transaction)
        self.scripts: set[AsyncScript] = set()
        self._queued: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        self._queued.append((args, dict(kwargs)))
        return super().execute_command(*args, **kwargs)

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        scripts, queued = self.scripts, self._queued
        self.scripts, self._queued = set(), []  # as redis-py empties its queue
        if not scripts or self._transaction:
            return await self._sent(raise_on_error, allow_redirections)
        replies = await self._sent(False, allow_redirections)
        if len(replies) == len(queued):  # one reply per queued command (never otherwise)
            for _attempt in range(NOSCRIPT_RELOADS):
                again = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
                if not again:
                    break
                for script in scripts:
                    await self.cluster_client.script_load(script.script)  # every primary
                for i in again:
                    super().execute_command(*queued[i][0], **queued[i][1])
                retried = await self._sent(False, allow_redirections)
                for i, reply in zip(again, retried, strict=True):
                    replies[i] = reply
        if raise_on_error:
            for position, reply in enumerate(replies, start=1):
                if isinstance(reply, Exception):
                    reply.args = (
                        f"Command # {position} of pipeline caused error: "
                        f"{reply.args[0] if reply.args else reply!r}",
                        *reply.args[1:],
                    )
                    raise reply
        return replies

    async def _sent(self, raise_on_error: bool, allow_redirections: bool) -> list[Any]:
        """redis-py's execution of the queued commands, counted (ROUND_TRIPS)."""
        if not len(self):  # sends nothing
            return await super().execute(raise_on_error, allow_redirections)
        ROUND_TRIPS.count()
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except (RedisError, OSError) as exc:
            ROUND_TRIPS.failure(exc)
            raise
