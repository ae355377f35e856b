"""The private attributes services/common/kafka/compat.py patches exist in the pinned
libraries: when an upgrade drops one, this fails before a service silently loses the patch."""

from __future__ import annotations

import inspect

import aiokafka.consumer.consumer as aiokafka_consumer
import kafka.producer.kafka as kafka_producer
import kafka.producer.sender as kafka_sender
from aiokafka import AIOKafkaConsumer

from services.common.kafka import compat


def test_aiokafka_reads_the_fetch_max_wait_it_is_given_before_start():
    source = inspect.getsource(aiokafka_consumer)
    attribute = compat.FETCH_MAX_WAIT_ATTRIBUTE
    assert f"self.{attribute} = fetch_max_wait_ms" in source  # set in __init__
    assert f"self.{attribute}," in source or f"self.{attribute})" in source  # used at start
    consumer = AIOKafkaConsumer.__new__(AIOKafkaConsumer)
    compat.set_fetch_max_wait(consumer, 100)
    assert getattr(consumer, attribute) == 100


def test_kafka_python_producers_have_a_sender_that_can_be_forced_closed():
    assert f"self.{compat.SENDER_ATTRIBUTE} = " in inspect.getsource(kafka_producer.KafkaProducer)
    assert callable(kafka_sender.Sender.force_close)


def test_force_closing_never_raises():
    class Broken:
        class _Sender:
            def force_close(self) -> None:
                raise RuntimeError("already stopped")

        _sender = _Sender()

    compat.force_close_producer(Broken())
    compat.force_close_producer(object())  # no sender at all


def test_faust_consumers_keep_their_committed_offsets_per_partition():
    import faust.transport.consumer as faust_consumer

    source = inspect.getsource(faust_consumer.Consumer)
    attribute = compat.COMMITTED_OFFSET_ATTRIBUTE
    assert f"self.{attribute} = defaultdict(lambda: None)" in source  # set in __init__
    assert f"self.{attribute}.update(" in source  # at assignment and at each commit

    class Tp:
        def __init__(self, topic: str, partition: int) -> None:
            self.topic, self.partition = topic, partition

    first, second = Tp("t", 0), Tp("t", 1)

    class Consumer:
        def __init__(self) -> None:
            self._committed_offset = {first: 41, second: None}

        def assignment(self) -> set[Tp]:
            return {first, second}

    assert compat.committed_offsets(Consumer()) == {("t", 0): 41, ("t", 1): 0}
