"""The publisher's side of Redis, one store per concern (docs/redis.md, "Publisher"):

- `rank_changes`: the published list's read, its state, write-ahead copies, recent events;
- `links`: judged links, territory link statuses, the dead-links index, applied handles;
- `editions`: frozen and published months, their copies, the editions index;
- `results`: command results (services/common/view/results.py: the API and the CLI read them);
- `offsets`: how far each of the publisher's own topics is reflected in Redis;
- `fence`: the fenced writes (every write checks the publisher's lease token in its slot);
- `lease`: the lease that makes one publisher the active one.

`PublisherStore` holds them all on one client and one lease token (0: unfenced).
"""

from __future__ import annotations

from redis.asyncio import Redis

from services.common.view.keys import ViewKeys
from services.common.view.results import ResultStore
from services.publisher.store.editions import EditionStore
from services.publisher.store.fence import UNFENCED, Fenced, FencedWriter
from services.publisher.store.links import LinkStore
from services.publisher.store.offsets import OffsetStore
from services.publisher.store.rank_changes import RECENT_EVENTS, RankChangeStore, TopRead
from services.publisher.store.results import FencedResultStore

__all__ = [
    "RECENT_EVENTS",
    "UNFENCED",
    "EditionStore",
    "Fenced",
    "FencedResultStore",
    "FencedWriter",
    "LinkStore",
    "OffsetStore",
    "PublisherStore",
    "RankChangeStore",
    "ResultStore",
    "TopRead",
]


class PublisherStore:
    """The publisher's stores on one client, writing with one lease token."""

    def __init__(self, redis: Redis, rk: ViewKeys, token: int = UNFENCED) -> None:
        self.redis = redis
        self.rk = rk
        self.fence = FencedWriter(redis, rk, token)
        self.rank_changes = RankChangeStore(redis, rk, self.fence)
        self.links = LinkStore(redis, rk, self.fence)
        self.editions = EditionStore(redis, rk, self.fence)
        self.results: ResultStore = FencedResultStore(redis, rk, self.fence)
        self.offsets = OffsetStore(redis, rk, self.fence)
