"""Cyclic garbage collection held off while a large request is read, validated and stored.

Reading a 100,000-node prompt allocates about a million objects. Each allocation burst sets off
CPython's cyclic collector, whose full passes walk every live object while holding the GIL: a
handful of 150-400 ms pauses for every thread, the event loop included, while the prompt is read.
Such a prompt builds no reference cycles, so the collector finds nothing in it; holding it off
for the few seconds the work takes loses nothing, and reference counting still frees memory.

When the last holder is done, the objects alive then are frozen (`gc.freeze`) before collection
resumes: otherwise the first young-generation pass would walk the million new objects at once
(another 120-150 ms pause). Frozen objects are still freed by reference counting; `thaw()` hands
them back to the collector, and the server calls it once its queue has drained, so cycles among
them wait at most until then.
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
_frozen = False


@contextmanager
def collection_deferred() -> Iterator[None]:
    """Hold off cyclic collection for the duration; nested and concurrent holders are counted."""
    global _holders, _was_enabled, _frozen
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.freeze()
                _frozen = True
                gc.enable()


def thaw() -> None:
    """Hand what `collection_deferred` froze back to the collector (cheap: no pass runs now)."""
    global _frozen
    with _lock:
        if _frozen and _holders == 0:
            gc.unfreeze()
            _frozen = False


def _deferred_call(function: Callable[..., T], *args: object) -> T:
    with collection_deferred():
        return function(*args)


async def in_thread_deferred(function: Callable[..., T], *args: object) -> T:
    """`function(*args)` in a worker thread with cyclic collection held off meanwhile."""
    return await asyncio.to_thread(_deferred_call, function, *args)
