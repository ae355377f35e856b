"""The scorer's faust app: one object, built at import from the process's settings
(`get_settings()`: the environment), for the broker profile (docs/decisions.md §20).

State lives in Redis behind compare-and-set scripts (services/common/view/scripts/scorer.py),
not in faust tables: a crash, a redelivery or a rebalance can then never change a ranking,
and the standings survive a worker restart without a changelog recovery (which Tansu's end
offsets would cut short, see docs/operations.md).
"""

from __future__ import annotations

from services.common.kafka.clients import faust_app
from services.common.settings import get_settings

settings = get_settings()
app = faust_app("scorer", settings)
