"""bench/RESULTS.md: every figure of every bench read right from a result shaped as the bench
returns it, judged against its target, written as well-formed Markdown; benches not run or
failed are said so; `python -m bench` keeps going past a failing bench. No benchmark runs here:
the results are small dicts shaped like those of each bench's `run`, and the benches given to
`python -m bench` are stand-ins."""

from __future__ import annotations

import copy
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.__main__ import BENCHES, main

MACHINE = report.Machine("AMD EPYC", 2, 23.5, "Debian GNU/Linux 12 (bookworm)", "3.11.7", (1, 2, 3))
DATE = datetime(2026, 12, 7, 11, 30, tzinfo=UTC)
RUN = report.Run(DATE, MACHINE)

SCORER_STANDARD: dict[str, Any] = {
    "scenario": "standard",
    "prefill": {"producer_batch_bytes": 1, "events": 62500, "accounts": 625, "seconds": 61.2},
    "baseline_raw_aiokafka_consume_decode": {"events_per_s": 20000, "seconds": 3.1},
    "rebuild": {"events_per_s": 8000, "seconds": 7.8, "ratio": 0.4, "largest_worker_rss_mb": 300},
    "publisher_rebuild": {"seconds": 5.0, "events_per_s": 12500, "ratio": 0.625},
    "whole_rebuild": {
        "seconds": 10.0,
        "events_per_s": 6250,
        "ratio": 0.3125,
        "largest_worker_rss_mb": 410,
    },
    "live_one_worker": {"events_per_s": 1800, "ratio": 0.09, "worker_rss_mb": 150},
    "redis": {
        "ranked_territories": 625,
        "edition_months": 1,
        "bytes_per_ranked_territory": {"all_but_geo": 900, "geo_static": 115, "history": 400},
    },
}

FRANCE: dict[str, Any] = {
    "scenario": "france",
    "prefill": {"events": 1087470, "seconds": 286.5},
    "baseline_raw_aiokafka_consume_decode": {"events_per_s": 57611, "seconds": 18.9},
    "rebuild": {"events_per_s": 8612, "seconds": 126.3, "ratio": 0.149},
    "publisher_rebuild": {"seconds": 24.1, "events_per_s": 45148, "ratio": 0.784},
    "whole_rebuild": {
        "seconds": 59.9,
        "events_per_s": 18155,
        "ratio": 0.315,
        "largest_worker_rss_mb": 1713,
    },
    "live_one_worker": {"events_per_s": 0, "ratio": 0.0, "worker_rss_mb": 0},
    "redis": {
        "ranked_territories": 36249,
        "edition_months": 2,
        "bytes_per_ranked_territory": {"all_but_geo": 1155, "history": 1408},
    },
}

