"""The publisher's components, wired once per process around one Redis client and a Sender."""

from __future__ import annotations

from redis.asyncio import Redis

from services.common.commands.keys import CommandKeys
from services.common.commands.sender import Sender
from services.common.territories import Registry
from services.common.view.keys import ViewKeys
from services.publisher.commands import CommandExecutor
from services.publisher.links import LinkTracker
from services.publisher.rank_changes import RankChangeTracker
from services.publisher.store import UNFENCED, PublisherStore


class Publisher:
    """Rank changes, link status and commands, sharing one store."""

    def __init__(
        self,
        redis: Redis,
        rk: ViewKeys,
        registry: Registry,
        send: Sender,
        *,
        grace_hours: float,
        command_keys: CommandKeys,
        token: int = UNFENCED,
    ) -> None:
        self.store = PublisherStore(redis, rk, token)  # every write checks the lease token
        self.ranks = RankChangeTracker(self.store, send)
        self.links = LinkTracker(self.store, send, registry)
        self.commands = CommandExecutor(
            self.store, send, registry, grace_hours=grace_hours, keys=command_keys
        )

    async def load(self) -> None:
        """Load the recorded state (call after `restore_from_topics`)."""
        await self.ranks.load()
        await self.links.load()
        # A publication interrupted between recording its edition and dropping the frozen
        # views (or a view kept by an older version) is cleaned up here.
        await self.store.editions.drop_edition_views(await self.store.editions.published())
