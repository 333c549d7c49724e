"""What `depthgraph run` shows while a prompt runs: one bar over the work that takes the time.

Nearly all of a run is sampling, so the bar counts sampler steps as the sampler counts them (the
progress events of the nodes in the "sampling" categories: step k of n; other nodes' progress, such
as images saved, is not work the bar waits for). A node's steps join the total when it starts
reporting them. A node that runs a chain of others through a lazy input (Sweep Values) reports its
cells, which are counted apart; once one cell has finished, the total is the steps one cell takes
times the cells, so the estimate is honest from the second cell on (a later grid's cells join the
total when it starts). Before and between the sampling, the bar names the node that is running
(loading a model, estimating depth, decoding). A graph without a sampler counts its nodes instead.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from ...core.events import Event, NodeExecuting, Progress


@dataclass
class _Outer:
    """A node counting units of its own (a sweep's cells) while the nodes of its chain run."""

    node_id: str
    steps_before: int  # steps counted before it started
    done: int = 0
    of: int = 0


@dataclass
class RunProgress:
    """Turns a run's events into a tqdm bar on `stream` (`titles`: each node id's name to show;
    `samplers`: the nodes whose progress is sampler steps; `outer_nodes`: the nodes that run chains
    of others and report their own units)."""

    titles: Mapping[str, str]
    samplers: frozenset[str] = frozenset()
    outer_nodes: frozenset[str] = frozenset()
    nodes: int = 0  # the nodes to run: counted by a bar that has no sampler steps to count
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    bar: Any = None
    current: str | None = None
    steps_done: int = 0  # sampler steps finished, all nodes together
    known_total: int = 0  # the steps of every node run that has reported its length
    outer: _Outer | None = None
    _node_step: int = 0  # the running node's last reported step
    _node_counted: bool = False  # whether its length is in known_total
    _started_at: dict[str, int] = field(default_factory=dict)  # steps done when each node started

    def __post_init__(self) -> None:
        from tqdm import tqdm

        self.counting_nodes = not self.samplers and self.nodes > 0
        self.bar = tqdm(
            total=self.nodes if self.counting_nodes else None,
            unit="node" if self.counting_nodes else "step",
            file=self.stream,
            dynamic_ncols=True,
            leave=False,
        )
        self._describe("starting")

    def _describe(self, text: str) -> None:
        self.bar.set_description_str(text, refresh=True)

    def _title(self, node_id: str) -> str:
        return f"node {node_id} ({self.titles.get(node_id, '?')})"

    def update(self, event: Event) -> None:
        if isinstance(event, NodeExecuting) and self.counting_nodes:
            if self.current is not None:  # the node before it has finished
                self.bar.update(1)
            if event.node_id is not None:
                self.current = event.node_id
                self._describe(self._title(event.node_id))
        elif isinstance(event, NodeExecuting) and event.node_id is not None:
            self._started_at.setdefault(event.node_id, self.steps_done)
            self.current = event.node_id
            self._node_step = 0
            self._node_counted = False
            self._describe(self._title(event.node_id))
        elif isinstance(event, Progress):
            if event.node_id in self.outer_nodes:
                self._outer_progress(event)
            elif event.node_id in self.samplers:
                self._step(event)

    def _step(self, event: Progress) -> None:
        if not self._node_counted:
            self._node_counted = True
            self.known_total += event.max
            self._retotal()
        advance = max(0, event.value - self._node_step)
        self._node_step = event.value
        self.steps_done += advance
        self.bar.update(advance)

    def _outer_progress(self, event: Progress) -> None:
        if self.outer is None or self.outer.node_id != event.node_id:
            self.outer = _Outer(event.node_id, self._started_at.get(event.node_id, 0))
        self.outer.done, self.outer.of = event.value, event.max
        cell = min(event.value + 1, event.max)
        self.bar.set_postfix_str(
            f"cell {cell}/{event.max}" if event.value < event.max else f"{event.max} cells"
        )
        self._retotal()

    def _retotal(self) -> None:
        """The total: what is known, or, in a grid with a finished cell, a cell's steps × its cells."""
        total = self.known_total
        outer = self.outer
        if outer is not None and outer.done > 0 and outer.of > 0:
            per_cell = (self.steps_done - outer.steps_before) / outer.done
            total = max(total, round(outer.steps_before + per_cell * outer.of))
        if total and total != self.bar.total:
            self.bar.total = total
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
