"""The scorer's side of Redis, one store per concern (docs/redis.md, "Scorer"):

- `summaries`: account summaries per edition month, the months with data, the watermark and
  the months the publisher froze;
- `views`: compare-and-set writes of the standings views, the inactivity sweep, geography;
- `history`: the daily history's points and rank indexes;
- the account mapping, which the API and the CLI read too: services/common/view/accounts.py.

`ScorerStore` holds them on one client.
"""

from __future__ import annotations

from redis.asyncio import Redis

from services.common.view.accounts import AccountMapping
from services.common.view.keys import ViewKeys
from services.common.view.values import AccountLink
from services.scorer.store.history import HistoryStore, PointWrite
from services.scorer.store.summaries import SummaryStore
from services.scorer.store.views import EntryWrite, ViewStore, geo_fingerprint

__all__ = [
    "AccountLink",
    "AccountMapping",
    "EntryWrite",
    "HistoryStore",
    "PointWrite",
    "ScorerStore",
    "SummaryStore",
    "ViewStore",
    "geo_fingerprint",
]


class ScorerStore:
    """The scorer's stores on one client."""

    def __init__(self, redis: Redis, rk: ViewKeys) -> None:
        self.redis = redis
        self.rk = rk
        self.summaries = SummaryStore(redis, rk)
        self.views = ViewStore(redis, rk)
        self.accounts = AccountMapping(redis, rk)
        self.history = HistoryStore(redis, rk)
