"""Instagram handle normalisation: the one place that decides what a valid handle is.

The contract's normal form is lower case, without `@`, made of `[a-z0-9._]`, 1 to 30
characters. Normalising only strips one leading `@` and lower-cases; anything else that is
wrong is reported, never repaired, so a typo in a source never becomes someone else's account.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

HANDLE_MAX_LENGTH: Final = 30
# JSON Schema / pydantic form of the normal form (ECMA-262 and Rust regex compatible).
HANDLE_PATTERN: Final = r"^[a-z0-9._]{1,30}$"
_NORMALISED: Final = re.compile(r"[a-z0-9._]{1,30}")
# Checked before lower-casing: str.lower() maps some non-ASCII lookalikes (the Kelvin sign
# U+212A) to ASCII letters, and those must stay invalid.
_ALLOWED_RAW: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._")


class InvalidHandle(ValueError):
    """A handle that cannot be normalised; `reason` says why in plain words."""

    def __init__(self, raw: str, reason: str) -> None:
        super().__init__(reason)
        self.raw = raw
        self.reason = reason


def normalise_handle(raw: str) -> str:
    """Return the contract's normal form of `raw`, or raise InvalidHandle with the reason."""
    if not isinstance(raw, str):
        raise InvalidHandle(repr(raw), "is not text")
    body = raw[1:] if raw.startswith("@") else raw
    if not body:
        raise InvalidHandle(raw, "is empty")
    if any(char.isspace() for char in body):
        raise InvalidHandle(raw, "contains a space")
    for char in body:
        if char not in _ALLOWED_RAW:
            raise InvalidHandle(raw, f"contains {_describe(char)}, not one of a-z, 0-9, '.', '_'")
    if len(body) > HANDLE_MAX_LENGTH:
        raise InvalidHandle(
            raw, f"is {len(body)} characters long; at most {HANDLE_MAX_LENGTH} allowed"
        )
    return body.lower()


def is_normalised(handle: object) -> bool:
    """True when `handle` is already in the contract's normal form."""
    return isinstance(handle, str) and _NORMALISED.fullmatch(handle) is not None


def _describe(char: str) -> str:
    """Name a forbidden character so that invisible or lookalike ones are recognisable."""
    name = unicodedata.name(char, "")
    code = f"U+{ord(char):04X}"
    return f"{char!r} ({code} {name})" if name else f"{char!r} ({code})"
