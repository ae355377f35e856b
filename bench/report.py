"""The benchmark report, bench/RESULTS.md: every figure of a `make bench` run beside the baseline
measured in the same run, their ratio and the figure's target, as Markdown a person reads.

Pure: the figures are declared as data (`FIGURES`, one `Figure` per figure of each bench, read
from the dict the bench's `run` returns); `render` turns {bench name: result or failure}, a
description of the machine and the date into the document. Reading /proc, the clock and the
saved results is bench/__main__.py's part.

Every ratio is value ÷ baseline, whatever the bench's own ratio says (bench/search.py reports
scan ÷ index): a throughput below 1 or a latency above 1 is slower than its baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bench import api, connections, pages, search

Path = tuple[str, ...]
"""Keys leading to a figure in a bench's result dict. One key may be `*`: a row per key of
the mapping found there (e.g. every page type of bench/pages.py)."""

NONE = "—"
EACH = "*"


@dataclass(frozen=True)
class Target:
    """What a figure must reach: its text in the report, and the test of the value (or of the
    ratio, `on="ratio"`)."""

    text: str
    holds: Callable[[Any], bool]
    on: Literal["value", "ratio"] = "value"


@dataclass(frozen=True)
class Baseline:
    """The figure's baseline, measured in the same run: its label and where its value is."""

    label: str
    path: Path


@dataclass(frozen=True)
class Figure:
    """One row of a bench's table. `label` may name `{key}` (the key matched by `*`) and
    `{item[...]}` (the mapping under that key). `ratio`: where the bench's own ratio is (it
    must be value ÷ baseline); without it, value ÷ baseline is computed when both are there."""

    label: str
    path: Path
    unit: str = ""
    baseline: Baseline | None = None
    ratio: Path | None = None
    target: Target | None = None


@dataclass(frozen=True)
class Row:
    """A figure as read from one result."""

    label: str
    value: Any  # a number, a bool, or None when the result does not hold it
    unit: str
    baseline_label: str | None
    baseline: Any
    ratio: float | None
    target: str | None
    met: bool | None  # None: no target, or the figure it is judged on is missing

    @property
    def measured(self) -> bool:
        """Whether the figure its target judges is in the result."""
        return self.met is not None


@dataclass(frozen=True)
class Failed:
    """A bench that raised: the error, and how long it ran."""

    error: str
    seconds: float | None = None


Outcome = Mapping[str, Any] | Failed


@dataclass(frozen=True)
class Machine:
    """What the figures were measured on."""

    cpu: str
    cores: int
    memory_gib: float
    os: str
    python: str
    load_average: tuple[float, float, float]


@dataclass(frozen=True)
class Run:
    """The run a report describes: when, on what, and whether the results come from this run or
    from the results saved by earlier ones."""

    date: datetime
    machine: Machine
    saved: bool = False


# --- the figures ----------------------------------------------------------------------------------


def at_least(limit: float) -> Callable[[Any], bool]:
    return lambda x: x >= limit


def at_most(limit: float) -> Callable[[Any], bool]:
    return lambda x: x <= limit


def below(limit: float) -> Callable[[Any], bool]:
    return lambda x: x < limit


def equal(expected: Any) -> Callable[[Any], bool]:
    return lambda x: x == expected


RAW = Baseline(
    "raw aiokafka consume + decode", ("baseline_raw_aiokafka_consume_decode", "events_per_s")
)
RAW_SECONDS = Baseline("raw read", ("baseline_raw_aiokafka_consume_decode", "seconds"))

