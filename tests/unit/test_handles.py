"""Handle normalisation (pure) and the `handles check` command."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from services.cli.handles import app
from services.common.handles import (
    HANDLE_MAX_LENGTH,
    HANDLE_PATTERN,
    InvalidHandle,
    is_normalised,
    normalise_handle,
)

NORMAL_FORM = re.compile(r"[a-z0-9._]{1,30}")


def reason_of(raw: str) -> str:
    with pytest.raises(InvalidHandle) as caught:
        normalise_handle(raw)
    return caught.value.reason


def test_seed_handle_loses_its_at_and_capital() -> None:
    assert normalise_handle("@Isignyomahaintercom") == "isignyomahaintercom"


def test_already_normal_handle_is_unchanged() -> None:
    assert normalise_handle("isere.le.departement") == "isere.le.departement"


def test_seed_haute_savoie_handle_is_invalid_because_of_its_space() -> None:
    assert reason_of("@haut Savoie_dep74") == "contains a space"


def test_invalid_handle_is_a_value_error_whose_message_is_the_reason() -> None:
    with pytest.raises(ValueError, match="contains a space"):
        normalise_handle("haut Savoie_dep74")


@pytest.mark.parametrize("raw", ["gers ledepartement", "gers\t", "\ngers", "gers\u00a0", " @gers"])
def test_whitespace_anywhere_is_a_space(raw: str) -> None:
    assert reason_of(raw) == "contains a space"


@pytest.mark.parametrize("raw", ["", "@"])
def test_empty_handle_is_invalid(raw: str) -> None:
    assert reason_of(raw) == "is empty"


def test_only_one_leading_at_is_stripped() -> None:
    assert "'@'" in reason_of("@@gers")


def test_handle_over_thirty_characters_is_invalid() -> None:
    assert normalise_handle("a" * HANDLE_MAX_LENGTH) == "a" * HANDLE_MAX_LENGTH
    assert reason_of("@" + "a" * (HANDLE_MAX_LENGTH + 1)) == (
        "is 31 characters long; at most 30 allowed"
    )


def test_forbidden_character_is_named() -> None:
    assert reason_of("ma-charente") == (
        "contains '-' (U+002D HYPHEN-MINUS), not one of a-z, 0-9, '.', '_'"
    )


@pytest.mark.parametrize(
    "raw",
    [
        "'; DROP TABLE accounts;--",
        "gers';DROP",
        "../../etc/passwd",
        "<script>alert(1)</script>",
        "gers\x00",
        "gers\x1b[31m",
        "g\u0435rs",  # Cyrillic e
        "\u212a",  # Kelvin sign: lower() would give an ASCII k
        "\u0130stanbul",  # dotted capital I: lower() gives i + combining dot
        "\uff47ers",  # fullwidth g
        "gers\u200b",  # zero-width space
        "gers\u0301",  # combining accent
        "a" * 100_000,
        "%2e%2e",
        "gers$",
    ],
)
def test_injection_shaped_and_lookalike_input_is_rejected(raw: str) -> None:
    with pytest.raises(InvalidHandle):
        normalise_handle(raw)


def test_is_normalised_accepts_only_the_normal_form() -> None:
    assert is_normalised("gersledepartement")
    assert is_normalised("ma_charente_maritime")
    assert not is_normalised("@gersledepartement")
    assert not is_normalised("Gers")
    assert not is_normalised("gers\n")
    assert not is_normalised("")
    assert not is_normalised("a" * 31)
    assert not is_normalised(None)


def test_pattern_constant_describes_the_normal_form() -> None:
    assert HANDLE_PATTERN == "^[a-z0-9._]{1,30}$"


@given(st.text())
def test_normalising_is_idempotent_and_outputs_the_normal_form(raw: str) -> None:
    try:
        handle = normalise_handle(raw)
    except InvalidHandle:
        return
    assert NORMAL_FORM.fullmatch(handle)
    assert is_normalised(handle)
    assert normalise_handle(handle) == handle


@given(st.from_regex(r"@?[A-Za-z0-9._]{1,30}", fullmatch=True))
def test_every_well_formed_handle_normalises_to_lower_case_without_at(raw: str) -> None:
    assert normalise_handle(raw) == raw.removeprefix("@").lower()


@given(
    st.text(min_size=0, max_size=10),
    st.characters(
        exclude_characters="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._"
    ),
    st.text(min_size=0, max_size=10),
)
def test_any_character_outside_the_alphabet_is_rejected(before: str, bad: str, after: str) -> None:
    raw = before + bad + after
    if raw.startswith("@") and "@" not in raw[1:] and bad == "@":
        return  # the one leading @ that normalising strips
    with pytest.raises(InvalidHandle):
        normalise_handle(raw)


@given(st.text(min_size=31, max_size=200))
def test_long_input_never_yields_a_handle_over_thirty_characters(raw: str) -> None:
    with contextlib.suppress(InvalidHandle):
        assert len(normalise_handle(raw)) <= HANDLE_MAX_LENGTH


# --- CLI ------------------------------------------------------------------------------------


def test_check_prints_one_line_per_handle_and_fails_on_any_invalid() -> None:
    result = CliRunner().invoke(
        app, ["check", "@Isignyomahaintercom", "haut Savoie_dep74", "@gersledepartement"]
    )
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "ok isignyomahaintercom",
        "invalid haut Savoie_dep74: contains a space",
        "ok gersledepartement",
    ]


def test_check_succeeds_when_every_handle_is_valid() -> None:
    result = CliRunner().invoke(app, ["check", "paris_maville", "@latenareze"])
    assert result.exit_code == 0
    assert result.output.splitlines() == ["ok paris_maville", "ok latenareze"]


def test_check_escapes_control_characters_of_the_input() -> None:
    result = CliRunner().invoke(app, ["check", "gers\x1b[2J"])
    assert result.exit_code == 1
    assert "\x1b" not in result.output
    assert result.output.startswith("invalid 'gers\\x1b[2J': contains '\\x1b'")


def test_check_needs_at_least_one_handle() -> None:
    assert CliRunner().invoke(app, ["check"]).exit_code != 0
