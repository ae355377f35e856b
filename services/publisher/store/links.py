"""Link status: each account's judged link, each territory's status per category, the
dead-links index, and the handles as the publisher applied `obs.accounts.v1`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import cast

from redis.asyncio import Redis

from services.common.clock import to_epoch
from services.common.dead_links import TRANSITIONS_KEPT, LinkState, LinkTransition
from services.common.view.keys import ViewKeys
from services.publisher.store.fence import FencedWriter, WriteBatch

FIELDS_PER_COMMAND = 500  # Lua's unpack() stops at a few thousand values


def _hset(batch: WriteBatch, key: str, mapping: Mapping[str, str | bytes]) -> None:
    items = list(mapping.items())
    for start in range(0, len(items), FIELDS_PER_COMMAND):
        chunk = items[start : start + FIELDS_PER_COMMAND]
        batch.add("HSET", key, *(value for item in chunk for value in item))


def _hdel(batch: WriteBatch, key: str, fields: list[str]) -> None:
    for start in range(0, len(fields), FIELDS_PER_COMMAND):
        batch.add("HDEL", key, *fields[start : start + FIELDS_PER_COMMAND])


def _record_transitions(batch: WriteBatch, key: str, transitions: Sequence[LinkTransition]) -> None:
    """Add an account's transitions to its list and keep the last TRANSITIONS_KEPT. ZADD of
    the same member is a no-op: a batch applied again after a crash (the same snapshots from
    the same old state give the same transitions) records each transition once."""
    kept = transitions[-TRANSITIONS_KEPT:]
    for start in range(0, len(kept), FIELDS_PER_COMMAND // 2):
        chunk = kept[start : start + FIELDS_PER_COMMAND // 2]
        batch.add("ZADD", key, *(v for t in chunk for v in (to_epoch(t.at), t.to_json())))
    batch.add("ZREMRANGEBYRANK", key, 0, -TRANSITIONS_KEPT - 1)


class LinkStore:
    """Reads and writes of the publisher's link facts."""

    def __init__(self, redis: Redis, rk: ViewKeys, fence: FencedWriter) -> None:
        self.redis = redis
        self.rk = rk
        self.fence = fence

    async def states(self, accounts: Iterable[tuple[str, str]]) -> dict[tuple[str, str], LinkState]:
        """The judged link of each (platform, handle); a fresh state when never judged."""
        accounts = list(accounts)
        if not accounts:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for platform, handle in accounts:
                pipe.get(self.rk.account_link_key(platform, handle))
            found = await pipe.execute()
        return {
            account: LinkState() if raw is None else LinkState.from_json(raw)
            for account, raw in zip(accounts, found, strict=True)
        }

    async def save(
        self,
        *,
        territory_status: Mapping[str, Mapping[str, str | None]],
        dead_links: Mapping[str, bytes | None],
        states: Mapping[tuple[str, str], LinkState],
        transitions: Mapping[tuple[str, str], Sequence[LinkTransition]] | None = None,
    ) -> None:
        """Write territory link statuses (category -> id -> status, None: unjudged), the
        dead-links index with the accounts' new transitions ((platform, handle) -> in order),
        then the account states last: a crash in between is repaired by the redelivered
        snapshots, which find the old account states.

        The first two are fenced writes (one per category slot, one on `obs:{meta}` holding
        the index and the transitions): a publisher that lost its lease stops there
        (`Fenced`) and never writes the account states, whose keys (one slot per account)
        cannot be claimed in advance."""
        batches = []
        for category, statuses in sorted(territory_status.items()):
            batch = self.fence.batch(self.rk.category_tag(category))
            key = self.rk.link_status_key(category)
            _hset(batch, key, {tid: s for tid, s in statuses.items() if s is not None})
            _hdel(batch, key, [tid for tid, s in statuses.items() if s is None])
            batches.append(batch)
        meta = self.fence.batch(self.rk.META_TAG)
        _hset(meta, self.rk.DEAD_LINKS_KEY, {k: v for k, v in dead_links.items() if v is not None})
        _hdel(meta, self.rk.DEAD_LINKS_KEY, [k for k, v in dead_links.items() if v is None])
        for (platform, handle), recorded in sorted((transitions or {}).items()):
            if recorded:
                key = self.rk.link_transitions_key(platform, handle)
                _record_transitions(meta, key, recorded)
        batches.append(meta)
        await self.fence.run(*batches)
        if states:
            async with self.redis.pipeline(transaction=False) as pipe:
                for (platform, handle), state in states.items():
                    pipe.set(self.rk.account_link_key(platform, handle), state.to_json())
                await pipe.execute()

    async def record_transitions(
        self, transitions: Mapping[tuple[str, str], Sequence[LinkTransition]], per_batch: int = 200
    ) -> None:
        """Record many accounts' transitions (rebuild), `per_batch` accounts per write."""
        accounts = sorted(a for a, recorded in transitions.items() if recorded)
        for start in range(0, len(accounts), per_batch):
            batch = self.fence.batch(self.rk.META_TAG)
            for platform, handle in accounts[start : start + per_batch]:
                key = self.rk.link_transitions_key(platform, handle)
                _record_transitions(batch, key, transitions[(platform, handle)])
            await self.fence.run(batch)

    async def dead_link_count(self) -> int:
        return int(await self.redis.hlen(self.rk.DEAD_LINKS_KEY))

    async def handles(self) -> dict[str, str]:
        """Territory id -> handle, as the publisher applied `obs.accounts.v1`."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(self.rk.PUBLISHER_ACCOUNTS_KEY))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def set_handles(self, handles: dict[str, str]) -> None:
        """Record many territories' handles at once (rebuild)."""
        batch = self.fence.batch(self.rk.META_TAG)
        _hset(batch, self.rk.PUBLISHER_ACCOUNTS_KEY, handles)
        await self.fence.run(batch)

    async def set_handle(self, territory_id: str, handle: str | None) -> None:
        batch = self.fence.batch(self.rk.META_TAG)
        if handle is None:
            batch.add("HDEL", self.rk.PUBLISHER_ACCOUNTS_KEY, territory_id)
        else:
            batch.add("HSET", self.rk.PUBLISHER_ACCOUNTS_KEY, territory_id, handle)
        await self.fence.run(batch)