# Targets without a constant in their bench's code, with where they were set.
SCORER_LIVE_RATIO = 0.1  # issue 3: one faust worker, ratio to the raw consume
SCORER_REBUILD_RATIO = 0.3  # issue 3: the rebuild path, on the standard scenario's topic
FRANCE_REBUILD_SECONDS = 60.0  # issues 3 and 16: the whole rebuild of France
VIEW_BYTES = 1024  # issue 3: Redis per ranked territory, every structure but the static geo sets
HISTORY_BYTES = 2048  # issue 18: the daily history, two years, per ranked territory
FRESHNESS_P99_MS = 1000.0  # bench/freshness.py: at 1,000 snapshots/s
CONNECTIONS_MAX_MS = 100.0  # issue 13: /healthz under 2,000 stalled sockets


def _scorer(*, live: bool, rebuild_ratio: bool, rebuild_seconds: float | None) -> list[Figure]:
    """bench/scorer.py's figures (scenarios standard, france, france-3d)."""
    rows = [
        Figure("snapshots pre-filled (realistic, timed apart)", ("prefill", "events")),
        Figure("pre-fill time", ("prefill", "seconds"), "s"),
    ]
    if live:  # the full-France scenarios do not measure the live path
        rows.append(
            Figure(
                "live path, one scorer worker",
                ("live_one_worker", "events_per_s"),
                "events/s",
                RAW,
                ("live_one_worker", "ratio"),
                Target(f"ratio ≥ {SCORER_LIVE_RATIO}", at_least(SCORER_LIVE_RATIO), "ratio"),
            )
        )
    rows += [
        Figure(
            "rebuild, the scorer's part alone",
            ("rebuild", "events_per_s"),
            "events/s",
            RAW,
            ("rebuild", "ratio"),
            Target(f"ratio ≥ {SCORER_REBUILD_RATIO}", at_least(SCORER_REBUILD_RATIO), "ratio")
            if rebuild_ratio
            else None,
        ),
        Figure(
            "rebuild, the publisher's part alone",
            ("publisher_rebuild", "events_per_s"),
            "events/s",
            RAW,
            ("publisher_rebuild", "ratio"),
        ),
        Figure(
            "`observatoire rebuild`, both parts in one read",
            ("whole_rebuild", "events_per_s"),
            "events/s",
            RAW,
            ("whole_rebuild", "ratio"),
        ),
        Figure(
            "`observatoire rebuild`, time",
            ("whole_rebuild", "seconds"),
            "s",
            RAW_SECONDS,
            target=Target(f"< {rebuild_seconds:g} s", below(rebuild_seconds))
            if rebuild_seconds
            else None,
        ),
        Figure("largest rebuild worker (RSS)", ("whole_rebuild", "largest_worker_rss_mb"), "MiB"),
        Figure("ranked territories", ("redis", "ranked_territories")),
        Figure("edition months open", ("redis", "edition_months")),
        Figure(
            "Redis per ranked territory, every structure but geo and history",
            ("redis", "bytes_per_ranked_territory", "all_but_geo"),
            "B",
            target=Target(f"≤ {VIEW_BYTES:,} B", at_most(VIEW_BYTES)),
        ),
        Figure(
            "Redis per ranked territory, daily history",
            ("redis", "bytes_per_ranked_territory", "history"),
            "B",
        ),
    ]
    if live:
        rows.append(Figure("live worker (RSS)", ("live_one_worker", "worker_rss_mb"), "MiB"))
    return rows


def _memory() -> list[Figure]:
    rows = []
    for key, months in (("1_month_open", "one edition month"), ("2_months_open", "two months")):
        rows += [
            Figure(
                f"Redis per ranked territory, {months} open, every structure but geo",
                (key, "bytes_per_ranked_territory", "all_but_geo"),
                "B",
                target=Target(f"≤ {VIEW_BYTES:,} B", at_most(VIEW_BYTES)),
            ),
            Figure(f"Redis used memory, {months} open", (key, "redis_used_memory_mb"), "MiB"),
        ]
    return [
        Figure("ranked territories", ("1_month_open", "ranked_territories")),
        *rows,
        Figure(
            "static geo sets per ranked territory",
            ("1_month_open", "bytes_per_ranked_territory", "geo_static"),
            "B",
        ),
    ]


