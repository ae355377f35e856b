"""A Redis with a password, for real: the local Redis requires it without showing it to `ps`,
the one client constructor authenticates (plain and TLS), and `observatoire rebuild` works
through it."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry
from typer.testing import CliRunner

from services.cli import _register, app
from services.common.kafka import create_topics
from services.common.localstack import RedisServer, TansuBroker, free_port
from services.common.settings import Settings, get_settings
from services.common.view.client import redis_client
from services.common.view.layout import LAYOUT_VERSION
from tests.services import service_env

_register()

PASSWORD = 'local "s3cr3t" \\ é'  # quotes, a backslash, a space, non-ASCII: the config escapes


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A local Redis started with a password (requirepass)."""
    logs = tmp_path_factory.mktemp("redis-auth")
    server = RedisServer(free_port(), logs / "redis.log", password=PASSWORD).start()
    yield server
    server.stop()


def _settings_for(server: RedisServer, **values: object) -> Settings:
    return Settings(_env_file=None, redis_url=server.url, **values)  # type: ignore[arg-type]


def _raw_client(server: RedisServer, **options: object) -> redis.Redis:
    """A client built by hand, RESP2 (the server's own NOAUTH), no retry with backoff."""
    return redis.Redis(
        host=server.host,
        port=server.port,
        protocol=2,
        retry=Retry(NoBackoff(), 0),
        **options,  # type: ignore[arg-type]
    )


def test_a_local_redis_with_a_password_refuses_a_client_without_it(locked_redis: RedisServer):
    anonymous = _raw_client(locked_redis)
    with pytest.raises(redis.AuthenticationError, match="Authentication required"):  # NOAUTH
        anonymous.ping()
    anonymous.close()
    wrong = _raw_client(locked_redis, password="not-the-password")
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()
    wrong.close()


def test_the_client_constructor_authenticates_sync_and_asyncio(locked_redis: RedisServer):
    settings = _settings_for(locked_redis, redis_password=PASSWORD)
    client = redis_client(settings, sync=True)
    assert client.set("obs:test:auth", "sync") and client.get("obs:test:auth") == b"sync"
    client.close()

    async def read() -> bytes | None:
        async_client = redis_client(settings)
        try:
            return await async_client.get("obs:test:auth")
        finally:
            await async_client.aclose()

    assert asyncio.run(read()) == b"sync"


def test_the_password_is_never_on_the_command_line(locked_redis: RedisServer):
    argv = Path(f"/proc/{locked_redis.pid}/cmdline").read_bytes().split(b"\0")
    assert PASSWORD.encode() not in b" ".join(argv)
    assert b"s3cr3t" not in b" ".join(argv)
    config = Path(argv[1].decode())
    assert config.name == "redis.conf"
    assert config.stat().st_mode & 0o777 == 0o600
    assert "s3cr3t" not in locked_redis.log_tail()


def test_a_username_makes_an_acl_user_and_turns_the_default_user_off(tmp_path: Path):
    server = RedisServer(free_port(), tmp_path / "redis.log", username="obs", password=PASSWORD)
    with server:
        with pytest.raises(redis.AuthenticationError):
            _raw_client(server, password=PASSWORD).ping()  # the default user is off
        settings = _settings_for(server, redis_username="obs", redis_password=PASSWORD)
        client = redis_client(settings, sync=True)
        assert client.acl_whoami() in ("obs", b"obs")
        client.close()
    assert "ACL user 'obs'" in server.auth_summary


def test_rebuild_authenticates_with_the_password(
    locked_redis: RedisServer, broker: TansuBroker, settings: Settings
):
    """`observatoire rebuild` against a password-protected Redis, the password in the env."""
    locked = settings.model_copy(
        update={"redis_url": locked_redis.url, "redis_password": SecretStr(PASSWORD)}
    )
    assert all(report.ok for report in create_topics(locked))
    env = service_env(locked)
    assert env["OBS_REDIS_PASSWORD"] == PASSWORD
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["rebuild", "--workers", "1"], env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "readers read generation 1" in result.output
    client = redis_client(locked, sync=True)
    assert client.get("obs:g1:{meta}:layout") == LAYOUT_VERSION.encode()
    client.close()


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (EC key: generated in milliseconds)."""
    cert, key = directory / "redis.crt", directory / "redis.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class TlsRedisServer(RedisServer):
    """The local Redis listening on TLS only (its port), for the rediss:// check."""

    def __init__(self, port: int, log_path: Path, cert: Path, key: Path, password: str) -> None:
        super().__init__(port, log_path, password=password)
        self.cert, self.key = cert, key

    @property
    def url(self) -> str:
        return f"rediss://{self.host}:{self.port}/0?ssl_ca_certs={self.cert}&ssl_cert_reqs=required"

    def command(self) -> list[str]:
        return [
            *super().command(),
            "--port",
            "0",
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(self.cert),
            "--tls-key-file",
            str(self.key),
            "--tls-ca-cert-file",
            str(self.cert),
            "--tls-auth-clients",
            "no",
        ]

    def probe(self) -> None:
        client = redis_client(_settings_for(self, redis_password=PASSWORD), sync=True)
        try:
            client.ping()
        finally:
            client.close()


def test_rediss_url_connects_over_tls_with_the_password(tmp_path: Path):
    cert, key = _self_signed_certificate(tmp_path)
    with TlsRedisServer(free_port(), tmp_path / "redis.log", cert, key, PASSWORD) as server:
        settings = _settings_for(server, redis_password=PASSWORD)
        assert settings.redis_url.startswith("rediss://")
        client = redis_client(settings, sync=True)
        assert client.set("obs:test:tls", "yes")
        client.close()

        async def read() -> bytes | None:
            async_client = redis_client(settings)
            try:
                return await async_client.get("obs:test:tls")
            finally:
                await async_client.aclose()

        assert asyncio.run(read()) == b"yes"
        plain = _raw_client(server, password=PASSWORD)
        with pytest.raises(redis.ConnectionError):  # the port speaks TLS only
            plain.ping()
        plain.close()
