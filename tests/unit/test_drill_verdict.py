"""A drill's verdict: exact only when nothing is lost, doubled or different from the batch."""

from __future__ import annotations

from tests.drills.verdict import COLUMNS, Verdict, table


def test_a_verdict_is_exact_only_with_nothing_lost_doubled_or_different() -> None:
    good = Verdict("flush", sent=100_000, applied=100_000, lost=0, doubled=0, equal_to_batch=True)
    assert good.exact
    assert good.line().startswith("DRILL flush: exact — sent 100,000, applied 100,000, lost 0")
    for change in ({"lost": 1}, {"doubled": 2}, {"equal_to_batch": False}, {"error": "boom"}):
        bad = Verdict("flush", **change)  # type: ignore[arg-type]
        assert not bad.exact and "NOT EXACT" in bad.line()
    noted = Verdict("api", figures={"p99": "12.0 ms"})
    noted.expect(False, "3 errors")
    assert not noted.exact and "3 errors" in noted.line() and "p99 12.0 ms" in noted.line()


def test_the_table_has_a_row_per_drill_and_counts_the_exact_ones() -> None:
    verdicts = [Verdict("a", lost=0, recover_seconds=3.25), Verdict("b|c", doubled=1)]
    lines = table(verdicts).splitlines()
    assert all(line.count("|") == len(COLUMNS) + 1 for line in lines[:4])
    assert "3.2 s" in lines[2] and "b/c" in lines[3] and "NOT EXACT" in lines[3]
    assert lines[-1] == "1 of 2 drills exact."
