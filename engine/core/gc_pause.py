"""Pausing Python's cyclic garbage collector around work that allocates much and builds no cycles.

Validating, signing and planning a large graph allocate hundreds of thousands of small dicts and
tuples that all stay alive until the run ends, and reading a 100,000-node prompt from a request
allocates about a million objects. Each allocation burst sets off collections that walk every live
object again while holding the GIL: a 100,000-node chain cost twice as much per node as a 1,000-node
one, and the server's event loop stopped for 150-400 ms at a time while such a prompt was read. That
work creates no reference cycles, so the collector has nothing to find in it; it is paused only
around it (never around node functions), and reference counting still frees memory meanwhile.

Pauses may overlap across threads: collection resumes when the last one ends, if it was on before
the first. A pause opened with `freeze=True` (the server's, around a large request) also freezes the
objects alive at the end (`gc.freeze`) before collection resumes; otherwise the first young-generation
pass walks the million new objects at once, another 120-150 ms pause. Frozen objects are still freed
by reference counting; `thaw()` hands them back to the collector, and the server calls it once its
queue has drained, so cycles among them wait at most until then.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_holders = 0
_was_enabled = False
_freeze_at_end = False
_frozen = False


@contextmanager
def gc_paused(freeze: bool = False) -> Iterator[None]:
    """Hold off cyclic collection for the duration (see the module's notes for `freeze`)."""
    global _holders, _was_enabled, _freeze_at_end, _frozen
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
        _freeze_at_end = _freeze_at_end or freeze
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                if _freeze_at_end and _was_enabled:
                    gc.freeze()
                    _frozen = True
                _freeze_at_end = False
                if _was_enabled:
                    gc.enable()


def thaw() -> None:
    """Hand what paused work froze back to the collector (cheap: no pass runs now)."""
    global _frozen
    with _lock:
        if _frozen and _holders == 0:
            gc.unfreeze()
            _frozen = False


def _call_paused(function: Callable[..., T], *args: object) -> T:
    with gc_paused(freeze=True):
        return function(*args)


async def in_thread_paused(function: Callable[..., T], *args: object) -> T:
    """`function(*args)` in a worker thread, cyclic collection paused meanwhile and what it built
    frozen after (for a large request: see the module's notes)."""
    return await asyncio.to_thread(_call_paused, function, *args)
