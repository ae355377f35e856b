"""What a client sends cannot colour, reorder or forge the services' log lines."""

from __future__ import annotations

import logging
import sys

from hypothesis import given
from hypothesis import strategies as st

from services.common.lifecycle import EscapingFormatter, escape_controls


def test_ansi_escapes_bidi_overrides_and_line_breaks_are_written_as_escapes():
    text = "dep-32\x1b[31m\u202eexe.txt\r\nFAKE 2026 INFO ok\x00\x85\u2066"
    assert escape_controls(text) == (
        "dep-32\\x1b[31m\\u202eexe.txt\\x0d\\x0aFAKE 2026 INFO ok\\x00\\x85\\u2066"
    )


def test_french_text_and_printable_unicode_are_left_alone():
    text = "Métropole de Lyon — « palmarès » n° 1, Côte-d’Or 💡"
    assert escape_controls(text) == text


@given(st.text())
def test_escaped_text_has_no_control_or_reordering_character(text):
    escaped = escape_controls(text)
    assert all(
        not (ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch in "\u061c\u200e\u200f\u2028\u2029")
        and not ("\u202a" <= ch <= "\u202e" or "\u2066" <= ch <= "\u2069")
        for ch in escaped
    )


def test_a_record_is_one_line_and_its_traceback_keeps_its_line_breaks():
    formatter = EscapingFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("bad \x1b[2J input")
    except ValueError:
        record = logging.LogRecord(
            "api", logging.WARNING, __file__, 1, "path %s", ("/a\nFAKE",), sys.exc_info()
        )
    lines = formatter.format(record).split("\n")
    assert lines[0] == "WARNING path /a\\x0aFAKE"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: bad \\x1b[2J input"
