"""The publisher's side of Redis (docs/redis.md, "Publisher"): published lists and their
events, link status, published editions, command results, and how far each of the
publisher's own topics is reflected here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from services.common.clock import from_epoch
from services.common.contracts import CATEGORY_IDS
from services.common.dead_links import LinkState
from services.common.editions import PreviousEdition
from services.common.view import keys as rk
from services.publisher import lua

RECENT_EVENTS = 1000  # rank-change events kept per category (ARCHITECTURE: the last 1,000)


@dataclass(frozen=True, slots=True)
class TopRead:
    """A category's published list read from the live standings, with the scores involved."""

    top: list[str]
    scores: dict[str, float]  # score of each territory of `top`
    as_of: str | None  # the watermark the category view reflects
    previous_scores: dict[str, float | None]  # current score of each previous-list territory


@dataclass(slots=True)
class RankState:
    """A category's last published list as recorded (seq 0: nothing published yet)."""

    seq: int = 0
    event_id: str | None = None
    at: str | None = None
    top: list[str] = field(default_factory=list)
    scores: dict[str, float | None] = field(default_factory=dict)


def _score(negated: bytes | str | float) -> float:
    # The rank ZSET holds -score; `+ 0.0` turns a -0.0 into 0.0.
    return -float(negated) + 0.0


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class PublisherStore:
    """Reads and idempotent writes of the publisher's facts."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._read_top = redis.register_script(lua.READ_TOP)
        self._commit = redis.register_script(lua.COMMIT_RANK_CHANGE)
        self._advance = redis.register_script(lua.ADVANCE_OFFSET)
        self._read_view = redis.register_script(lua.READ_EDITION_VIEW)

    # --- rank changes --------------------------------------------------------------------
    async def read_top(self, category: str, size: int, previous: Sequence[str]) -> TopRead:
        """The first `size` of the live standings, as one consistent read."""
        prefix = rk.view_prefix(category, None)
        flat, as_of, previous_raw = await self._read_top(
            keys=[rk.rank_key(prefix), rk.meta_key(category)], args=[size - 1, *previous]
        )
        top = [flat[i].decode() for i in range(0, len(flat), 2)]
        scores = {flat[i].decode(): _score(flat[i + 1]) for i in range(0, len(flat), 2)}
        previous_scores = {
            tid: None if raw is None else _score(raw)
            for tid, raw in zip(previous, previous_raw, strict=True)
        }
        return TopRead(top, scores, _text(as_of) or None, previous_scores)

    async def rank_state(self, category: str) -> RankState:
        """The recorded published list of a category."""
        raw = cast(
            dict[bytes, bytes], await self.redis.hgetall(rk.rank_changes_state_key(category))
        )
        if not raw:
            return RankState()
        return RankState(
            seq=int(raw[b"seq"]),
            event_id=raw[b"event_id"].decode(),
            at=raw[b"at"].decode(),
            top=orjson.loads(raw[b"top"]),
            scores=orjson.loads(raw[b"scores"]),
        )

    async def rank_pending(self, category: str) -> dict[str, Any] | None:
        """The write-ahead copy of an event being produced (`seq`, `event_id`, `scores`)."""
        raw = await self.redis.get(rk.rank_changes_pending_key(category))
        return None if raw is None else cast(dict[str, Any], orjson.loads(raw))

    async def write_rank_pending(
        self, category: str, *, seq: int, event_id: str, scores: Mapping[str, float | None]
    ) -> None:
        """Save, before producing, what the event's record cannot carry: every score."""
        payload = {"seq": seq, "event_id": event_id, "scores": dict(scores)}
        await self.redis.set(rk.rank_changes_pending_key(category), orjson.dumps(payload))

    async def drop_rank_pending(self, category: str) -> None:
        """Forget a write-ahead copy whose event never reached the topic."""
        await self.redis.delete(rk.rank_changes_pending_key(category))

    async def commit_rank_change(
        self,
        category: str,
        *,
        seq: int,
        event_id: str,
        at: str,
        top: Sequence[str],
        scores: Mapping[str, float | None],
        record: bytes,
    ) -> None:
        """Record a delivered event (idempotent: the same event twice changes nothing)."""
        await self._commit(
            keys=[
                rk.rank_changes_state_key(category),
                rk.rank_changes_events_key(category),
                rk.rank_changes_pending_key(category),
            ],
            args=[
                seq,
                event_id,
                at,
                orjson.dumps(list(top)),
                orjson.dumps(dict(scores)),
                record,
                RECENT_EVENTS,
            ],
        )

    async def recent_rank_changes(self, category: str, after_seq: int = 0) -> list[bytes]:
        """The recorded events of a category after `after_seq`, in seq order."""
        found = await self.redis.zrangebyscore(
            rk.rank_changes_events_key(category), f"({after_seq}", "+inf"
        )
        return cast(list[bytes], found)

    # --- how far each of our topics is reflected here -------------------------------------
    async def offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset up to which the topic is reflected in Redis."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(rk.PUBLISHER_OFFSETS_KEY))
        prefix = f"{topic}:".encode()
        return {
            int(name[len(prefix) :]): int(value)
            for name, value in raw.items()
            if name.startswith(prefix)
        }

    async def advance_offset(self, topic: str, partition: int, next_offset: int) -> None:
        """Raise the reflected offset of one partition (never lowers it)."""
        await self._advance(
            keys=[rk.PUBLISHER_OFFSETS_KEY], args=[f"{topic}:{partition}", next_offset]
        )

    async def set_offsets(self, topic: str, offsets: Mapping[int, int]) -> None:
        """Set the reflected offsets of a topic (after reading it to these end offsets)."""
        if offsets:
            await self.redis.hset(
                rk.PUBLISHER_OFFSETS_KEY,
                mapping={f"{topic}:{p}": offset for p, offset in offsets.items()},
            )

    # --- link status -----------------------------------------------------------------------
    async def link_states(
        self, accounts: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], LinkState]:
        """The judged link of each (platform, handle); a fresh state when never judged."""
        accounts = list(accounts)
        if not accounts:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for platform, handle in accounts:
                pipe.get(rk.account_link_key(platform, handle))
            found = await pipe.execute()
        return {
            account: LinkState() if raw is None else LinkState.from_json(raw)
            for account, raw in zip(accounts, found, strict=True)
        }

    async def save_links(
        self,
        *,
        territory_status: Mapping[str, Mapping[str, str | None]],
        dead_links: Mapping[str, bytes | None],
        states: Mapping[tuple[str, str], LinkState],
    ) -> None:
        """Write territory link statuses (category -> id -> status, None: unjudged), the
        dead-links index, then the account states last: a crash in between is repaired by
        the redelivered snapshots, which find the old account states."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for category, statuses in territory_status.items():
                key = rk.link_status_key(category)
                if any(s is not None for s in statuses.values()):
                    pipe.hset(key, mapping={tid: s for tid, s in statuses.items() if s is not None})
                unjudged = [tid for tid, s in statuses.items() if s is None]
                if unjudged:
                    pipe.hdel(key, *unjudged)
            for account_key, value in dead_links.items():
                if value is None:
                    pipe.hdel(rk.DEAD_LINKS_KEY, account_key)
                else:
                    pipe.hset(rk.DEAD_LINKS_KEY, account_key, value)
            for (platform, handle), state in states.items():
                pipe.set(rk.account_link_key(platform, handle), state.to_json())
            await pipe.execute()

    async def dead_link_count(self) -> int:
        return int(await self.redis.hlen(rk.DEAD_LINKS_KEY))

    async def publisher_accounts(self) -> dict[str, str]:
        """Territory id -> handle, as the publisher applied `obs.accounts.v1`."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(rk.PUBLISHER_ACCOUNTS_KEY))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def set_publisher_accounts(self, handles: dict[str, str]) -> None:
        """Record many territories' handles at once (rebuild)."""
        if handles:
            await self.redis.hset(rk.PUBLISHER_ACCOUNTS_KEY, mapping=handles)  # type: ignore[arg-type]

    async def set_publisher_account(self, territory_id: str, handle: str | None) -> None:
        if handle is None:
            await self.redis.hdel(rk.PUBLISHER_ACCOUNTS_KEY, territory_id)
        else:
            await self.redis.hset(rk.PUBLISHER_ACCOUNTS_KEY, territory_id, handle)

    # --- editions --------------------------------------------------------------------------
    async def watermark(self) -> str | None:
        """The scorer's global watermark as a timestamp (None before any event)."""
        raw = await self.redis.get(rk.WATERMARK_KEY)
        return None if raw is None else from_epoch(int(raw))

    async def published(self) -> dict[str, dict[str, Any]]:
        """Published months -> their summary (`published_at`, `categories`, `command_id`)."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(rk.EDITIONS_KEY))
        return {k.decode(): orjson.loads(v) for k, v in raw.items()}

    async def months_with_data(self) -> set[str]:
        """Months in which some category's edition view ranks at least one territory."""
        candidates: dict[str, list[str]] = {}
        for category in CATEGORY_IDS:
            for month in await self.redis.smembers(rk.edition_months_key(category)):
                candidates.setdefault(cast(bytes, month).decode(), []).append(category)
        months = set()
        for month, categories in candidates.items():
            for category in categories:
                if await self.redis.zcard(rk.rank_key(rk.view_prefix(category, month))):
                    months.add(month)
                    break
        return months

    async def freeze(self, edition: str, published_at: str) -> str:
        """Freeze a month in every category (the scorer's scripts refuse to write it from
        now on) and return its `published_at`: the one of an earlier, interrupted attempt if
        there was one, so that re-publishing produces the very same parts."""
        keys = [rk.edition_frozen_key(category, edition) for category in CATEGORY_IDS]
        for key in keys:
            existing = _text(await self.redis.get(key))
            if existing and existing[:1].isdigit() and existing.endswith("Z"):
                published_at = existing
                break
        for key in keys:
            await self.redis.set(key, published_at)
        await self.redis.sadd(rk.FROZEN_MONTHS_KEY, edition)
        return published_at

    async def drop_edition_views(self, editions: Iterable[str]) -> None:
        """Delete the scorer's frozen views of published months: once an edition is recorded
        it is served from the publisher's copy (`pub:M:*`), and the view would only hold
        ~255 bytes per ranked territory per month for nothing. The frozen markers stay (the
        scorer's scripts check them), so the view is never written again."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for edition in editions:
                for category in CATEGORY_IDS:
                    prefix = rk.view_prefix(category, edition)
                    pipe.unlink(rk.rank_key(prefix), rk.entry_key(prefix))
                    pipe.srem(rk.edition_months_key(category), edition)
            await pipe.execute()

    async def read_edition_view(
        self, category: str, edition: str
    ) -> list[tuple[str, bytes, str | None]]:
        """The scorer's (frozen) view of a month in rank order: (id, stored entry, link
        status now), in one read."""
        prefix = rk.view_prefix(category, edition)
        ids, entries, links = await self._read_view(
            keys=[rk.rank_key(prefix), rk.entry_key(prefix), rk.link_status_key(category)]
        )
        return [
            (tid.decode(), entry, _text(link))
            for tid, entry, link in zip(ids, entries, links, strict=True)
            if entry is not None
        ]

    async def previous_edition(self, category: str, edition: str) -> PreviousEdition:
        """A published edition's ranks and its leader's streak."""
        ranked = cast(
            list[tuple[bytes, float]],
            await self.redis.zrange(
                rk.published_rank_key(category, edition), 0, -1, withscores=True
            ),
        )
        ranks = {tid.decode(): int(rank) for tid, rank in ranked}
        leader = next((tid for tid, rank in ranks.items() if rank == 1), None)
        streak = 0
        if leader is not None:
            raw = await self.redis.hget(rk.published_entry_key(category, edition), leader)
            streak = 0 if raw is None else int(orjson.loads(raw)["streak"])
        return PreviousEdition(ranks=ranks, leader_streak=streak)

    async def write_published(
        self,
        category: str,
        edition: str,
        *,
        published_at: str,
        parts: int,
        standings: Sequence[Mapping[str, Any]],
    ) -> None:
        """Store one category's published edition; it becomes the latest if it is newer."""
        latest = _text(await self.redis.get(rk.latest_published_edition_key(category)))
        is_latest = latest is None or edition >= latest
        rank_key = rk.published_rank_key(category, edition)
        entry_key = rk.published_entry_key(category, edition)
        ranks = {entry["id"]: entry["rank"] for entry in standings}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(rank_key, entry_key)
            for chunk in _chunks(list(standings), 1000):
                pipe.zadd(rank_key, {entry["id"]: entry["rank"] for entry in chunk})
                pipe.hset(entry_key, mapping={entry["id"]: orjson.dumps(entry) for entry in chunk})
            pipe.hset(
                rk.published_meta_key(category, edition),
                mapping={"published_at": published_at, "parts": parts, "total": len(standings)},
            )
            if is_latest:
                latest_rank = rk.latest_published_rank_key(category)
                pipe.delete(latest_rank)
                items = list(ranks.items())
                for chunk_items in _chunks(items, 1000):
                    pipe.zadd(latest_rank, dict(chunk_items))
                pipe.set(rk.latest_published_edition_key(category), edition)
            await pipe.execute()

    async def record_published(self, edition: str, summary: Mapping[str, Any]) -> None:
        """The last step of a publication: the month is published from now on."""
        await self.redis.hset(rk.EDITIONS_KEY, edition, orjson.dumps(dict(summary)))
        await self.redis.sadd(rk.FROZEN_MONTHS_KEY, edition)

    # --- command results ---------------------------------------------------------------------
    async def command_result(self, command_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(rk.COMMAND_RESULTS_KEY, command_id)
        return None if raw is None else cast(dict[str, Any], orjson.loads(raw))

    async def save_command_result(self, command_id: str, record: bytes) -> None:
        await self.redis.hset(rk.COMMAND_RESULTS_KEY, command_id, record)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
