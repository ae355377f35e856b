"""A tiny faust app for `test_broker_profile.py`: a table counting the messages of one topic.

Run by the test as a worker subprocess:
`python -m faust -A tests.integration.faust_counter_app worker --without-web -l info` (the
CLI overrides `web_enabled=False` otherwise and binds port 6066), configured through the
environment: the usual `OBS_*` settings (broker, profile, topic prefix) plus

- `COUNTER_APP_ID`: the faust app id (unique per test),
- `COUNTER_PARTITIONS`: partitions of the input topic (and so of the changelog),
- `COUNTER_STATE_DIR`: where the app reports its table (JSON files, written atomically):
  `recovered.json` once changelog recovery has finished, before any new message is processed
  (the value a restart brings back), and `live.json` every 100 ms (the value while counting).
"""

from __future__ import annotations

import os
from pathlib import Path

import faust
import orjson

from services.common.kafka import faust_settings
from services.common.settings import Settings

INPUT_TOPIC = "counter.in"

settings = Settings()
partitions = int(os.environ.get("COUNTER_PARTITIONS", "4"))
state_dir = Path(os.environ.get("COUNTER_STATE_DIR", ".run/counter"))
state_dir.mkdir(parents=True, exist_ok=True)

app = faust.App(
    os.environ.get("COUNTER_APP_ID", "counter"),
    **faust_settings(settings, topic_partitions=partitions),
    store="memory://",
    web_enabled=False,
    datadir=str(state_dir / "faust-data"),
)
source = app.topic(
    settings.topic(INPUT_TOPIC),
    partitions=partitions,
    key_serializer="raw",
    value_serializer="raw",
)
counts = app.Table("counts", default=int, partitions=partitions)


def _report(name: str) -> None:
    snapshot = {"pid": os.getpid(), "counts": dict(counts.items())}
    tmp = state_dir / f".{name}.tmp"
    tmp.write_bytes(orjson.dumps(snapshot))
    tmp.replace(state_dir / name)


@counts.on_recover
async def _on_recovered() -> None:
    # Called after the changelog is read back and before stream partitions resume.
    _report("recovered.json")


@app.agent(source)
async def count(stream: faust.StreamT) -> None:
    async for event in stream.events():
        counts[event.key.decode()] += 1


@app.timer(0.1)
async def _report_live() -> None:
    _report("live.json")
