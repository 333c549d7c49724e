"""Turning typed-in values (from a file, the command line or a client) into their declared types.

Lenient where a user would expect it ("42" is an INT, 3.0 is an INT, "yes" is a BOOLEAN, 2 is a
FLOAT) and strict elsewhere (True is not a number, 2.5 is not an INT, NaN is not a FLOAT).
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

from .sockets import BOOLEAN, COMBO, FLOAT, INT, STRING


class NotCoercibleError(ValueError):
    """The value cannot be read as the declared type."""


_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})
# The common case, a value already of its type, costs one dictionary look-up.
_ALREADY: dict[str, Any] = {INT: int, FLOAT: float, STRING: str, COMBO: str, BOOLEAN: bool}


def coerce(kind: str, value: Any) -> Any:
    """`value` as type `kind`, or raise `NotCoercibleError`."""
    exact = _ALREADY.get(kind)
    if exact is not None and type(value) is exact and (exact is not float or math.isfinite(value)):
        return value
    if kind == INT:
        return _to_int(value)
    if kind == FLOAT:
        return _to_float(value)
    if kind == BOOLEAN:
        return _to_bool(value)
    if kind in (STRING, COMBO):
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return str(value)
            except ValueError:  # an integer of more digits than Python writes out
                raise NotCoercibleError from None
        raise NotCoercibleError
    # A socket type (IMAGE, LATENT, ...) cannot be typed in: it must be linked.
    raise NotCoercibleError


# Whole numbers a widget takes when its input declares no bounds: 64 bits, as ComfyUI's INT widgets.
WHOLE_NUMBER_MAX = 2**64 - 1
WHOLE_NUMBER_MIN = -(2**63)


class _ShortRepr(reprlib.Repr):
    """reprlib's shortened repr, with whole numbers too long to write out described by their size."""

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:
            digits = math.floor(math.log10(abs(x))) + 1
            sign = "negative " if x < 0 else ""
            return f"<a {sign}whole number of {digits:,} digits>"
        return super().repr_int(x, level)


_SHORT = _ShortRepr()
_SHORT.maxstring = 80
_SHORT.maxother = 80
_SHORT.maxlevel = 3


def shown(value: Any) -> str:
    """`value` as a message shows it: a short repr (long text, deep nesting and huge numbers
    abbreviated) that never fails, whatever arrived."""
    try:
        return _SHORT.repr(value)
    except Exception:  # an object whose repr fails: name its type instead
        return f"<{type(value).__name__}>"


def expected(kind: str) -> str:
    """What a value of `kind` looks like, for messages."""
    if kind == INT:
        return "a whole number"
    if kind == FLOAT:
        return "a number"
    if kind == BOOLEAN:
        return "true or false"
    if kind in (STRING, COMBO):
        return "text"
    return f"a link from a node's {kind} output (it cannot be typed in)"


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise NotCoercibleError
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            number = _parse_float(value)
            if number.is_integer():
                return int(number)
    raise NotCoercibleError


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise NotCoercibleError
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float (JSON allows 10**400)
            raise NotCoercibleError from None
    elif isinstance(value, str):
        number = _parse_float(value)
    else:
        raise NotCoercibleError
    if not math.isfinite(number):
        raise NotCoercibleError
    return number


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS or word in _FALSE_WORDS:
            return word in _TRUE_WORDS
    raise NotCoercibleError


def _parse_float(text: str) -> float:
    try:
        return float(text.strip())
    except (ValueError, OverflowError):
        raise NotCoercibleError from None
