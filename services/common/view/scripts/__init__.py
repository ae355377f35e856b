"""Every Lua script run on the Redis view, and the only place one is registered.

A script is a `Script`: its name, its Lua source (with a header giving KEYS, ARGV and the
reply), the function that builds its KEYS from what it is about (so that every key of one call
is on one Redis Cluster slot, which tests/unit/test_view_scripts.py checks for every script),
and the decoder that turns its reply into a typed value. `Script.bind(redis)` registers it on a
client and gives a `Bound` script: `await bound(keys, args)` returns the typed reply;
`await bound.queue(pipe, keys, args)` adds the call to a pipeline, whose reply the caller
decodes with `bound.decode`.

- `scorer`: the compare-and-set writes of summaries and standings views, the watermark;
- `publisher`: the published list's read, rank-change commits, offsets, a frozen month's read;
- `reader`: the API's one-read-per-response scripts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

T = TypeVar("T")

ScriptArg = str | bytes | int | float


@dataclass(frozen=True)
class Script(Generic[T]):
    """One Lua script of the view: its source and how to read its reply."""

    name: str
    source: str
    decode: Callable[[Any], T]

    def bind(self, redis: Redis) -> Bound[T]:
        """Register the script on a client (redis-py loads it on first use, and again after
        NOSCRIPT)."""
        return Bound(self, redis)


class Bound(Generic[T]):
    """A script registered on a client."""

    def __init__(self, script: Script[T], redis: Redis) -> None:
        self.script = script
        self.decode = script.decode
        self._run = redis.register_script(script.source)

    async def __call__(self, keys: Sequence[str], args: Sequence[ScriptArg] = ()) -> T:
        return self.decode(await self._run(keys=list(keys), args=list(args)))

    async def queue(
        self, pipe: Pipeline, keys: Sequence[str], args: Sequence[ScriptArg] = ()
    ) -> None:
        """Add one call to a pipeline; decode its reply from `pipe.execute()` with `decode`.

        The pipeline learns the script (`pipe.scripts`): a single server's loads it before
        executing when it is missing, a cluster's (view/client.py) after a NOSCRIPT reply.
        EVALSHA is queued as a raw command: redis-py's cluster pipeline refuses `evalsha()`
        and resets itself when awaited."""
        # redis-py annotates the asyncio pipeline's `scripts` with its synchronous Script.
        cast(set[Any], pipe.scripts).add(self._run)
        pipe.execute_command("EVALSHA", self._run.sha, len(keys), *keys, *args)


def text(value: Any) -> str | None:
    """A reply's bulk string as text (Lua's nil and false both arrive as None)."""
    if value is None or value is False:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def integer(value: Any) -> int | None:
    """A reply's number (an integer, or a ZSET score as a string) as an int, or None."""
    return None if value is None or value is False else int(float(value))


def all_scripts() -> list[Script[Any]]:
    """Every script of the view (for the tests that check them all)."""
    from services.common.view.scripts import publisher, reader, scorer

    return [
        value
        for module in (scorer, publisher, reader)
        for value in vars(module).values()
        if isinstance(value, Script)
    ]