def _scale() -> list[Figure]:
    rows = []
    for workers in (1, 2, 3):
        run = f"workers_{workers}"
        rows.append(
            Figure(
                f"{workers} scorer worker{'s' if workers > 1 else ''}, one Redis",
                (run, "events_per_s"),
                "events/s",
                RAW,
                (run, "ratio"),
            )
        )
    for workers in (1, 2, 3):
        rows.append(
            Figure(
                f"CPU per 1,000 events, {workers} worker{'s' if workers > 1 else ''}",
                (f"workers_{workers}", "cpu_seconds_per_1000_events"),
                "s",
                None
                if workers == 1
                else Baseline("1 worker", ("workers_1", "cpu_seconds_per_1000_events")),
            )
        )
    one = ("api_standings", "one_redis")
    cluster = ("api_standings", "cluster")
    return [
        *rows,
        Figure(
            "1 scorer worker, 3-master Redis Cluster",
            ("cluster_workers_1", "events_per_s"),
            "events/s",
            Baseline("1 worker, one Redis", ("workers_1", "events_per_s")),
            ("cluster_to_one_redis_workers_1",),
        ),
        Figure(
            "API standings on one Redis",
            (*one, "requests_per_second"),
            "requests/s",
        ),
        Figure(
            "API standings on the cluster",
            (*cluster, "requests_per_second"),
            "requests/s",
            Baseline("one Redis", (*one, "requests_per_second")),
            ("api_standings", "requests_per_s_cluster_to_one_redis"),
        ),
        Figure("API standings p99 on one Redis", (*one, "p99_ms"), "ms"),
        Figure(
            "API standings p99 on the cluster",
            (*cluster, "p99_ms"),
            "ms",
            Baseline("one Redis", (*one, "p99_ms")),
        ),
    ]


_ON_LOG = ("metrics_records", "on_log")
_SAMPLE = (*_ON_LOG, "compression_sample")
_KEY_VALUE = Baseline("key + value", (*_ON_LOG, "key_plus_value_bytes_mean"))