RESULTS: dict[str, dict[str, Any]] = {
    "search": {
        "index": {"p50_ms": 0.0192, "p99_ms": 0.2031, "max_ms": 1.4317},
        "scan": {"p50_ms": 18.6163, "p99_ms": 26.8258},
        "ratio": {"p50": 969.6, "p99": 132.1},  # scan ÷ index: not what the report shows
        "agree": True,
        "build_ms": {"median": 283.0},
        "targets": {"p99_ms_below": 10.0, "met": True},
    },
    "connections": {
        "baseline": {"p50_ms": 1.79, "p99_ms": 2.57, "max_ms": 5.99},
        "under_attack": {"p50_ms": 1.69, "p99_ms": 4.68, "max_ms": 31.66},
        "ratio_p99": 1.82,
        "ratio_max": 5.29,
        "closures": {"closed": 2000, "still_open": 0, "longest_open_s": 2.04},
    },
    "pages": {
        "baseline": {"path": "/healthz", "client": {"p50_ms": 0.937, "p99_ms": 1.374}},
        "pages": {
            "accueil": {
                "path": "/",
                "status": 200,
                "client": {"p50_ms": 3.584, "p99_ms": 5.623},
                "ratio_to_baseline": {"p50": 3.8, "p99": 4.1},
            },
            "classement-page-2": {
                "path": "/classements/petites-villes?page=2",
                "status": 200,
                "client": {"p50_ms": 7.935, "p99_ms": 31.2},
                "ratio_to_baseline": {"p50": 8.5, "p99": 22.7},
            },
            "donnees": {"path": "/donnees", "status": 404},  # not built: no timings
        },
        "not_served": {"donnees": 404},
    },
    "memory": {
        "1_month_open": {
            "ranked_territories": 36249,
            "bytes_per_ranked_territory": {"all_but_geo": 681, "geo_static": 115},
            "redis_used_memory_mb": 60.2,
        },
        "2_months_open": {
            "ranked_territories": 36249,
            "bytes_per_ranked_territory": {"all_but_geo": 1024, "geo_static": 115},
            "redis_used_memory_mb": 75.9,
        },
    },
    "history": {
        "bytes_per_ranked_territory": {"payload": 6702, "history": 7359},
        "ratio_to_payload": 1.1,
        "target": "history ≤ 2048 B",
        "met": False,
        "bulk_points_per_second": 20511,
        "live_day_ms_per_1000_points": 555.9,
    },
    "api": {
        "standings": {
            "requests_per_second": 2320.75,
            "p50_ms": 13.31,
            "p99_ms": 21.44,
            "non_2xx": 0,
        },
        "baseline": {"requests_per_second": 3337.95, "p50_ms": 8.77, "p99_ms": 15.77},
        "ratio": 0.695,
        "redis_reads_per_request": 0.084,
    },
    "freshness": {
        "rate_target_per_s": 1000,
        "rate_achieved_per_s": 998,
        "probes_sent": 80,
        "probes_seen": 79,
        "freshness_ms": {"p50": 90.2, "p99": 180.5},
        "baseline_api_round_trip_ms_p50": 1.2,
    },
    "scorer": SCORER_STANDARD,
    "capacity": {
        "metrics_records": {
            "value_bytes": {"mean": 2176.8},
            "on_log": {
                "key_plus_value_bytes_mean": 2203.8,
                "uncompressed": {"1_per_batch": 2273.8, "256KB_batches": 2214.2},
                "compression_sample": {
                    "none": {"256KB_batches": 2225.1},
                    "gzip": {"256KB_batches": 422.0},
                },
            },
            "validate_metrics_cpu_us_per_record": 66.6,
        },
        "redis": {
            "bytes_per_territory": 2079.0,
            "score_events": {"value_bytes_mean": 598.9},
            "mapping_reload": {"best_s": 0.171},
        },
    },
    "scale": {
        "baseline_raw_aiokafka_consume_decode": {"events_per_s": 21931},
        "workers_1": {"events_per_s": 985, "ratio": 0.045, "cpu_seconds_per_1000_events": 0.599},
        "workers_2": {"events_per_s": 1558, "ratio": 0.071, "cpu_seconds_per_1000_events": 0.538},
        "workers_3": {"events_per_s": 1791, "ratio": 0.082, "cpu_seconds_per_1000_events": 0.495},
        "cluster_workers_1": {"events_per_s": 1312, "ratio": 0.06},
        "cluster_to_one_redis_workers_1": 1.331,
        "api_standings": {
            "one_redis": {"requests_per_second": 1388.21, "p99_ms": 50.67},
            "cluster": {"requests_per_second": 1171.72, "p99_ms": 60.4},
            "requests_per_s_cluster_to_one_redis": 0.844,
        },
    },
    "france-3d": {**FRANCE, "scenario": "france-3d"},
    "france": FRANCE,
}

