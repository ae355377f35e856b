"""The publisher's side of Redis, one store per concern (docs/redis.md, "Publisher"):

- `rank_changes`: the published list's read, its state, write-ahead copies, recent events;
- `links`: judged links, territory link statuses, the dead-links index, applied handles;
- `editions`: frozen and published months, their copies, the editions index;
- `results`: command results (services/common/view/results.py: the API and the CLI read them);
- `offsets`: how far each of the publisher's own topics is reflected in Redis.

`PublisherStore` holds them all on one client.
"""

from __future__ import annotations

from redis.asyncio import Redis

from services.common.view.results import ResultStore
from services.publisher.store.editions import EditionStore
from services.publisher.store.links import LinkStore
from services.publisher.store.offsets import OffsetStore
from services.publisher.store.rank_changes import RECENT_EVENTS, RankChangeStore, TopRead

__all__ = [
    "RECENT_EVENTS",
    "EditionStore",
    "LinkStore",
    "OffsetStore",
    "PublisherStore",
    "RankChangeStore",
    "ResultStore",
    "TopRead",
]


class PublisherStore:
    """The publisher's stores on one client."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.rank_changes = RankChangeStore(redis)
        self.links = LinkStore(redis)
        self.editions = EditionStore(redis)
        self.results = ResultStore(redis)
        self.offsets = OffsetStore(redis)
