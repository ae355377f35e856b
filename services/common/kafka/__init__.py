"""The Kafka access layer: every client is built here, from the broker profile's table.

- `profiles`: the profiles as data (the options of every client kind, connection security);
- `clients`: the only constructors of kafka-python, aiokafka and faust clients;
- `admin`: create and verify topics, end offsets, topic names;
- `reader`: the bulk reader of a topic up to its end offsets;
- `compat`: each patch of a library's private attributes;
- `errors`: TopicsNotReady, BrokerUnreachable.

The names most services need are re-exported here.
"""

from services.common.kafka.admin import (
    TopicReport,
    broker_topic,
    contract_name,
    create_topics,
    end_offsets,
    topic_configs,
    topic_is_empty,
    verify_topics,
)
from services.common.kafka.clients import (
    consumer_config,
    faust_settings,
    fetch_max_wait_ms,
    make_consumer,
    make_producer,
    producer_config,
)
from services.common.kafka.errors import BrokerUnreachable, TopicsNotReady
from services.common.kafka.profiles import (
    KAFKA_BATCH_BYTES,
    KAFKA_LINGER_MS,
    LOCAL_FETCH_MAX_WAIT_MS,
)

__all__ = [
    "KAFKA_BATCH_BYTES",
    "KAFKA_LINGER_MS",
    "LOCAL_FETCH_MAX_WAIT_MS",
    "BrokerUnreachable",
    "TopicReport",
    "TopicsNotReady",
    "broker_topic",
    "consumer_config",
    "contract_name",
    "create_topics",
    "end_offsets",
    "faust_settings",
    "fetch_max_wait_ms",
    "make_consumer",
    "make_producer",
    "producer_config",
    "topic_configs",
    "topic_is_empty",
    "verify_topics",
]