# Every row of every bench: label -> (value, baseline, ratio, met).
EXPECTED: dict[str, dict[str, tuple[Any, Any, Any, Any]]] = {
    "search": {
        "`SearchIndex.search` p99, 36,249 territories": (0.2031, 26.8258, 0.00757, True),
        "`SearchIndex.search` p50": (0.0192, 18.6163, 0.00103, None),
        "same territories in the same order as the scan": (True, None, None, True),
        "index build (median)": (283.0, None, None, None),
    },
    "connections": {
        "`/healthz` max under 2,000 stalled sockets": (31.66, 5.99, 5.29, True),
        "`/healthz` p99 under 2,000 stalled sockets": (4.68, 2.57, 1.82, None),
        "stalled sockets left open": (0, None, None, True),
        "longest a stalled socket stayed open": (2.04, None, None, True),
    },
    "pages": {
        "accueil (`/`), p99": (5.623, 1.374, 4.1, True),
        "classement-page-2 (`/classements/petites-villes?page=2`), p99": (31.2, 1.374, 22.7, False),
        "donnees (`/donnees`), p99": (None, 1.374, None, None),
    },
    "memory": {
        "ranked territories": (36249, None, None, None),
        "Redis per ranked territory, one edition month open, every structure but geo": (
            681,
            None,
            None,
            True,
        ),
        "Redis used memory, one edition month open": (60.2, None, None, None),
        "Redis per ranked territory, two months open, every structure but geo": (
            1024,
            None,
            None,
            True,
        ),
        "Redis used memory, two months open": (75.9, None, None, None),
        "static geo sets per ranked territory": (115, None, None, None),
    },
    "history": {
        "daily history per ranked territory, two years": (7359, 6702, 1.1, False),
        "points written in bulk (rebuild)": (20511, None, None, None),
        "one live day, per 1,000 points": (555.9, None, None, None),
    },
    "api": {
        "`GET /api/v1/standings/departements?limit=50`, wrk 32 connections": (
            2320.75,
            3337.95,
            0.695,
            True,
        ),
        "standings p99": (21.44, 15.77, 1.36, True),
        "standings p50": (13.31, 8.77, 1.52, None),
        "non-2xx responses": (0, None, None, None),
        "Redis reads per request": (0.084, None, None, None),
    },
    "freshness": {
        "snapshot produced → visible in the API, p99": (180.5, 1.2, 150.0, True),
        "snapshot produced → visible in the API, p50": (90.2, 1.2, 75.2, None),
        "load achieved": (998, 1000, 0.998, None),
        "probes seen": (79, 80, 0.988, None),
    },
    "scorer": {
        "snapshots pre-filled (realistic, timed apart)": (62500, None, None, None),
        "pre-fill time": (61.2, None, None, None),
        "live path, one scorer worker": (1800, 20000, 0.09, False),
        "rebuild, the scorer's part alone": (8000, 20000, 0.4, True),
        "rebuild, the publisher's part alone": (12500, 20000, 0.625, None),
        "`observatoire rebuild`, both parts in one read": (6250, 20000, 0.3125, None),
        "`observatoire rebuild`, time": (10.0, 3.1, 3.23, None),
        "largest rebuild worker (RSS)": (410, None, None, None),
        "ranked territories": (625, None, None, None),
        "edition months open": (1, None, None, None),
        "Redis per ranked territory, every structure but geo and history": (900, None, None, True),
        "Redis per ranked territory, daily history": (400, None, None, None),
        "live worker (RSS)": (150, None, None, None),
    },
    "capacity": {
        "`obs.metrics.v1` record value (mean)": (2176.8, None, None, None),
        "on the log, one record per batch": (2273.8, 2203.8, 1.03, None),
        "on the log, 256 KB batches": (2214.2, 2203.8, 1.0, None),
        "on the log, 256 KB batches, gzip (sample)": (422.0, 2225.1, 0.19, None),
        "validation CPU per metrics record": (66.6, None, None, None),
        "Redis per account (one month open, one published)": (2079.0, None, None, None),
        "score event value (mean)": (598.9, None, None, None),
        "account mapping read whole (best)": (0.171, None, None, None),
    },
    "scale": {
        "1 scorer worker, one Redis": (985, 21931, 0.045, None),
        "2 scorer workers, one Redis": (1558, 21931, 0.071, None),
        "3 scorer workers, one Redis": (1791, 21931, 0.082, None),
        "CPU per 1,000 events, 1 worker": (0.599, None, None, None),
        "CPU per 1,000 events, 2 workers": (0.538, 0.599, 0.898, None),
        "CPU per 1,000 events, 3 workers": (0.495, 0.599, 0.826, None),
        "1 scorer worker, 3-master Redis Cluster": (1312, 985, 1.331, None),
        "API standings on one Redis": (1388.21, None, None, None),
        "API standings on the cluster": (1171.72, 1388.21, 0.844, None),
        "API standings p99 on one Redis": (50.67, None, None, None),
        "API standings p99 on the cluster": (60.4, 50.67, 1.19, None),
    },
}
_FRANCE_ROWS = {
    "snapshots pre-filled (realistic, timed apart)": (1087470, None, None, None),
    "pre-fill time": (286.5, None, None, None),
    "rebuild, the scorer's part alone": (8612, 57611, 0.149, None),
    "rebuild, the publisher's part alone": (45148, 57611, 0.784, None),
    "`observatoire rebuild`, both parts in one read": (18155, 57611, 0.315, None),
    "`observatoire rebuild`, time": (59.9, 18.9, 3.17, None),
    "largest rebuild worker (RSS)": (1713, None, None, None),
    "ranked territories": (36249, None, None, None),
    "edition months open": (2, None, None, None),
    "Redis per ranked territory, every structure but geo and history": (1155, None, None, False),
    "Redis per ranked territory, daily history": (1408, None, None, None),
}
EXPECTED["france-3d"] = _FRANCE_ROWS
EXPECTED["france"] = _FRANCE_ROWS | {"`observatoire rebuild`, time": (59.9, 18.9, 3.17, True)}


