"""Choosing the worker for a prompt: the one that holds its model and its upstream results, unless
that would leave another worker idle for nothing.

Each worker reports, after every prompt, the signatures of the results in its cache and the models
it has loaded. A prompt's signatures are computed here the same way (they depend on content, not on
the process), so what a worker would still have to run for it is a walk from the prompt's outputs
back through what the worker does not hold: the scheduler's own plan. The rule, in order:

1. only workers that are up and have a free slot (a running prompt and one waiting, by default);
2. the least loaded, counting a worker as 2 prompts less loaded if it holds the prompt's outputs
   (nothing to run: it costs a few milliseconds even behind another prompt), or as 1 less if it
   saves at least half the work or holds the prompt's model when another candidate does not
   (loading weights costs more than waiting for one prompt); and when a worker with no free slot
   holds the outputs and has only cached prompts in hand, waiting for it beats running it cold;
3. among equals, the least left to run (the model counting as `MODEL_WEIGHT` results), then the
   worker that was given a prompt longest ago.

Workers the prompt was lost on are avoided while any other can take it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

MODEL_WEIGHT = 8
DEFAULT_SLOTS = 2


@dataclass
class WorkerState:
    name: str
    slots: int = DEFAULT_SLOTS
    load: int = 0  # prompts sent and not yet finished
    owed: int = 0  # results those prompts have to compute (0: they are all served from its cache)
    up: bool = True
    held: set[str] = field(default_factory=set)  # result signatures in its cache
    models: set[str] = field(default_factory=set)  # models it has loaded
    last_given: float = 0.0
    prompts: int = 0


@dataclass(frozen=True)
class Work:
    """A prompt as routing sees it: each result's signature with the signatures it reads, and the
    outputs wanted."""

    inputs: Mapping[str, tuple[str, ...]]
    targets: frozenset[str]

    @classmethod
    def flat(cls, signatures: Collection[str]) -> Work:
        """Results that read nothing, all wanted (when the graph's shape is not known)."""
        return cls({signature: () for signature in signatures}, frozenset(signatures))

    def to_run(self, held: Collection[str]) -> int:
        """How many results a worker holding `held` would compute: those the outputs need, through
        everything it does not hold (a held result hides what lies behind it)."""
        seen: set[str] = set()
        stack = [target for target in self.targets if target not in held]
        while stack:
            signature = stack.pop()
            if signature in seen:
                continue
            seen.add(signature)
            stack.extend(source for source in self.inputs.get(signature, ()) if source not in held)
        return len(seen)


@dataclass(frozen=True)
class Decision:
    worker: str
    reason: str
    held: int  # how many of the prompt's results the worker held
    results: int  # how many results the prompt has
    to_run: int  # how many of them it had to compute
    model: bool  # whether it had the prompt's model loaded
    load: int  # its load before this prompt

    def to_json(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "reason": self.reason,
            "held": self.held,
            "results": self.results,
            "to_run": self.to_run,
            "model_loaded": self.model,
            "load": self.load,
        }


class Router:
    """Thread-safe: every prompt's thread asks it for a worker and gives the slot back."""

    def __init__(self, names: Collection[str], slots: int = DEFAULT_SLOTS) -> None:
        self.workers = {name: WorkerState(name, slots) for name in names}
        self._condition = threading.Condition()
        self.use_cache = True  # False: least loaded only (benchmarks/scale.py compares the two)

    def choose(
        self, work: Work | Collection[str], models: Collection[str], avoid: Collection[str] = ()
    ) -> Decision | None:
        """The worker for a prompt (its work, or just its result signatures) needing these models, or
        None if all are full."""
        with self._condition:
            return self._choose(_as_work(work), set(models), set(avoid))

    def acquire(
        self,
        work: Work | Collection[str],
        models: Collection[str],
        avoid: Collection[str] = (),
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Decision | None:
        """Wait for a worker with a free slot and take the slot; None if `cancelled` turns true first."""
        wanted, needed, avoided = _as_work(work), set(models), set(avoid)
        with self._condition:
            while True:
                decision = self._choose(wanted, needed, avoided)
                if decision is not None:
                    state = self.workers[decision.worker]
                    state.load += 1
                    state.owed += decision.to_run
                    state.prompts += 1
                    state.last_given = time.monotonic()
                    return decision
                if cancelled():
                    return None
                self._condition.wait(0.25)

    def release(self, name: str, to_run: int = 0) -> None:
        """A prompt given to `name` ended; `to_run` is its decision's (to keep `owed` true)."""
        with self._condition:
            state = self.workers[name]
            state.load = max(0, state.load - 1)
            state.owed = max(0, state.owed - to_run)
            self._condition.notify_all()

    def update(self, name: str, held: Collection[str], models: Collection[str]) -> None:
        """What a worker holds now (after a prompt, or when first seen)."""
        with self._condition:
            state = self.workers[name]
            state.held, state.models, state.up = set(held), set(models), True
            self._condition.notify_all()

    def lost(self, name: str) -> None:
        """A worker died: it takes nothing until `update` reports it back (restarted, holding nothing)."""
        with self._condition:
            state = self.workers[name]
            state.up, state.held, state.models = False, set(), set()

    def forget(self) -> None:
        """Every worker's cache was cleared."""
        with self._condition:
            for state in self.workers.values():
                state.held, state.models = set(), set()

    def down(self) -> list[str]:
        with self._condition:
            return [name for name, state in self.workers.items() if not state.up]

    def _choose(self, work: Work, needed: set[str], avoided: set[str]) -> Decision | None:
        open_ = [state for state in self.workers.values() if state.up and state.load < state.slots]
        preferred = [state for state in open_ if state.name not in avoided]
        candidates = preferred or open_
        if not candidates:
            return None
        results = len(work.inputs)
        blind = not self.use_cache
        having_model = {state.name for state in candidates if needed and needed <= state.models and not blind}
        cold = work.to_run(())

        def to_run(state: WorkerState) -> int:
            return cold if blind else work.to_run(state.held)

        def key(state: WorkerState) -> tuple[int, int, float]:
            left = to_run(state)
            model = state.name in having_model
            if left == 0 and results:
                bonus = 2
            elif 2 * left <= cold or (model and len(having_model) < len(candidates)):
                bonus = 1
            else:
                bonus = 0
            return (state.load - bonus, left - (MODEL_WEIGHT if model else 0), state.last_given)

        best = min(candidates, key=key)
        held = 0 if blind else len(work.inputs.keys() & best.held)
        left, model = to_run(best), best.name in having_model
        if (
            left
            and not blind
            and results
            and any(
                state.up and state.load >= state.slots and state.owed == 0 and work.to_run(state.held) == 0
                for state in self.workers.values()
            )
        ):
            return None  # a full worker holds all of it and has only cached work: wait for it
        if held or model:
            reason = f"cache: holds {held} of {results} results, {left} to run" + (
                "; model loaded" if model else ""
            )
        else:
            reason = "least loaded: no free worker holds its results"
        if best.name in avoided:
            reason += "; the only worker left after a loss"
        return Decision(best.name, f"{reason} (load {best.load})", held, results, left, model, best.load)


def _as_work(work: Work | Collection[str]) -> Work:
    return work if isinstance(work, Work) else Work.flat(set(work))
