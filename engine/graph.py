"""The checked, executable form of a prompt: what validation hands to the scheduler."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine.registry import NodeDefinition


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


@dataclass
class ExecutableGraph:
    """The nodes needed to compute `targets`, in an order where every node follows its inputs."""

    nodes: dict[str, GraphNode]
    order: list[str]
    targets: list[str]
    # The API form it was made from (saved into image metadata, shown in history).
    prompt: Mapping[str, Any] = field(default_factory=dict)

    def consumers(self) -> dict[str, int]:
        """How many links read each node's outputs (used to release values once they are used)."""
        counts: dict[str, int] = dict.fromkeys(self.nodes, 0)
        for graph_node in self.nodes.values():
            for link in graph_node.links.values():
                counts[link.source] += 1
        return counts
