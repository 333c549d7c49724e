"""What a node receives for a lazy input: the chain of nodes behind the link, to run on demand.

A comparison grid links its `images` input lazily to the end of a chain (say VAEDecode) and runs that
chain once per value of a swept input (say NoiseLatent's strength)::

    chain.evaluate({"8": {"strength": 0.4}})   # the decoded image at strength 0.4
    chain.evaluate({"8": {"strength": 0.6}})

Each evaluation runs inside the current run, on the same result cache: nodes whose signature does not
change (loading, depth estimation, text encoding) run once and are served from the cache after that;
only the nodes downstream of the changed input run again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .files import FileStore
from .graph import ExecutableGraph, Link
from .registry import InputSpec
from .validation import ConstantError, checked_constant

# node id -> input name -> value
Changes = Mapping[str, Mapping[str, Any]]


@dataclass
class SubChain:
    """The chain feeding one lazy input of a running node."""

    graph: ExecutableGraph
    link: Link
    files: FileStore
    # Runs a graph within the current run and returns the value of its target's output.
    runner: Callable[[ExecutableGraph, Link], Any]

    def nodes(self) -> set[str]:
        """The ids of the nodes in the chain (the linked node and everything it reads)."""
        return self.graph.upstream(self.link.source)

    def input_spec(self, node_id: str, name: str) -> InputSpec:
        """The typed-in input `name` of chain node `node_id`, or a ValueError that says what to pick."""
        graph_node = self.graph.nodes.get(node_id)
        if node_id not in self.nodes():
            if graph_node is None and node_id not in self.graph.prompt:
                raise ValueError(f"there is no node {node_id} in the graph; name a node of the chain")
            entry = self.graph.prompt.get(node_id)
            class_type = graph_node.class_type if graph_node else (entry or {}).get("class_type", "?")
            what = f"node {node_id} ({class_type})"
            raise ValueError(
                f"{what} does not feed node {self.link.source}, the end of this chain, so changing it "
                "would change nothing; pick a node the chain runs through"
            )
        assert graph_node is not None  # every node of the chain is in the graph
        spec = graph_node.definition.inputs_by_name.get(name)
        if spec is None or not spec.is_widget:
            widgets = [
                item.name
                for item in graph_node.definition.inputs
                if item.is_widget and item.name not in graph_node.links
            ]
            raise ValueError(
                f"node {node_id} ({graph_node.class_type}) has no typed-in input {name!r}; "
                f"it has: {', '.join(widgets) or 'none'}"
            )
        if name in graph_node.links:
            raise ValueError(
                f"input {name!r} of node {node_id} ({graph_node.class_type}) is linked to another node; "
                "only typed-in values can be swept"
            )
        return spec

    def check(self, node_id: str, name: str, values: Iterable[Any]) -> list[Any]:
        """`values` read as the input's type and checked against its bounds and choices."""
        spec = self.input_spec(node_id, name)
        checked = []
        for value in values:
            try:
                checked.append(checked_constant(spec, value, self.files))
            except ConstantError as error:
                raise ValueError(f"value {value!r} for {node_id}.{name}: {error}") from None
        return checked

    def evaluate(self, changes: Changes | None = None) -> Any:
        """The linked output's value with `changes` applied (each checked first)."""
        checked = {
            node_id: {name: self.check(node_id, name, [value])[0] for name, value in inputs.items()}
            for node_id, inputs in (changes or {}).items()
        }
        return self.runner(self.graph.with_changes(self.link.source, checked), self.link)
