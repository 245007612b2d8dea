"""Strict numbers from text (ASCII digits, no underscores, finite): for the API, the pipeline, the readers."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # argparse stays out of the recommend Lambda's cold start
    import argparse

# Python's int() and float() also take "1_000", Unicode digits such as "٣" and "nan"/"inf": a client sending
# min_score=0_5 means something, but not 5, so only the plain ASCII decimal forms below are numbers here.
_ASCII_DIGITS = re.compile(r"[0-9]+")
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# No bound anyone declares has this many digits; a longer integer is out of range without converting it
# (int() refuses more than 4,300 digits: https://docs.python.org/3/library/stdtypes.html#int-max-str-digits).
MAX_INT_DIGITS = 64


def is_ascii_digits(text: str) -> bool:
    """True for a non-empty run of 0-9 (str.isdigit() is also true for '²' and '٣', which int() refuses)."""
    return _ASCII_DIGITS.fullmatch(text) is not None


def parse_int(text: str) -> int:
    """A decimal integer ('-12', '+3', '007'; surrounding blanks ignored), else ValueError."""
    t = text.strip()
    if not _INT.fullmatch(t):
        raise ValueError(f"not an integer: {text!r}")
    digits = t.lstrip("+-").lstrip("0") or "0"  # leading zeros count toward int()'s digit limit too
    if len(digits) > MAX_INT_DIGITS:
        raise ValueError(f"integer of more than {MAX_INT_DIGITS} digits: {text[:40]!r}")
    return -int(digits) if t.startswith("-") else int(digits)


def parse_float(text: str) -> float:
    """A finite decimal number ('0.5', '-1e-5', '.5', '3'; surrounding blanks ignored), else ValueError."""
    t = text.strip()
    if not _FLOAT.fullmatch(t):
        raise ValueError(f"not a number: {text!r}")
    value = float(t)
    if not math.isfinite(value):  # '1e999' overflows to inf
        raise ValueError(f"not a finite number: {text!r}")
    return value


def attach_option_values(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """`argv` with each '--option VALUE' of a one-value option written '--option=VALUE'.

    argparse takes a value like '-1e-5' or '-1e308' for an option name and fails with "expected one
    argument"; attached with '=', any value reaches the option's type and range checks.
    """
    takes_one = {
        name
        for action in parser._actions  # argparse has no public list of its actions
        if action.nargs is None and action.option_strings
        for name in action.option_strings
    }
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        # a following "--name" is the next option (the value is missing): left for argparse to report
        if items[i] in takes_one and i + 1 < len(items) and not items[i + 1].startswith("--"):
            out.append(f"{items[i]}={items[i + 1]}")
            i += 2
        else:
            out.append(items[i])
            i += 1
    return out
