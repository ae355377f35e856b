"""The asyncio client's commands are packed by hiredis: the same bytes as redis-py's own
packer, and the same refusals (services/common/view/client.py)."""

from __future__ import annotations

import pytest
import redis.asyncio.connection
from hypothesis import given
from hypothesis import strategies as st
from redis.exceptions import DataError

from services.common.settings import Settings
from services.common.view.client import packed_by_hiredis, redis_client

ARGS = st.one_of(
    st.text(),
    st.binary(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.binary().map(bytearray),
    st.binary().map(memoryview),
)
NAMES = st.sampled_from(["EVALSHA", "SET", "CONFIG GET", b"HGET", b"SCRIPT LOAD"])


def _connections() -> tuple[redis.asyncio.Connection, redis.asyncio.Connection]:
    packed = packed_by_hiredis(redis.asyncio.Connection)
    return redis.asyncio.Connection(), packed()


@given(NAMES, st.lists(ARGS, max_size=12))
def test_packed_commands_are_redis_py_bytes(name: str | bytes, args: list[object]) -> None:
    python, packed = _connections()
    assert b"".join(packed.pack_command(name, *args)) == b"".join(python.pack_command(name, *args))


@given(st.lists(st.tuples(NAMES, st.lists(ARGS, max_size=6)), max_size=8))
def test_packed_pipelines_are_redis_py_bytes(commands: list[tuple[str, list[object]]]) -> None:
    python, packed = _connections()
    stack = [(name, *args) for name, args in commands]
    assert b"".join(packed.pack_commands(stack)) == b"".join(python.pack_commands(stack))


@pytest.mark.parametrize("value", [None, True, [1], {"a": 1}])
def test_packed_commands_refuse_what_redis_py_refuses(value: object) -> None:
    python, packed = _connections()
    with pytest.raises(DataError):
        python.pack_command("SET", "k", value)
    with pytest.raises(DataError):
        packed.pack_command("SET", "k", value)


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("redis://127.0.0.1:6379/0", redis.asyncio.Connection),
        ("rediss://127.0.0.1:6379/0", redis.asyncio.SSLConnection),
        ("unix:///tmp/redis.sock", redis.asyncio.UnixDomainSocketConnection),
    ],
)
def test_the_client_packs_with_hiredis_whatever_the_url(url: str, base: type) -> None:
    client = redis_client(Settings(_env_file=None, redis_url=url))
    connection_class = client.connection_pool.connection_class
    assert issubclass(connection_class, base)
    assert connection_class is packed_by_hiredis(base)