FIGURES: dict[str, list[Figure]] = {
    "search": [
        Figure(
            "`SearchIndex.search` p99, 36,249 territories",
            ("index", "p99_ms"),
            "ms",
            Baseline("plain scan", ("scan", "p99_ms")),
            target=Target(f"< {search.TARGET_P99_MS:g} ms", below(search.TARGET_P99_MS)),
        ),
        Figure(
            "`SearchIndex.search` p50",
            ("index", "p50_ms"),
            "ms",
            Baseline("plain scan", ("scan", "p50_ms")),
        ),
        Figure(
            "same territories in the same order as the scan",
            ("agree",),
            target=Target("yes", equal(True)),
        ),
        Figure("index build (median)", ("build_ms", "median"), "ms"),
    ],
    "connections": [
        Figure(
            "`/healthz` max under 2,000 stalled sockets",
            ("under_attack", "max_ms"),
            "ms",
            Baseline("no attack", ("baseline", "max_ms")),
            ("ratio_max",),
            Target(f"< {CONNECTIONS_MAX_MS:g} ms", below(CONNECTIONS_MAX_MS)),
        ),
        Figure(
            "`/healthz` p99 under 2,000 stalled sockets",
            ("under_attack", "p99_ms"),
            "ms",
            Baseline("no attack", ("baseline", "p99_ms")),
            ("ratio_p99",),
        ),
        Figure(
            "stalled sockets left open",
            ("closures", "still_open"),
            target=Target("0", equal(0)),
        ),
        Figure(
            "longest a stalled socket stayed open",
            ("closures", "longest_open_s"),
            "s",
            target=Target(
                f"≤ {connections.DEADLINE_SECONDS + 1:g} s (deadline + 1 s)",
                at_most(connections.DEADLINE_SECONDS + 1),
            ),
        ),
    ],
    "pages": [
        Figure(
            "{key} (`{item[path]}`), p99",
            ("pages", EACH, "client", "p99_ms"),
            "ms",
            Baseline("`/healthz`", ("baseline", "client", "p99_ms")),
            ("pages", EACH, "ratio_to_baseline", "p99"),
            Target(f"< {pages.TARGET_P99_MS:g} ms", below(pages.TARGET_P99_MS)),
        ),
    ],
    "memory": _memory(),
    "history": [
        Figure(
            "daily history per ranked territory, two years",
            ("bytes_per_ranked_territory", "history"),
            "B",
            Baseline("the values' own bytes", ("bytes_per_ranked_territory", "payload")),
            ("ratio_to_payload",),
            Target(f"≤ {HISTORY_BYTES:,} B", at_most(HISTORY_BYTES)),
        ),
        Figure("points written in bulk (rebuild)", ("bulk_points_per_second",), "points/s"),
        Figure(
            "one live day, per 1,000 points",
            ("live_day_ms_per_1000_points",),
            "ms",
        ),
    ],
    "api": [
        Figure(
            "`GET /api/v1/standings/departements?limit=50`, wrk 32 connections",
            ("standings", "requests_per_second"),
            "requests/s",
            Baseline("bare FastAPI `/constant`", ("baseline", "requests_per_second")),
            ("ratio",),
            Target(f"ratio ≥ {api.TARGET_RATIO:g}", at_least(api.TARGET_RATIO), "ratio"),
        ),
        Figure(
            "standings p99",
            ("standings", "p99_ms"),
            "ms",
            Baseline("`/constant`", ("baseline", "p99_ms")),
            target=Target(f"< {api.TARGET_P99_MS:g} ms", below(api.TARGET_P99_MS)),
        ),
        Figure(
            "standings p50",
            ("standings", "p50_ms"),
            "ms",
            Baseline("`/constant`", ("baseline", "p50_ms")),
        ),
        Figure("non-2xx responses", ("standings", "non_2xx")),
        Figure("Redis reads per request", ("redis_reads_per_request",)),
    ],
    "freshness": [
        Figure(
            "snapshot produced → visible in the API, p99",
            ("freshness_ms", "p99"),
            "ms",
            Baseline("API round trip p50 (`/healthz`)", ("baseline_api_round_trip_ms_p50",)),
            target=Target(f"< {FRESHNESS_P99_MS:g} ms", below(FRESHNESS_P99_MS)),
        ),
        Figure(
            "snapshot produced → visible in the API, p50",
            ("freshness_ms", "p50"),
            "ms",
            Baseline("API round trip p50 (`/healthz`)", ("baseline_api_round_trip_ms_p50",)),
        ),
        Figure(
            "load achieved",
            ("rate_achieved_per_s",),
            "snapshots/s",
            Baseline("asked", ("rate_target_per_s",)),
        ),
        Figure("probes seen", ("probes_seen",), "", Baseline("sent", ("probes_sent",))),
    ],
    "scorer": _scorer(live=True, rebuild_ratio=True, rebuild_seconds=None),
    "capacity": [
        Figure(
            "`obs.metrics.v1` record value (mean)",
            ("metrics_records", "value_bytes", "mean"),
            "B",
        ),
        Figure(
            "on the log, one record per batch",
            (*_ON_LOG, "uncompressed", "1_per_batch"),
            "B",
            _KEY_VALUE,
        ),
        Figure(
            "on the log, 256 KB batches",
            (*_ON_LOG, "uncompressed", "256KB_batches"),
            "B",
            _KEY_VALUE,
        ),
        Figure(
            "on the log, 256 KB batches, gzip (sample)",
            (*_SAMPLE, "gzip", "256KB_batches"),
            "B",
            Baseline("uncompressed, same sample", (*_SAMPLE, "none", "256KB_batches")),
        ),
        Figure(
            "validation CPU per metrics record",
            ("metrics_records", "validate_metrics_cpu_us_per_record"),
            "µs",
        ),
        Figure(
            "Redis per account (one month open, one published)",
            ("redis", "bytes_per_territory"),
            "B",
        ),
        Figure(
            "score event value (mean)",
            ("redis", "score_events", "value_bytes_mean"),
            "B",
        ),
        Figure("account mapping read whole (best)", ("redis", "mapping_reload", "best_s"), "s"),
    ],
    "scale": _scale(),
    "france-3d": _scorer(live=False, rebuild_ratio=False, rebuild_seconds=None),
    "france": _scorer(live=False, rebuild_ratio=False, rebuild_seconds=FRANCE_REBUILD_SECONDS),
}

