"""Seeding `obs.accounts.v1` with the bundled accounts (services/common/accounts.py) when the
topic is empty: what `observatoire topics create` does on a new broker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from services.common.contracts import TOPIC_ACCOUNTS
from services.common.kafka.admin import topic_is_empty
from services.common.kafka.clients import make_producer
from services.common.settings import Settings


def seed_accounts_if_empty(settings: Settings, records: Sequence[Mapping[str, Any]]) -> int:
    """Produce `records` to `obs.accounts.v1` (key: each record's `id`) if the topic is empty.

    Returns how many records were produced (0 when the topic already held records). Waits
    for every delivery. Not safe against two seeders racing: `topics create` is run once.
    """
    if not records or not topic_is_empty(settings, TOPIC_ACCOUNTS):
        return 0
    name = settings.topic(TOPIC_ACCOUNTS)
    producer = make_producer(settings)
    try:
        futures = [
            producer.send(name, key=str(record["id"]).encode(), value=orjson.dumps(record))
            for record in records
        ]
        producer.flush()
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()
    return len(futures)
