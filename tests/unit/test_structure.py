"""The code's structure as rules: who may build a Redis client, which way imports go.

Read from the source (ast), so a violation fails here before it is a habit.
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
REDIS_CLIENT_MODULE = "services/common/view/client.py"
# The local stack probes the redis-server it started itself (host and port, no Settings).
LOCAL_STACK = "services/common/localstack.py"


def _modules() -> dict[str, ast.Module]:
    root = SERVICES.parent
    return {
        path.relative_to(root).as_posix(): ast.parse(path.read_text(), str(path))
        for path in sorted(SERVICES.rglob("*.py"))
    }


def _imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _calls(tree: ast.Module, attribute: str) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == attribute
    ]


def test_redis_clients_are_built_in_one_function_only():
    offenders = {
        path: lines
        for path, tree in _modules().items()
        if path not in (REDIS_CLIENT_MODULE, LOCAL_STACK) and (lines := _calls(tree, "from_url"))
    }
    assert offenders == {}, f"build Redis clients with view.client.redis_client: {offenders}"


def test_no_service_imports_the_command_line():
    offenders = sorted(
        path
        for path, tree in _modules().items()
        if not path.startswith("services/cli/")
        and any(
            name == "services.cli" or name.startswith("services.cli.") for name in _imported(tree)
        )
    )
    assert offenders == []


# --- the import graph: services depend only downward -------------------------------------
# services.common is the bottom; the four services import common and themselves only; the
# command line sits on top and may import anything (it starts every service).
SERVICE_PACKAGES = ("api", "scorer", "publisher", "collector")
# The pure core: no I/O library, nothing of the Kafka layer, and of the Redis view only its
# pure codecs (the binary entries and the small values).
PURE_VIEW_MODULES = ("services.common.view.entries", "services.common.view.values")
PURE_CORE = (
    "services/common/methodology.py",
    "services/common/rank_diff.py",
    "services/common/dead_links.py",
    "services/common/editions.py",
    "services/common/territories.py",
    "services/common/contracts.py",
    "services/common/events.py",
    "services/common/validation.py",
    "services/common/gap.py",
    "services/common/search.py",
    "services/common/history.py",
    "services/common/calculator.py",
    "services/common/coverage.py",
    "services/scorer/plan.py",
    "services/scorer/reduce.py",
    "services/publisher/link_reduce.py",
)
IO_LIBRARIES = ("redis", "kafka", "aiokafka", "faust", "fastapi", "httpx", "uvicorn")


def _services_imported(tree: ast.Module) -> set[str]:
    """The top-level service packages a module imports (`services.X`)."""
    return {
        name.split(".")[1]
        for name in _imported(tree)
        if name.startswith("services.") and name.count(".") >= 1
    }


def test_common_imports_no_service():
    offenders = {
        path: sorted(_services_imported(tree) - {"common"})
        for path, tree in _modules().items()
        if path.startswith("services/common/") and _services_imported(tree) - {"common"}
    }
    assert offenders == {}, f"services.common must not import a service: {offenders}"


def test_each_service_imports_only_common_and_itself():
    offenders = {}
    for path, tree in _modules().items():
        package = path.split("/")[1]
        if package not in SERVICE_PACKAGES:
            continue
        others = _services_imported(tree) - {"common", package}
        if others:
            offenders[path] = sorted(others)
    assert offenders == {}, f"a service imports another one: {offenders}"


def test_the_pure_core_does_no_io():
    modules = _modules()
    offenders = {}
    for path in PURE_CORE:
        names = _imported(modules[path])
        bad = sorted(
            name
            for name in names
            if name.split(".")[0] in IO_LIBRARIES
            or name.startswith("services.common.kafka")
            or (
                name.startswith("services.common.view")
                and not name.startswith(PURE_VIEW_MODULES)
                and name != "services.common.view"
            )
        )
        if bad:
            offenders[path] = bad
    assert offenders == {}, f"the pure core imports I/O: {offenders}"


# --- the Redis view has one owner --------------------------------------------------------
KEY_NAMES = "services.common.view.keys"
# Who may name a Redis key: the view package and the stores of each owner (tests may look
# at Redis directly; they are not services). `ViewKeys`, one generation of the view, is handed
# to the stores by whoever builds them; only the owners call it for a key.
GENERATION_HANDLE = f"{KEY_NAMES}.ViewKeys"
KEY_OWNERS = (
    "services/common/view/",
    "services/scorer/store/",
    "services/publisher/store/",
    "services/api/read/",
)
SCRIPTS_MODULE = "services/common/view/scripts/__init__.py"


def test_only_the_view_and_the_stores_name_redis_keys():
    offenders = sorted(
        path
        for path, tree in _modules().items()
        if not path.startswith(KEY_OWNERS)
        and any(
            name.startswith(KEY_NAMES + ".") and name != GENERATION_HANDLE
            for name in _imported(tree)
        )
    )
    assert offenders == [], f"read and write Redis through a store: {offenders}"


def test_scripts_are_registered_in_the_view_package_only():
    offenders = {
        path: lines
        for path, tree in _modules().items()
        if path != SCRIPTS_MODULE and (lines := _calls(tree, "register_script"))
    }
    assert offenders == {}, f"register Lua through services.common.view.scripts: {offenders}"


# --- Kafka clients are built in one module ------------------------------------------------
KAFKA_CLIENTS_MODULE = "services/common/kafka/clients.py"
KAFKA_CONSTRUCTORS = {
    "KafkaProducer",
    "KafkaConsumer",
    "KafkaAdminClient",
    "AIOKafkaProducer",
    "AIOKafkaConsumer",
    "App",
}


def _constructed(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in KAFKA_CONSTRUCTORS:
                found.append((node.lineno, name))
    return found


def test_kafka_clients_and_faust_apps_are_built_in_one_module_only():
    offenders = {
        path: calls
        for path, tree in _modules().items()
        if path != KAFKA_CLIENTS_MODULE and (calls := _constructed(tree))
    }
    assert offenders == {}, f"build Kafka clients with services.common.kafka.clients: {offenders}"