TITLES = {
    "search": "territory search, the index against a plain scan",
    "connections": "`/healthz` while 2,000 stalled sockets are held",
    "pages": "server time of every page type, 300 requests each",
    "memory": "Redis memory per ranked territory, all of France",
    "history": "the daily history's memory and write cost, two years",
    "api": "API throughput and latency under wrk",
    "freshness": "snapshot produced → visible in the API, at 1,000 snapshots/s",
    "scorer": "scorer, standard scenario: live worker and rebuild",
    "capacity": "inputs of docs/capacity.md",
    "scale": "1 to 3 scorer workers, one Redis against a Redis Cluster",
    "france-3d": "full France, 3 days (109 k snapshots)",
    "france": "full France, 30 days (1.09 M snapshots): the rebuild",
}

BENCHES = tuple(FIGURES)
"""Every bench the report knows, in the order `make bench` runs them (quick ones first)."""


# --- reading a result -----------------------------------------------------------------------------


def lookup(result: Any, path: Path) -> Any:
    """The value at `path` in `result`, or None when it is not there."""
    for key in path:
        if not isinstance(result, Mapping) or key not in result:
            return None
        result = result[key]
    return result


def _expand(figure: Figure, result: Mapping[str, Any]) -> Iterator[tuple[str, Figure]]:
    """(label, figure with its `*` replaced by a key) for each key the `*` matches."""
    if EACH not in figure.path:
        yield figure.label, figure
        return
    where = figure.path.index(EACH)
    found = lookup(result, figure.path[:where])
    for key, item in found.items() if isinstance(found, Mapping) else []:

        def bound(path: Path | None, key: str = key) -> Path | None:
            return None if path is None else tuple(key if part == EACH else part for part in path)

        try:
            label = figure.label.format(key=key, item=item)
        except (KeyError, IndexError, TypeError):
            label = key
        baseline = figure.baseline
        yield (
            label,
            Figure(
                label,
                bound(figure.path) or (),
                figure.unit,
                None if baseline is None else Baseline(baseline.label, bound(baseline.path) or ()),
                bound(figure.ratio),
                figure.target,
            ),
        )


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _ratio(value: Any, baseline: Any) -> float | None:
    """value ÷ baseline to three significant figures, when both are numbers."""
    if not (_number(value) and _number(baseline)) or baseline == 0:
        return None
    return float(f"{value / baseline:.3g}")


def rows(name: str, result: Mapping[str, Any]) -> list[Row]:
    """The figures of bench `name` read from its result."""
    out = []
    for label, figure in (pair for f in FIGURES[name] for pair in _expand(f, result)):
        value = lookup(result, figure.path)
        baseline = None if figure.baseline is None else lookup(result, figure.baseline.path)
        if figure.ratio is not None:
            read = lookup(result, figure.ratio)
            ratio = float(read) if _number(read) else None
        else:
            ratio = _ratio(value, baseline)
        met = None
        if figure.target is not None:
            judged = ratio if figure.target.on == "ratio" else value
            if judged is not None:
                met = bool(figure.target.holds(judged))
        out.append(
            Row(
                label=label,
                value=value,
                unit=figure.unit,
                baseline_label=None if figure.baseline is None else figure.baseline.label,
                baseline=baseline,
                ratio=ratio,
                target=None if figure.target is None else figure.target.text,
                met=met,
            )
        )
    return out