def table_of(name: str, result: dict[str, Any]) -> dict[str, tuple[Any, Any, Any, Any]]:
    return {r.label: (r.value, r.baseline, r.ratio, r.met) for r in report.rows(name, result)}


def cells(line: str) -> list[str]:
    """The cells of a Markdown table row (escaped pipes stay inside their cell)."""
    assert line.startswith("|") and line.endswith("|"), line
    return [c.strip() for c in re.split(r"(?<!\\)\|", line[1:-1])]


def tables(document: str) -> list[list[list[str]]]:
    """Every table of a document, as rows of cells (the separator row left out)."""
    found: list[list[list[str]]] = []
    previous = ""
    for line in document.splitlines():
        if line.startswith("|"):
            if not previous.startswith("|"):
                found.append([])
            if not re.fullmatch(r"\|(---\|)+", line):
                found[-1].append(cells(line))
        previous = line
    return found


def test_every_bench_the_main_runs_has_its_figures_and_a_title() -> None:
    assert tuple(BENCHES) == report.BENCHES == tuple(report.TITLES)
    assert set(EXPECTED) == set(report.BENCHES) == set(RESULTS)


@pytest.mark.parametrize("name", report.BENCHES)
def test_every_row_reads_value_baseline_ratio_and_met(name: str) -> None:
    assert table_of(name, RESULTS[name]) == EXPECTED[name]


def test_a_ratio_is_always_value_over_baseline_even_where_the_bench_inverts_it() -> None:
    index = report.rows("search", RESULTS["search"])[0]
    assert index.ratio == pytest.approx(0.2031 / 26.8258, rel=1e-2)
    assert index.ratio != RESULTS["search"]["ratio"]["p99"]


@pytest.mark.parametrize(
    ("name", "path", "value", "label", "met"),
    [
        ("api", ("ratio",), 0.5, "`GET /api/v1/standings/departements?limit=50`", True),
        ("api", ("ratio",), 0.499, "`GET /api/v1/standings/departements?limit=50`", False),
        ("api", ("standings", "p99_ms"), 25.0, "standings p99", False),
        ("api", ("standings", "p99_ms"), 24.99, "standings p99", True),
        ("history", ("bytes_per_ranked_territory", "history"), 2048, "daily history", True),
        ("history", ("bytes_per_ranked_territory", "history"), 2049, "daily history", False),
        ("france", ("whole_rebuild", "seconds"), 60.0, "`observatoire rebuild`, time", False),
        ("connections", ("under_attack", "max_ms"), 100.0, "`/healthz` max", False),
        ("connections", ("closures", "still_open"), 1, "stalled sockets left open", False),
        ("connections", ("closures", "longest_open_s"), 3.0, "longest a stalled", True),
        ("search", ("agree",), False, "same territories", False),
        ("freshness", ("freshness_ms", "p99"), 1000.0, "snapshot produced", False),
        ("scorer", ("live_one_worker", "ratio"), 0.1, "live path", True),
        ("scorer", ("rebuild", "ratio"), 0.29, "rebuild, the scorer's", False),
        (
            "memory",
            ("2_months_open", "bytes_per_ranked_territory", "all_but_geo"),
            1025,
            "Redis per ranked territory, two months",
            False,
        ),
    ],
)
def test_targets_are_judged_at_their_bounds(
    name: str, path: tuple[str, ...], value: Any, label: str, met: bool
) -> None:
    result = copy.deepcopy(RESULTS[name])
    *parents, last = path
    place = result
    for key in parents:
        place = place[key]
    place[last] = value
    judged = [r for r in report.rows(name, result) if r.label.startswith(label) and r.target]
    assert judged and judged[0].met is met


