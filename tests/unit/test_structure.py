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
