"""'Did you mean' for names typed by hand: node types, input names, `--set` targets, node ids."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, choices: Iterable[str], count: int = 1) -> list[str]:
    """The choices nearest to `word`, ignoring case (at most `count`, none if nothing is close)."""
    by_lower: dict[str, str] = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), choice)
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=count, cutoff=0.6)
    return [by_lower[name] for name in found]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` did you mean 'DepthSampler'?` (with its leading space), or "" when nothing is close."""
    found = closest(word, choices)
    return f" did you mean {found[0]!r}?" if found else ""