def test_a_figure_missing_from_a_result_is_not_measured_and_counted_so() -> None:
    result = copy.deepcopy(RESULTS["api"])
    del result["standings"]["p99_ms"]
    del result["ratio"]
    table = report.rows("api", result)
    assert [(r.value, r.met) for r in table[:2]] == [(2320.75, None), (None, None)]
    assert table[0].ratio is None  # the bench's own ratio is not recomputed from other fields
    assert report.tally(table) == report.Tally(targets=2, met=0, unmeasured=2)
    document = report.render({"api": result}, RUN)
    assert "| standings p99 | missing | `/constant`: 15.77 ms | — | < 25 ms | not measured |" in (
        document
    )
    assert "**Targets met: 0 of 2** (2 not measured)." in document


def test_a_full_report_has_the_date_the_machine_every_bench_and_the_targets_met() -> None:
    document = report.render(RESULTS, RUN)
    assert document.startswith("# Benchmark results\n")
    assert "2026-12-07 11:30 UTC" in document
    assert (
        "Machine: AMD EPYC, 2 cores; 23.5 GiB of memory; Debian GNU/Linux 12 (bookworm); "
        "Python 3.11.7; load average 1.00, 2.00, 3.00 (1, 5, 15 min)."
    ) in document
    assert "Partial run" not in document and "not run" not in document
    for name in report.BENCHES:
        assert f"\n## {name}: {report.TITLES[name]}\n" in document
    judged = [met for rows in EXPECTED.values() for (_, _, _, met) in rows.values()]
    targets = sum(1 for met in judged if met is not None) + 1  # + the page without timings
    met = sum(1 for met in judged if met)
    assert document.rstrip().endswith(f"**Targets met: {met} of {targets}** (1 not measured).")
    assert (
        "| api | API throughput and latency under wrk | ran | 2 of 2 met |" in document
    )  # no date or time recorded in these results
    assert "| capacity | inputs of docs/capacity.md | ran | no target |" in document


def test_every_table_is_well_formed() -> None:
    failed = {"api": report.Failed("RuntimeError: a | b\nsecond line", 3.2)}
    document = report.render({**RESULTS, **failed}, RUN)
    found = tables(document)
    assert len(found) == 1 + len(report.BENCHES) - 1  # the overview, then each bench but api
    overview, *benches = found
    assert overview[0] == ["bench", "what", "outcome", "targets"]
    assert benches and all(t[0] == list(report.HEADER) for t in benches)
    for table in found:
        assert len({len(row) for row in table}) == 1, table
    for line in document.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            assert "\n" not in line


def test_cells_with_pipes_or_newlines_stay_one_cell() -> None:
    assert report.cell("a | b\nc") == "a \\| b c"
    line = report.table(("x", "y"), [["a | b", "c"]])[2]
    assert cells(line) == ["a \\| b", "c"]


def test_a_partial_run_lists_only_what_ran_and_says_so() -> None:
    document = report.render({"connections": RESULTS["connections"]}, RUN)
    assert "**Partial run:** 1 of 12 benchmarks; not run: search, pages, memory" in document
    assert "## connections:" in document
    assert "## api:" not in document
    assert "| api | API throughput and latency under wrk | not run | — |" in document
    assert document.rstrip().endswith(
        "**Targets met: 3 of 3**. Not run: search, pages, memory, history, api, freshness, "
        "scorer, capacity, scale, france-3d, france."
    )


def test_a_failed_bench_is_reported_with_its_error_and_its_targets_not_counted() -> None:
    error = "SystemExit: bench api needs wrk (Debian package `wrk`: apt-get install wrk)"
    document = report.render(
        {"search": RESULTS["search"], "api": report.Failed(error + "\nmore", 0.1)}, RUN
    )
    assert (
        "| api | API throughput and latency under wrk | failed: SystemExit: bench api needs wrk "
        "(Debian package `wrk`: apt-get install wrk) | — |"
    ) in document
    assert (
        "## api: API throughput and latency under wrk\n\n**Failed** after 0.1 s: "
        "`SystemExit: bench api needs wrk (Debian package 'wrk': apt-get install wrk)`"
    ) in document
    assert "more" not in document
    assert "**Targets met: 2 of 2**. Failed: api (their targets are not counted)." in document


