"""The publisher's faust app: one object, built at import from the process's settings
(`get_settings()`: the environment), for the broker profile (docs/decisions.md §20).

Like the scorer, state lives in Redis (services/publisher/store/), not in faust tables;
faust manages the consumer group (its own, `observatoire-publisher`), offsets and
rebalances. Only the publisher holding the lease starts its worker (services/publisher/
lease.py): rank-change `seq` numbers are assigned by a single writer.
"""

from __future__ import annotations

from services.common.kafka.clients import faust_app
from services.common.settings import get_settings

settings = get_settings()
app = faust_app("publisher", settings)
