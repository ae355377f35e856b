"""`make bench`: performance benchmarks, each against a baseline measured in the same run.

Usage: python -m bench [scorer|memory|history|api|connections|freshness|search|pages|france|
france-3d|scale|capacity] … (default: scorer memory history api connections freshness search
pages; `scale`, 1 to 3 scorer workers, and `capacity`, the inputs of docs/capacity.md, only when
named).
Results are printed and saved in bench/results/<name>.json.
"""

from __future__ import annotations

import json
import sys
import time

from bench import (
    api,
    capacity,
    connections,
    freshness,
    history,
    memory,
    pages,
    scale,
    scorer,
    search,
)
from bench.common import RESULTS

BENCHES = {
    "api": api.run,
    "connections": connections.run,
    "freshness": freshness.run,
    "memory": memory.run,
    "search": search.run,
    "scorer": lambda: scorer.run("standard"),
    "france": lambda: scorer.run("france"),
    "france-3d": lambda: scorer.run("france-3d"),
    "scale": scale.run,
    "capacity": capacity.run,
    "pages": pages.run,
    "history": history.run,
}


def main(argv: list[str]) -> int:
    names = argv or [
        "scorer",
        "memory",
        "history",
        "api",
        "connections",
        "freshness",
        "search",
        "pages",
    ]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown bench {unknown}; available: {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    for name in names:
        started = time.perf_counter()
        result = BENCHES[name]()
        result["wall_seconds"] = round(time.perf_counter() - started, 1)
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({name: result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