def test_a_report_from_saved_results_says_where_they_come_from() -> None:
    saved = {**RESULTS["search"], "saved_at": "2026-12-07 06:51:24 UTC", "wall_seconds": 7.8}
    document = report.render({"search": saved}, report.Run(DATE, MACHINE, saved=True))
    assert "`python -m bench --report-only` from the results saved in `bench/results/`" in document
    assert "Results for 1 of 12 benchmarks; no saved result for connections, pages" in document
    assert "ran (saved 2026-12-07 06:51:24 UTC, 7.8 s)" in document
    assert "| api | API throughput and latency under wrk | no saved result | — |" in document
    assert "Partial run" not in document


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2320.75, "2,320.75"),
        (1087470, "1,087,470"),
        (0.0192, "0.0192"),
        (17.0, "17"),
        (0.00757, "0.0076"),
        (True, "yes"),
        (False, "no"),
    ],
)
def test_numbers_are_written_for_a_person(value: Any, text: str) -> None:
    assert report.number(value) == text


def test_the_machine_is_read_from_proc_and_os_release() -> None:
    cpuinfo = "".join(f"processor\t: {n}\nmodel name\t: AMD EPYC 7B13\n\n" for n in (0, 1))
    meminfo = "MemTotal:       24683784 kB\nMemFree:        21854124 kB\n"
    os_release = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
    machine = report.machine_from(cpuinfo, meminfo, os_release, "3.11.7", (0.5, 0.25, 0.125))
    assert machine == report.Machine(
        "AMD EPYC 7B13", 2, 23.5, "Debian GNU/Linux 12 (bookworm)", "3.11.7", (0.5, 0.25, 0.125)
    )
    unknown = report.machine_from("", "", "", "3.11.7", (0, 0, 0))
    assert (unknown.cpu, unknown.cores, unknown.os) == ("unknown CPU", 0, "unknown OS")


def _raises_runtime() -> dict[str, Any]:
    raise RuntimeError("the broker did not start")


def _raises_exit() -> dict[str, Any]:
    raise SystemExit("bench api needs wrk")


def test_python_m_bench_goes_on_past_a_failing_bench_and_writes_the_report(
    tmp_path: Path,
) -> None:
    ran: list[str] = []

    def stand_in(name: str) -> Any:
        def run() -> dict[str, Any]:
            ran.append(name)
            return copy.deepcopy(RESULTS[name])

        return run

    benches = {
        "search": stand_in("search"),
        "api": _raises_exit,
        "freshness": _raises_runtime,
        "connections": stand_in("connections"),
    }
    out, log = io.StringIO(), io.StringIO()
    output = tmp_path / "RESULTS.md"
    status = main(
        [], benches=benches, results=tmp_path / "results", output=output, out=out, log=log
    )
    assert status == 1
    assert ran == ["search", "connections"]
    document = output.read_text()
    assert out.getvalue() == document
    assert (
        "| api | API throughput and latency under wrk | failed: SystemExit: bench api " in document
    )
    assert "failed: RuntimeError: the broker did not start |" in document
    assert "## connections:" in document and "## search:" in document
    saved = json.loads((tmp_path / "results" / "search.json").read_text())
    assert saved["index"] == RESULTS["search"]["index"]
    assert {"started_at", "load_average_at_start", "wall_seconds"} <= set(saved)
    assert not (tmp_path / "results" / "api.json").exists()
    progress = log.getvalue()
    assert re.search(r"\[bench 1/4\] search: started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", progress)
    assert "[bench 1/4] search: targets 2 of 2 met after " in progress
    assert "[bench 2/4] api: failed: SystemExit: bench api needs wrk after " in progress
    assert "[bench 4/4] connections: targets 3 of 3 met after " in progress
    assert "Traceback" in progress

    # The report rebuilt from what was saved: the two that ran.
    rebuilt = tmp_path / "REBUILT.md"
    status = main(
        ["--report-only"],
        benches=benches,
        results=tmp_path / "results",
        output=rebuilt,
        out=io.StringIO(),
        log=io.StringIO(),
    )
    assert status == 0
    again = rebuilt.read_text()
    assert "ran (started " in again and "Results for 2 of 12 benchmarks" in again
    assert "**Targets met: 5 of 5**." in again


def test_python_m_bench_refuses_an_unknown_bench(tmp_path: Path) -> None:
    log = io.StringIO()
    status = main(["nope"], results=tmp_path, output=tmp_path / "R.md", out=io.StringIO(), log=log)
    assert status == 2
    assert "unknown bench ['nope']" in log.getvalue()
    assert not (tmp_path / "R.md").exists()
