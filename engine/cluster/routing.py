"""Choosing the worker for a prompt: the one that holds its model and its upstream results, unless
that would leave another worker idle for nothing.

Each worker reports, after every prompt, the signatures of the results in its cache and the models
it has loaded. A prompt's signatures are computed here the same way (they depend on content, not on
the process), so the overlap is a set intersection. The rule, in order:

1. only workers that are up and have a free slot (a running prompt and one waiting, by default);
2. the least loaded, counting a *warm* worker as one prompt less loaded: one that holds at least half
   of the prompt's results, or its model when another candidate does not (loading weights costs more
   than waiting for one prompt);
3. among equals, the most results held (the model counting as `MODEL_WEIGHT` results), then the
   worker that was given a prompt longest ago.

Workers the prompt was lost on are avoided while any other can take it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

MODEL_WEIGHT = 8
DEFAULT_SLOTS = 2


@dataclass
class WorkerState:
    name: str
    slots: int = DEFAULT_SLOTS
    load: int = 0  # prompts sent and not yet finished
    up: bool = True
    held: set[str] = field(default_factory=set)  # result signatures in its cache
    models: set[str] = field(default_factory=set)  # models it has loaded
    last_given: float = 0.0
    prompts: int = 0


@dataclass(frozen=True)
class Decision:
    worker: str
    reason: str
    held: int  # how many of the prompt's results the worker held
    results: int  # how many results the prompt has
    model: bool  # whether it had the prompt's model loaded
    load: int  # its load before this prompt

    def to_json(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "reason": self.reason,
            "held": self.held,
            "results": self.results,
            "model_loaded": self.model,
            "load": self.load,
        }


class Router:
    """Thread-safe: every prompt's thread asks it for a worker and gives the slot back."""

    def __init__(self, names: Collection[str], slots: int = DEFAULT_SLOTS) -> None:
        self.workers = {name: WorkerState(name, slots) for name in names}
        self._condition = threading.Condition()

    def choose(
        self, signatures: Collection[str], models: Collection[str], avoid: Collection[str] = ()
    ) -> Decision | None:
        """The worker for a prompt with these result signatures and models, or None if all are full."""
        with self._condition:
            return self._choose(set(signatures), set(models), set(avoid))

    def acquire(
        self,
        signatures: Collection[str],
        models: Collection[str],
        avoid: Collection[str] = (),
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Decision | None:
        """Wait for a worker with a free slot and take the slot; None if `cancelled` turns true first."""
        wanted, needed, avoided = set(signatures), set(models), set(avoid)
        with self._condition:
            while True:
                decision = self._choose(wanted, needed, avoided)
                if decision is not None:
                    state = self.workers[decision.worker]
                    state.load += 1
                    state.prompts += 1
                    state.last_given = time.monotonic()
                    return decision
                if cancelled():
                    return None
                self._condition.wait(0.25)

    def release(self, name: str) -> None:
        with self._condition:
            state = self.workers[name]
            state.load = max(0, state.load - 1)
            self._condition.notify_all()

    def update(self, name: str, held: Collection[str], models: Collection[str]) -> None:
        """What a worker holds now (after a prompt, or when first seen)."""
        with self._condition:
            state = self.workers[name]
            state.held, state.models, state.up = set(held), set(models), True
            self._condition.notify_all()

    def lost(self, name: str) -> None:
        """A worker died: it takes nothing until `restored`, and a restarted one holds nothing."""
        with self._condition:
            state = self.workers[name]
            state.up, state.held, state.models = False, set(), set()

    def restored(self, name: str) -> None:
        with self._condition:
            self.workers[name].up = True
            self._condition.notify_all()

    def forget(self) -> None:
        """Every worker's cache was cleared."""
        with self._condition:
            for state in self.workers.values():
                state.held, state.models = set(), set()

    def down(self) -> list[str]:
        with self._condition:
            return [name for name, state in self.workers.items() if not state.up]

    def _choose(self, wanted: set[str], needed: set[str], avoided: set[str]) -> Decision | None:
        open_ = [state for state in self.workers.values() if state.up and state.load < state.slots]
        preferred = [state for state in open_ if state.name not in avoided]
        candidates = preferred or open_
        if not candidates:
            return None
        having_model = {state.name for state in candidates if needed and needed <= state.models}

        def key(state: WorkerState) -> tuple[int, int, float]:
            hits = len(wanted & state.held)
            model = state.name in having_model
            warm = (wanted and 2 * hits >= len(wanted)) or (model and len(having_model) < len(candidates))
            return (
                state.load - (1 if warm else 0),
                -(hits + (MODEL_WEIGHT if model else 0)),
                state.last_given,
            )

        best = min(candidates, key=key)
        hits = len(wanted & best.held)
        model = best.name in having_model
        if hits or model:
            reason = f"cache: holds {hits} of {len(wanted)} results" + ("; model loaded" if model else "")
        else:
            reason = "least loaded: no free worker holds its results"
        if best.name in avoided:
            reason += "; the only worker left after a loss"
        return Decision(best.name, f"{reason} (load {best.load})", hits, len(wanted), model, best.load)
