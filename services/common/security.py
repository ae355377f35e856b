"""Whether a process may start on the Kafka profile: what it would run without.

Production is authenticated by default (ARCHITECTURE.md): Kafka with SASL, Redis with a
password, operator commands signed. On `OBS_BROKER_PROFILE=kafka` a service or an operator
command refuses to start while one of those is missing for what it uses, unless
`OBS_ALLOW_INSECURE=true`, and then says at every start what is missing. The local profile
refuses nothing: its broker, Tansu 0.6.0, cannot authenticate (docs/operations.md).

Pure: the decision and its wording; the processes' entry points enforce it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Final, Literal

from pydantic import SecretStr

from services.common.settings import Settings

Need = Literal["kafka", "redis", "commands"]

# What each service connects to or holds (docs/operations.md, "Kafka security"). A secret is
# asked only of the processes that use it: the scorer and the collector never sign or verify
# an operator command, and the collector never reaches Redis.
SERVICE_NEEDS: Final[Mapping[str, frozenset[Need]]] = {
    "scorer": frozenset({"kafka", "redis"}),
    "publisher": frozenset({"kafka", "redis", "commands"}),
    "api": frozenset({"kafka", "redis", "commands"}),
    "collector": frozenset({"kafka"}),
}
# The operator commands that reach the broker (`replay --batch` reaches nothing).
COMMAND_NEEDS: Final[Mapping[str, frozenset[Need]]] = {
    "accounts set": frozenset({"kafka", "redis", "commands"}),
    "edition publish": frozenset({"kafka", "redis", "commands"}),
    "topics create": frozenset({"kafka"}),
    "replay": frozenset({"kafka"}),
    "rebuild": frozenset({"kafka", "redis"}),
    "collect": frozenset({"kafka"}),
}
ALL_NEEDS: Final[frozenset[Need]] = frozenset({"kafka", "redis", "commands"})
OVERRIDE: Final = "OBS_ALLOW_INSECURE=true"


def insecure_reasons(settings: Settings, needs: Collection[Need] = ALL_NEEDS) -> list[str]:
    """What a process using `needs` would run without on these settings (empty: nothing, or
    not the Kafka profile). `OBS_ALLOW_INSECURE` does not change the answer, only what the
    caller does with it."""
    if settings.broker_profile != "kafka":
        return []
    reasons: list[str] = []
    if "kafka" in needs:
        protocol = settings.kafka_security_protocol
        if not protocol.startswith("SASL_"):
            reasons.append(
                f"Kafka credentials (OBS_KAFKA_SECURITY_PROTOCOL is {protocol}: set SASL_SSL, "
                "with OBS_KAFKA_USERNAME and OBS_KAFKA_PASSWORD)"
            )
        else:
            missing = [
                name
                for name, given in (
                    ("OBS_KAFKA_USERNAME", bool(settings.kafka_username)),
                    ("OBS_KAFKA_PASSWORD", _given(settings.kafka_password)),
                )
                if not given
            ]
            if missing:
                reasons.append(f"Kafka credentials ({' and '.join(missing)})")
    if "redis" in needs and not _given(settings.redis_password):
        reasons.append("a Redis password (OBS_REDIS_PASSWORD)")
    if "commands" in needs and not _given(settings.command_key):
        reasons.append("the command key that signs operator commands (OBS_COMMAND_KEY)")
    return reasons


def _given(secret: SecretStr | None) -> bool:
    return secret is not None and bool(secret.get_secret_value())


def refusal(who: str, reasons: Collection[str]) -> str:
    """Why `who` does not start (one message, every reason)."""
    return (
        f"{who} refuses to start on the kafka profile without: {'; '.join(reasons)}. "
        f"Set them, or {OVERRIDE} to start anyway (never in production; docs/operations.md)"
    )


def insecure_warning(who: str, reasons: Collection[str]) -> str:
    """What `who` says when it starts anyway (OBS_ALLOW_INSECURE)."""
    return f"{OVERRIDE}: {who} starts on the kafka profile without: {'; '.join(reasons)}"
