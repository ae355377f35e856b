"""What goes wrong reaching the broker or its topics, said so that an operator can act."""

from __future__ import annotations

from services.common.settings import Settings


class TopicsNotReady(RuntimeError):
    """Topics are missing or differ from the contract; the message tells the operator what to do."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class BrokerUnreachable(TopicsNotReady):
    """No broker answered at `settings.kafka_bootstrap`."""

    def __init__(self, settings: Settings, error: Exception) -> None:
        super().__init__(
            [
                f"cannot reach the Kafka broker at {settings.kafka_bootstrap} ({error}): is it "
                "running? (`observatoire run` starts a local one)"
            ]
        )
