"""The scorer's faust app: one object, configured from Settings for the broker profile.

State lives in Redis behind compare-and-set scripts (see services/scorer/lua.py), not in faust
tables: a crash, a redelivery or a rebalance can then never change a ranking, and the standings
survive a worker restart without a changelog recovery (which Tansu's end offsets would cut
short, see docs/operations.md).
"""

from __future__ import annotations

import faust

from services.common.kafka import faust_settings
from services.common.settings import get_settings

settings = get_settings()
# faust keeps its own small state here (table stores; none used): never in the working directory.
datadir = settings.run_dir / "faust"
datadir.mkdir(parents=True, exist_ok=True)

app = faust.App(
    f"{settings.topic_prefix}observatoire-scorer",
    value_serializer="raw",
    key_serializer="raw",
    autodiscover=False,
    web_enabled=False,
    datadir=str(datadir),
    **faust_settings(settings),
)
