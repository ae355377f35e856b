"""The one place a Redis client is built: from Settings, synchronous or asyncio.

Connection security (AUTH, TLS) and Redis Cluster are added here and nowhere else.
"""

from __future__ import annotations

from typing import Any, Literal, overload

import redis
import redis.asyncio

from services.common.settings import Settings


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
    """
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "health_check_interval": health_check_interval,
        **redis_credentials(settings),
    }
    if sync:
        return redis.Redis.from_url(settings.redis_url, **options)
    return redis.asyncio.Redis.from_url(settings.redis_url, **options)


def redis_credentials(settings: Settings) -> dict[str, str]:
    """redis-py's `username` / `password` arguments from the settings' secrets (none if unset)."""
    credentials: dict[str, str] = {}
    if settings.redis_username is not None:
        credentials["username"] = settings.redis_username
    if settings.redis_password is not None:
        credentials["password"] = settings.redis_password.get_secret_value()
    return credentials
