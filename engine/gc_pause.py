"""Pausing Python's cyclic garbage collector around the engine's own bookkeeping.

Validating, signing and planning a large graph allocate hundreds of thousands of small dicts and
tuples that all stay alive until the run ends. Each allocation burst triggers collections that scan
every live object again, which made a 100,000-node chain cost twice as much per node as a 1,000-node
one. That bookkeeping creates no reference cycles, so the collector has nothing to find there; it is
paused only around it, never around node functions, and left as it was found.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
