"""Converting an editor workflow (the litegraph JSON that ComfyUI-style editors save: `nodes` and
`links` lists, widget values by position) to the API form the engine runs.

Muted and bypassed nodes are left out, `Reroute` nodes are followed to their source, `Note` nodes are
dropped, and a `PrimitiveNode` hands its value to the widgets it feeds. Widget values are matched to
the node's widget inputs in declaration order; the "control after generate" value an editor stores
after a seed is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.graph_file import FORMAT_NAME
from engine.registry import INT, NodeRegistry

MUTED, BYPASSED = 2, 4
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
NOTE_TYPES = frozenset({"Note", "MarkdownNote"})


class WorkflowError(ValueError):
    """A workflow that cannot be converted; the message names the node."""


def workflow_to_prompt(workflow: Any, registry: NodeRegistry) -> dict[str, Any]:
    """The API form of an editor workflow (or the nodes of a depthgraph file, which already are)."""
    if isinstance(workflow, Mapping) and workflow.get("format") == FORMAT_NAME:
        nodes = workflow.get("nodes")
        if not isinstance(nodes, dict):
            raise WorkflowError("this depthgraph file has no 'nodes' object")
        return nodes
    if not isinstance(workflow, Mapping) or not isinstance(workflow.get("nodes"), list):
        raise WorkflowError("an editor workflow is an object with a 'nodes' list and a 'links' list")
    nodes = {str(node.get("id")): node for node in workflow["nodes"] if isinstance(node, Mapping)}
    links: dict[Any, tuple[str, int]] = {}
    for link in workflow.get("links") or []:
        if isinstance(link, list) and len(link) >= 5:
            links[link[0]] = (str(link[1]), int(link[2]))
        elif isinstance(link, Mapping):
            links[link.get("id")] = (str(link.get("origin_id")), int(link.get("origin_slot", 0)))

    def source_of(link_id: Any, seen: frozenset[str] = frozenset()) -> tuple[str, int] | Any | None:
        """Where a link really comes from: through reroutes, or a primitive's value."""
        if link_id not in links:
            return None
        node_id, slot = links[link_id]
        origin = nodes.get(node_id, {})
        if origin.get("type") == "Reroute" and node_id not in seen:
            inputs = origin.get("inputs") or [{}]
            return source_of(inputs[0].get("link"), seen | {node_id})
        if origin.get("type") == "PrimitiveNode":
            values = origin.get("widgets_values") or [None]
            return ("value", values[0])
        return node_id, slot

    prompt: dict[str, Any] = {}
    for node_id, node in nodes.items():
        kind = node.get("type")
        if (
            kind in NOTE_TYPES
            or kind in ("Reroute", "PrimitiveNode")
            or node.get("mode") in (MUTED, BYPASSED)
        ):
            continue
        definition = registry.get(kind) if isinstance(kind, str) else None
        if definition is None:
            raise WorkflowError(
                f"node {node_id} has the unknown type {kind!r}; is a custom node pack missing?"
            )
        connected: dict[str, Any] = {}
        for slot in node.get("inputs") or []:
            if isinstance(slot, Mapping) and slot.get("link") is not None:
                source = source_of(slot["link"])
                if source is not None:
                    connected[str(slot.get("name"))] = source
        values = node.get("widgets_values")
        positional = list(values) if isinstance(values, list) else []
        named = values if isinstance(values, Mapping) else {}
        inputs: dict[str, Any] = {}
        for spec in definition.inputs:
            value: Any = None
            has_value = False
            if spec.is_widget:
                if spec.name in named:
                    value, has_value = named[spec.name], True
                elif positional:
                    value, has_value = positional.pop(0), True
                    if spec.type == INT and positional and positional[0] in CONTROL_VALUES:
                        positional.pop(0)
            if spec.name in connected:
                source = connected[spec.name]
                inputs[spec.name] = source[1] if source[0] == "value" else [source[0], source[1]]
            elif has_value:
                inputs[spec.name] = value
        title = node.get("title") or definition.display_name
        prompt[node_id] = {"class_type": kind, "inputs": inputs, "_meta": {"title": title}}
    return prompt
