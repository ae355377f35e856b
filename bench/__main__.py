"""`make bench`: every performance benchmark, each against a baseline measured in the same run,
and the report a person reads, bench/RESULTS.md.

Usage: python -m bench [NAME …] [--report-only]

Without a name every bench runs, quick ones first (about half an hour on 2 cores; `france`
alone takes about 10 minutes, `scale` 7): search, connections, pages, memory, history, api,
freshness, scorer, capacity, scale, france-3d, france. Named ones run alone, and the report
says the run is partial. Progress goes to stderr as the run goes; each result is saved in
bench/results/<name>.json (untracked) with when it started, the load average then and its wall
time; at the end the report (bench/report.py) is written to bench/RESULTS.md and printed. A
bench that fails is reported as such and the others still run; the exit status is then 1.
`--report-only` runs nothing: it rebuilds the report from the saved results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from bench import (
    api,
    capacity,
    connections,
    freshness,
    history,
    memory,
    pages,
    report,
    scale,
    scorer,
    search,
)
from bench.common import RESULTS

REPORT = Path(__file__).resolve().parent / "RESULTS.md"
INTERRUPTED = "interrupted"

Bench = Callable[[], dict[str, Any]]

BENCHES: dict[str, Bench] = {
    "search": search.run,
    "connections": connections.run,
    "pages": pages.run,
    "memory": memory.run,
    "history": history.run,
    "api": api.run,
    "freshness": freshness.run,
    "scorer": lambda: scorer.run("standard"),
    "capacity": capacity.run,
    "scale": scale.run,
    "france-3d": lambda: scorer.run("france-3d"),
    "france": lambda: scorer.run("france"),
}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def run_benches(
    names: Sequence[str],
    benches: Mapping[str, Bench],
    results: Path,
    log: TextIO,
) -> dict[str, report.Outcome]:
    """Run `names` in turn, saving each result as it comes; a bench that raises is recorded
    as failed and the next one runs (an interrupt stops the run: the rest are not run)."""
    results.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, report.Outcome] = {}
    began = time.perf_counter()
    for number, name in enumerate(names, 1):
        counter = f"[bench {number}/{len(names)}] {name}"
        now = datetime.now(UTC)
        load = round(os.getloadavg()[0], 2)
        elapsed = _clock(time.perf_counter() - began)
        print(f"{counter}: started {_stamp(now)} (run elapsed {elapsed}, load {load})", file=log)
        log.flush()
        started = time.perf_counter()
        try:
            result = dict(benches[name]())
        except (Exception, SystemExit) as exc:  # SystemExit: a bench whose tool is missing
            took = round(time.perf_counter() - started, 1)
            traceback.print_exc(file=log)
            outcomes[name] = report.Failed(f"{type(exc).__name__}: {exc}", took)
        except KeyboardInterrupt:
            took = round(time.perf_counter() - started, 1)
            outcomes[name] = report.Failed(INTERRUPTED, took)
            print(f"{counter}: interrupted after {took} s; the rest are not run", file=log)
            break
        else:
            took = round(time.perf_counter() - started, 1)
            result["started_at"] = _stamp(now)
            result["load_average_at_start"] = load
            result["wall_seconds"] = took
            (results / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
            outcomes[name] = result
        print(
            f"{counter}: {report.outcome_line(name, outcomes[name])} after {took} s "
            f"(run elapsed {_clock(time.perf_counter() - began)})",
            file=log,
        )
        log.flush()
    return outcomes


def load_saved(names: Sequence[str], results: Path) -> dict[str, report.Outcome]:
    """The saved result of each of `names` that has one (its file's time stands in for when it
    ran when the result does not say)."""
    outcomes: dict[str, report.Outcome] = {}
    for name in names:
        path = results / f"{name}.json"
        if not path.is_file():
            continue
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            outcomes[name] = report.Failed(f"{path.name} unreadable: {exc}")
            continue
        if "started_at" not in result:
            result["saved_at"] = _stamp(datetime.fromtimestamp(path.stat().st_mtime, UTC))
        outcomes[name] = result
    return outcomes


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def this_machine() -> report.Machine:
    """This machine, from /proc and /etc/os-release."""
    one, five, fifteen = os.getloadavg()
    return report.machine_from(
        _read("/proc/cpuinfo"),
        _read("/proc/meminfo"),
        _read("/etc/os-release"),
        platform.python_version(),
        (one, five, fifteen),
    )


def main(
    argv: Sequence[str],
    *,
    benches: Mapping[str, Bench] = BENCHES,
    results: Path = RESULTS,
    output: Path = REPORT,
    out: TextIO = sys.stdout,
    log: TextIO = sys.stderr,
) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run the benchmarks and write bench/RESULTS.md."
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benches to run (default: all): {', '.join(BENCHES)}",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: rebuild the report from the results saved in bench/results/",
    )
    options = parser.parse_args(argv)
    unknown = [n for n in options.names if n not in benches]
    if unknown:
        print(f"unknown bench {unknown}; available: {', '.join(benches)}", file=log)
        return 2
    names = list(dict.fromkeys(options.names)) or list(benches)
    machine = this_machine()
    begun = datetime.now(UTC)
    if options.report_only:
        outcomes = load_saved(names, results)
    else:
        print(f"{len(names)} bench(es) on {report.describe(machine)}", file=log)
        outcomes = run_benches(names, benches, results, log)
    document = report.render(outcomes, report.Run(begun, machine, saved=options.report_only))
    output.write_text(document)
    print(document, file=out, end="")
    print(f"written to {output}", file=log)
    failed = [o for o in outcomes.values() if isinstance(o, report.Failed)]
    if any(o.error == INTERRUPTED for o in failed):
        return 130
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
