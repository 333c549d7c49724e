"""Converting an editor workflow (the litegraph JSON that ComfyUI-style editors save: `nodes` and
`links` lists, widget values by position) to the API form the engine runs.

As ComfyUI's front end converts them: subgraph instances and legacy group nodes are first replaced by
their inner nodes, under ids `<instance>:<inner id>` (`subgraphs`, `group_nodes`); a bypassed node
(mode 4) passes each of its inputs through to the readers of the output of the same type; a muted
node (mode 2) is left out with every node that needs its output (an optional input it fed is left
unlinked); `Reroute` nodes are followed to their source, `Note` nodes are dropped, and a
`PrimitiveNode` hands its value to the widgets it feeds. Every node of an unknown type is named at
once. Widget values are matched to the node's widget inputs in declaration order; the "control after
generate" value an editor stores after a seed is skipped.

A workflow arrives from outside, so every part of it is checked before it is used (`workflow_json`):
anything of the wrong shape is a `WorkflowError` that names the node or link, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..core.registry import NodeDefinition, NodeRegistry
from .graph_file import FORMAT_NAME
from .group_nodes import PREFIXES as GROUP_PREFIXES
from .group_nodes import read_group_nodes
from .subgraph_definitions import read_subgraphs
from .subgraphs import flatten
from .workflow_json import (
    BYPASSED,
    MUTED,
    LinkId,
    PrimitiveValue,
    Source,
    WorkflowError,
    check_constant,
    describe,
    is_link_id,
    read_links,
    read_nodes,
    short,
    widget_values,
)

__all__ = ["WorkflowError", "workflow_to_prompt"]

NOTE_TYPES = frozenset({"Note", "MarkdownNote"})
HELPER_TYPES = frozenset({"Reroute", "PrimitiveNode"})  # followed through, never run
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def workflow_to_prompt(workflow: Any, registry: NodeRegistry) -> dict[str, Any]:
    """The API form of an editor workflow (or the nodes of a depthgraph file, which already are)."""
    if isinstance(workflow, Mapping) and workflow.get("format") == FORMAT_NAME:
        nodes = workflow.get("nodes")
        if not isinstance(nodes, dict):
            raise WorkflowError("this depthgraph file has no 'nodes' object")
        return nodes
    if not isinstance(workflow, Mapping) or not isinstance(workflow.get("nodes"), list):
        raise WorkflowError("an editor workflow is an object with a 'nodes' list and a 'links' list")
    graph = EditorGraph(*flat_workflow(workflow, registry))
    prompt: dict[str, Any] = {}
    unknown: list[str] = []
    for node_id, node in graph.nodes.items():
        kind = node["type"]
        if kind in NOTE_TYPES or kind in HELPER_TYPES or node.get("mode") in (MUTED, BYPASSED):
            continue
        definition = registry.get(kind)
        if definition is None:
            unknown.append(f"node {short(node_id)} ({unknown_type(kind)})")
            continue
        prompt[node_id] = graph.convert_node(node_id, node, definition)
    if unknown:
        raise WorkflowError(
            f"{len(unknown)} node(s) of unknown types: {', '.join(unknown[:20])}"
            f"{' ...' if len(unknown) > 20 else ''}; is a custom node pack missing?"
        )
    muted = {node_id for node_id, node in graph.nodes.items() if node.get("mode") == MUTED}
    return without_muted(prompt, muted, registry)


def flat_workflow(
    workflow: Mapping[str, Any], registry: NodeRegistry
) -> tuple[dict[str, Mapping[str, Any]], dict[LinkId, Source]]:
    """The workflow's nodes and links with its subgraphs and group nodes flattened."""
    nodes = read_nodes(workflow["nodes"])
    subgraphs = {**read_subgraphs(workflow, nodes), **read_group_nodes(workflow, registry)}
    flat = flatten(nodes, read_links(workflow.get("links")), subgraphs, registry)
    return flat.nodes, flat.links


def unknown_type(kind: str) -> str:
    if UUID.match(kind):
        return f"{describe(kind)}, a subgraph whose definition is missing"
    if kind.startswith(GROUP_PREFIXES):
        return f"{describe(kind)}, a group node whose definition is missing"
    return describe(kind)


def without_muted(prompt: dict[str, Any], muted: set[str], registry: NodeRegistry) -> dict[str, Any]:
    """The prompt less the nodes that need a muted node's output, directly or through others; an
    optional input a muted node fed is left unlinked."""
    gone = set(muted)
    changed = bool(gone)
    while changed:
        changed = False
        for node_id, entry in list(prompt.items()):
            definition = registry.get(entry["class_type"])
            for name, value in list(entry["inputs"].items()):
                if not (isinstance(value, list) and len(value) == 2 and value[0] in gone):
                    continue
                spec = definition.inputs_by_name.get(name) if definition is not None else None
                if spec is not None and not spec.required:
                    del entry["inputs"][name]
                    continue
                del prompt[node_id]
                gone.add(node_id)
                changed = True
                break
    return prompt


