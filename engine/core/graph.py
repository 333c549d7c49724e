"""The checked, executable form of a prompt: what validation hands to the scheduler."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from .registry import NodeDefinition


class Link(NamedTuple):
    """An input fed by output number `output` of node `source`."""

    source: str
    output: int


@dataclass(slots=True)
class GraphNode:
    """One node with its constant inputs coerced to their declared types and its links resolved."""

    node_id: str
    definition: NodeDefinition
    constants: dict[str, Any] = field(default_factory=dict)
    links: dict[str, Link] = field(default_factory=dict)
    title: str = ""

    @property
    def class_type(self) -> str:
        return self.definition.class_name

    def eager_links(self) -> Iterable[Link]:
        """The links whose values must be ready before the node runs (all but its lazy inputs)."""
        lazy = self.definition.lazy_inputs
        if not lazy:
            return self.links.values()
        return [link for name, link in self.links.items() if name not in lazy]


@dataclass
class ExecutableGraph:
    """The nodes needed to compute `targets`, in an order where every node follows its inputs."""

    nodes: dict[str, GraphNode]
    order: list[str]
    targets: list[str]
    # The API form it was made from (saved into image metadata, shown in history).
    prompt: Mapping[str, Any] = field(default_factory=dict)

    def upstream(self, node_id: str) -> set[str]:
        """`node_id` and every node it reads from, directly or not (lazy links included)."""
        found = {node_id}
        stack = [node_id]
        while stack:
            for link in self.nodes[stack.pop()].links.values():
                if link.source not in found:
                    found.add(link.source)
                    stack.append(link.source)
        return found

    def with_changes(self, target: str, changes: Mapping[str, Mapping[str, Any]]) -> ExecutableGraph:
        """The part of the graph that computes `target`, with some constants replaced
        (`changes`: node id -> input name -> value, already checked against the inputs)."""
        needed = self.upstream(target)
        nodes = {node_id: self.nodes[node_id] for node_id in needed}
        prompt = dict(self.prompt)
        for node_id, inputs in changes.items():
            nodes[node_id] = replace(nodes[node_id], constants={**nodes[node_id].constants, **inputs})
            entry = prompt.get(node_id)
            if isinstance(entry, Mapping):
                prompt[node_id] = {**entry, "inputs": {**entry.get("inputs", {}), **inputs}}
        order = [node_id for node_id in self.order if node_id in needed]
        return ExecutableGraph(nodes, order, [target], prompt)
