"""JSON from clients, within budgets, without holding the interpreter for long.

`json.loads` and `json.dumps` are single C calls: on a 100,000-node prompt (7 MB) each holds the
interpreter lock for the whole text, so a server thread doing either stops the event loop for as long.
Here the outer objects (the request, and the prompt inside it) are read and written member by member,
each member one short call of the same C code, so other threads run in between.

What a client may send is bounded too: nesting depth (`max_json_depth`), no `NaN`/`Infinity`, no
number too large for a float, no integer of more digits than Python reads. Each refusal is a
`JsonBodyError` whose message says what was wrong.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

_WHITESPACE = re.compile(r"[ \t\n\r]*")
SPLIT_LEVELS = 2  # the request object and the prompt object in it


class JsonBodyError(ValueError):
    """A body that is not JSON we accept; `kind` is the error type a client sees."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _no_constants(name: str) -> Any:
    raise JsonBodyError("invalid_json", f"{name} is not a JSON number; send a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JsonBodyError("invalid_json", f"the number {text[:40]} is too large for a float")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constants, parse_float=_finite_float)


def parse_json(text: str, max_depth: int) -> Any:
    """The value of the JSON `text`, or `JsonBodyError`."""
    try:
        value, end = _value(text, _skip(text, 0), SPLIT_LEVELS)
        end = _skip(text, end)
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    except json.JSONDecodeError as error:
        raise JsonBodyError(
            "invalid_json", f"the body is not JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    except RecursionError:
        raise JsonBodyError(
            "json_too_deep", f"the body nests lists or objects deeper than {max_depth} (max_json_depth)"
        ) from None
    except JsonBodyError:
        raise
    except ValueError as error:  # an integer of more digits than Python reads
        raise JsonBodyError("invalid_json", f"the body cannot be read: {error}") from None
    depth = nesting_depth(value, max_depth)
    if depth > max_depth:
        raise JsonBodyError(
            "json_too_deep", f"the body nests lists or objects deeper than {max_depth} (max_json_depth)"
        )
    return value


def _skip(text: str, position: int) -> int:
    match = _WHITESPACE.match(text, position)
    return match.end() if match else position


def _value(text: str, position: int, levels: int) -> tuple[Any, int]:
    if levels and text.startswith("{", position):
        return _object(text, position + 1, levels - 1)
    return _DECODER.raw_decode(text, position)


def _object(text: str, position: int, levels: int) -> tuple[dict[str, Any], int]:
    """One object, its members read one at a time (`position` is just past its `{`)."""
    result: dict[str, Any] = {}
    position = _skip(text, position)
    if text.startswith("}", position):
        return result, position + 1
    while True:
        if not text.startswith('"', position):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, position)
        key, position = _DECODER.raw_decode(text, position)
        position = _skip(text, position)
        if not text.startswith(":", position):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, position)
        value, position = _value(text, _skip(text, position + 1), levels)
        result[key] = value
        position = _skip(text, position)
        if text.startswith(",", position):
            position = _skip(text, position + 1)
        elif text.startswith("}", position):
            return result, position + 1
        else:
            raise json.JSONDecodeError("Expecting ',' delimiter", text, position)


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply lists and objects nest in `value` (a bare number is 0), counting no further than
    `limit + 1`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


def dump_json(value: Any) -> str:
    """`json.dumps(value)`, the outer objects written member by member (see the module docstring)."""
    return "".join(_chunks(value, SPLIT_LEVELS))


def _chunks(value: Any, levels: int) -> Iterator[str]:
    if not levels or not isinstance(value, Mapping):
        yield json.dumps(value)
        return
    yield "{"
    for index, (key, member) in enumerate(value.items()):
        yield (", " if index else "") + json.dumps(key if isinstance(key, str) else str(key)) + ": "
        yield from _chunks(member, levels - 1)
    yield "}"