class EditorGraph:
    """A workflow's checked nodes and links, and where each link really comes from."""

    def __init__(self, nodes: dict[str, Mapping[str, Any]], links: dict[LinkId, Source]):
        self.nodes = nodes
        self.links = links
        self._sources: dict[LinkId, Source | None] = {}

    def source_of(self, link_id: LinkId) -> Source | None:
        """Where a link comes from: through any number of reroutes (a loop of them is an error), or a
        primitive's value; None where nothing is linked. Each link is followed once, however many
        inputs it feeds."""
        passed: list[LinkId] = []
        reroutes: set[str] = set()
        bypassed: set[str] = set()
        source: Source | None = None
        while link_id not in self._sources:
            passed.append(link_id)
            if link_id not in self.links:
                break
            target = self.links[link_id]
            if isinstance(target, PrimitiveValue):  # a subgraph node's widget value
                source = target
                break
            node_id, slot = target
            origin = self.nodes.get(node_id)
            kind = origin.get("type") if origin is not None else None
            if origin is not None and kind == "Reroute":
                if node_id in reroutes:
                    raise WorkflowError(
                        f"reroute {short(node_id)} is fed by its own output through a loop of reroutes; "
                        "remove one link of the loop"
                    )
                reroutes.add(node_id)
                upstream = self.reroute_input(node_id, origin)
                if upstream is None:
                    break
                link_id = upstream
                continue
            if origin is not None and origin.get("mode") == BYPASSED:
                if node_id in bypassed:
                    raise WorkflowError(
                        f"bypassed node {short(node_id)} is fed by its own output; remove a link of the loop"
                    )
                bypassed.add(node_id)
                upstream = self.bypass_input(node_id, origin, slot)
                if upstream is None:
                    break
                link_id = upstream
                continue
            if origin is not None and kind == "PrimitiveNode":
                source = PrimitiveValue(self.primitive_value(node_id, origin))
            else:
                source = (node_id, slot)
            break
        else:
            source = self._sources[link_id]
        for walked in passed:
            self._sources[walked] = source
        return source

    def bypass_input(self, node_id: str, node: Mapping[str, Any], slot: int) -> LinkId | None:
        """The link a bypassed node passes on for its output `slot`: the input at the same place if
        it has the output's type, else the first input of that type (as ComfyUI's front end)."""
        outputs = node.get("outputs")
        output = outputs[slot] if isinstance(outputs, list) and slot < len(outputs) else None
        wanted = output.get("type") if isinstance(output, Mapping) else None
        inputs = node.get("inputs")
        if not isinstance(inputs, list):
            return None
        candidates = [entry for entry in inputs if isinstance(entry, Mapping)]
        if slot < len(candidates) and (wanted is None or candidates[slot].get("type") == wanted):
            ordered = [candidates[slot], *candidates]
        else:
            ordered = candidates
        for entry in ordered:
            if wanted is not None and entry.get("type") != wanted:
                continue
            link_id = entry.get("link")
            if link_id is not None and not is_link_id(link_id):
                raise WorkflowError(
                    f"node {short(node_id)}'s input links to {describe(link_id)}; a link is named by its id"
                )
            return link_id
        return None

    def reroute_input(self, node_id: str, reroute: Mapping[str, Any]) -> LinkId | None:
        """The link into a reroute (its one input), or None where it has none."""
        slots = reroute.get("inputs")
        if slots is None or slots == []:
            return None
        if not isinstance(slots, list) or not isinstance(slots[0], Mapping):
            raise WorkflowError(
                f"reroute {short(node_id)}'s inputs are {describe(slots)}; they are a list of one input slot"
            )
        link_id = slots[0].get("link")
        if link_id is not None and not is_link_id(link_id):
            raise WorkflowError(
                f"reroute {short(node_id)}'s input link is {describe(link_id)}; a link is named by its id"
            )
        return link_id

    def primitive_value(self, node_id: str, primitive: Mapping[str, Any]) -> Any:
        """The value a primitive node holds (its first widget value)."""
        values = primitive.get("widgets_values")
        if values is None or values == []:
            return None
        if not isinstance(values, list):
            raise WorkflowError(
                f"primitive {short(node_id)}'s widgets_values are {describe(values)}; "
                "they are a list whose first item is the value"
            )
        return check_constant(values[0], f"primitive {short(node_id)}'s value")

    def convert_node(
        self, node_id: str, node: Mapping[str, Any], definition: NodeDefinition
    ) -> dict[str, Any]:
        """One node in API form: links as [source id, output], widget values by name."""
        label = f"node {short(node_id)}"
        connected = self.connected_inputs(label, node)
        values = widget_values(label, node, definition)
        inputs: dict[str, Any] = {}
        for spec in definition.inputs:
            if spec.name in connected:
                source = connected[spec.name]
                inputs[spec.name] = source.value if isinstance(source, PrimitiveValue) else list(source)
            elif spec.name in values:
                inputs[spec.name] = check_constant(
                    values[spec.name], f"{label}'s widget {describe(spec.name)}"
                )
        title = node.get("title")
        if not isinstance(title, str) or not title:
            title = definition.display_name
        return {"class_type": node["type"], "inputs": inputs, "_meta": {"title": title}}

    def connected_inputs(self, label: str, node: Mapping[str, Any]) -> dict[str, Source]:
        """The node's linked inputs by name, each with its real source."""
        slots = node.get("inputs")
        if slots is None:
            return {}
        if not isinstance(slots, list):
            raise WorkflowError(f"{label}'s inputs are {describe(slots)}; they are a list of input slots")
        connected: dict[str, Source] = {}
        for position, slot in enumerate(slots):
            if not isinstance(slot, Mapping):
                raise WorkflowError(
                    f"{label}'s inputs[{position}] is {describe(slot)}; "
                    "an input slot is an object with a name and a link"
                )
            link_id = slot.get("link")
            if link_id is None:
                continue
            name = slot.get("name")
            if not isinstance(name, str):
                raise WorkflowError(
                    f"the name of {label}'s inputs[{position}] is {describe(name)}; an input's name is text"
                )
            if not is_link_id(link_id):
                raise WorkflowError(
                    f"{label}'s input {describe(name)} links to {describe(link_id)}; "
                    "a link is named by its id, a number or text"
                )
            source = self.source_of(link_id)
            if source is not None:
                connected[name] = source
        return connected