@dataclass(frozen=True)
class Tally:
    """A bench's targets: how many, how many met, how many could not be judged."""

    targets: int
    met: int
    unmeasured: int

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.targets + other.targets, self.met + other.met, self.unmeasured + other.unmeasured
        )

    def text(self) -> str:
        if not self.targets:
            return "no target"
        unmeasured = f" ({self.unmeasured} not measured)" if self.unmeasured else ""
        return f"{self.met} of {self.targets} met{unmeasured}"


def tally(table: Sequence[Row]) -> Tally:
    judged = [row for row in table if row.target is not None]
    return Tally(
        len(judged),
        sum(1 for row in judged if row.met),
        sum(1 for row in judged if not row.measured),
    )


def outcome_line(name: str, outcome: Outcome) -> str:
    """One line: what a bench gave (the progress line and the report's overview)."""
    if isinstance(outcome, Failed):
        return f"failed: {one_line(outcome.error)}"
    return f"targets {tally(rows(name, outcome)).text()}"


# --- Markdown -------------------------------------------------------------------------------------


def one_line(text: str, limit: int = 300) -> str:
    """The first line of a text, cut to `limit` characters."""
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def cell(text: str) -> str:
    """Text safe in a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def number(x: Any) -> str:
    """A figure as written in the report: thousands separated, at most four decimals."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        text = f"{x:,.4f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return str(x)


def _with_unit(x: Any, unit: str) -> str:
    return number(x) if not unit or isinstance(x, bool) else f"{number(x)} {unit}"


def table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table, every cell escaped."""
    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(cell(c) for c in line) + " |" for line in body]
    return lines


def _row_cells(row: Row) -> list[str]:
    value = "missing" if row.value is None else _with_unit(row.value, row.unit)
    if row.baseline_label is None:
        baseline = NONE
    elif row.baseline is None:
        baseline = f"{row.baseline_label}: missing"
    else:
        baseline = f"{row.baseline_label}: {_with_unit(row.baseline, row.unit)}"
    if row.target is None:
        met = NONE
    elif row.met is None:
        met = "not measured"
    else:
        met = "yes" if row.met else "**no**"
    return [
        row.label,
        value,
        baseline,
        NONE if row.ratio is None else number(row.ratio),
        row.target or NONE,
        met,
    ]


HEADER = ("figure", "value", "baseline", "ratio", "target", "met")


def _when(result: Mapping[str, Any]) -> str:
    """When and how long a bench ran, as its result records it."""
    parts = []
    if isinstance(result.get("started_at"), str):
        parts.append(f"started {result['started_at']}")
    elif isinstance(result.get("saved_at"), str):
        parts.append(f"saved {result['saved_at']}")
    if _number(result.get("load_average_at_start")):
        parts.append(f"load average {number(result['load_average_at_start'])}")
    if _number(result.get("wall_seconds")):
        parts.append(f"{number(result['wall_seconds'])} s")
    return ", ".join(parts)


def describe(machine: Machine) -> str:
    """The machine in one line."""
    load = ", ".join(f"{x:.2f}" for x in machine.load_average)
    return (
        f"{machine.cpu}, {machine.cores} core{'s' if machine.cores != 1 else ''}; "
        f"{machine.memory_gib:.1f} GiB of memory; {machine.os}; Python {machine.python}; "
        f"load average {load} (1, 5, 15 min)"
    )


def render(outcomes: Mapping[str, Outcome], run: Run) -> str:
    """The report: title, date, machine, an overview of every bench, a table per bench that
    ran (or its error), and how many targets were met."""
    ran = [name for name in BENCHES if name in outcomes]
    not_run = [name for name in BENCHES if name not in outcomes]
    failed = [name for name in ran if isinstance(outcomes[name], Failed)]
    lines = ["# Benchmark results", ""]
    when = run.date.strftime("%Y-%m-%d %H:%M %Z").strip()
    if run.saved:
        lines.append(
            f"Written {when} by `python -m bench --report-only` from the results saved in "
            "`bench/results/` by earlier runs (each bench's date below); the machine is "
            "described as it was when the report was written."
        )
    else:
        lines.append(f"`make bench` (`python -m bench`), {when}.")
    lines.append("")
    if not_run and run.saved:
        lines += [
            f"Results for {len(ran)} of {len(BENCHES)} benchmarks; no saved result for "
            f"{', '.join(not_run)}.",
            "",
        ]
    elif not_run:
        lines += [
            f"**Partial run:** {len(ran)} of {len(BENCHES)} benchmarks; not run: "
            f"{', '.join(not_run)} (`make bench` runs every one).",
            "",
        ]
    lines += [
        f"Machine: {describe(run.machine)}.",
        "",
        "Each figure is measured in the same run as its baseline; ratio = value ÷ baseline (a "
        f"throughput below 1, or a time above 1, is slower than the baseline). {NONE}: does "
        "not apply.",
        "",
        "## Overview",
        "",
    ]
    absent = "no saved result" if run.saved else "not run"
    overview = []
    total = Tally(0, 0, 0)
    for name in BENCHES:
        outcome = outcomes.get(name)
        if outcome is None:
            overview.append([name, TITLES[name], absent, NONE])
        elif isinstance(outcome, Failed):
            overview.append([name, TITLES[name], outcome_line(name, outcome), NONE])
        else:
            counted = tally(rows(name, outcome))
            total += counted
            ran_when = f"ran ({_when(outcome)})" if _when(outcome) else "ran"
            overview.append([name, TITLES[name], ran_when, counted.text()])
    lines += table(("bench", "what", "outcome", "targets"), overview)
    for name in ran:
        outcome = outcomes[name]
        lines += ["", f"## {name}: {TITLES[name]}", ""]
        if isinstance(outcome, Failed):
            seconds = "" if outcome.seconds is None else f" after {number(outcome.seconds)} s"
            error = one_line(outcome.error).replace("`", "'")
            lines.append(f"**Failed**{seconds}: `{error}`")
            continue
        if _when(outcome):
            lines += [f"Ran: {_when(outcome)}.", ""]
        lines += table(HEADER, [_row_cells(row) for row in rows(name, outcome)])
    lines += ["", "## Summary", "", summary(total, failed, not_run, absent)]
    return "\n".join(lines) + "\n"


def summary(
    total: Tally, failed: Sequence[str], not_run: Sequence[str], absent: str = "not run"
) -> str:
    """The last line: targets met, and the benches that give none."""
    text = f"**Targets met: {total.met} of {total.targets}**"
    if total.unmeasured:
        text += f" ({total.unmeasured} not measured)"
    text += "."
    if failed:
        text += f" Failed: {', '.join(failed)} (their targets are not counted)."
    if not_run:
        text += f" {absent.capitalize()}: {', '.join(not_run)}."
    return text


# --- the machine ----------------------------------------------------------------------------------


def machine_from(
    cpuinfo: str,
    meminfo: str,
    os_release: str,
    python: str,
    load_average: tuple[float, float, float],
) -> Machine:
    """The machine from the texts of /proc/cpuinfo, /proc/meminfo and /etc/os-release."""
    cores = 0
    cpu = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            cores += 1
        elif key in ("model name", "Hardware", "cpu model") and not cpu:
            cpu = value.strip()
    memory_kib = 0
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    system = "unknown OS"
    for line in os_release.splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            system = value.strip().strip('"')
    return Machine(
        cpu=cpu or "unknown CPU",
        cores=cores,
        memory_gib=round(memory_kib / 2**20, 1),
        os=system,
        python=python,
        load_average=load_average,
    )
