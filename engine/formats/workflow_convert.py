"""Converting an editor workflow (the litegraph JSON that ComfyUI-style editors save: `nodes` and
`links` lists, widget values by position) to the API form the engine runs.

As ComfyUI's front end converts them: a bypassed node (mode 4) passes each of its inputs through to
the readers of the output of the same type; a muted node (mode 2) is left out with every node that
needs its output (an optional input it fed is left unlinked); `Reroute` nodes are followed to their
source, `Note` nodes are dropped, and a `PrimitiveNode` hands its value to the widgets it feeds. Every
node of an unknown type is named at once. Widget values are matched to
the node's widget inputs in declaration order; the "control after generate" value an editor stores
after a seed is skipped.

A workflow arrives from outside (a dropped file, a request body), so every part of it is checked
before it is used: anything of the wrong shape is a `WorkflowError` that names the node or link,
never a crash. Messages quote only a short, safe description of a bad value, never the value itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.registry import NodeDefinition, NodeRegistry
from ..core.sockets import INT
from .graph_file import FORMAT_NAME

MUTED, BYPASSED = 2, 4
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
NOTE_TYPES = frozenset({"Note", "MarkdownNote"})
HELPER_TYPES = frozenset({"Reroute", "PrimitiveNode"})  # followed through, never run
MAX_SLOT = 2**31 - 1
LINK_SHAPE = "[id, origin node, origin slot, target node, target slot, type]"


class WorkflowError(ValueError):
    """A workflow that cannot be converted; the message names the node."""


@dataclass(frozen=True)
class PrimitiveValue:
    """What a link from a `PrimitiveNode` carries: a constant, not a node's output."""

    value: Any


Source = tuple[str, int] | PrimitiveValue


def workflow_to_prompt(workflow: Any, registry: NodeRegistry) -> dict[str, Any]:
    """The API form of an editor workflow (or the nodes of a depthgraph file, which already are)."""
    if isinstance(workflow, Mapping) and workflow.get("format") == FORMAT_NAME:
        nodes = workflow.get("nodes")
        if not isinstance(nodes, dict):
            raise WorkflowError("this depthgraph file has no 'nodes' object")
        return nodes
    if not isinstance(workflow, Mapping) or not isinstance(workflow.get("nodes"), list):
        raise WorkflowError("an editor workflow is an object with a 'nodes' list and a 'links' list")
    graph = EditorGraph(read_nodes(workflow["nodes"]), read_links(workflow.get("links")))
    prompt: dict[str, Any] = {}
    unknown: list[str] = []
    for node_id, node in graph.nodes.items():
        kind = node["type"]
        if kind in NOTE_TYPES or kind in HELPER_TYPES or node.get("mode") in (MUTED, BYPASSED):
            continue
        definition = registry.get(kind)
        if definition is None:
            unknown.append(f"node {short(node_id)} ({describe(kind)})")
            continue
        prompt[node_id] = graph.convert_node(node_id, node, definition)
    if unknown:
        raise WorkflowError(
            f"{len(unknown)} node(s) of unknown types: {', '.join(unknown[:20])}"
            f"{' ...' if len(unknown) > 20 else ''}; is a custom node pack missing?"
        )
    muted = {node_id for node_id, node in graph.nodes.items() if node.get("mode") == MUTED}
    return without_muted(prompt, muted, registry)


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


def read_nodes(entries: list[Any]) -> dict[str, Mapping[str, Any]]:
    """The workflow's nodes by id (as text, the API form's keys); each one an object with an id and a type."""
    nodes: dict[str, Mapping[str, Any]] = {}
    for position, node in enumerate(entries):
        if not isinstance(node, Mapping):
            raise WorkflowError(
                f"nodes[{position}] is {describe(node)}; each node is an object with an id and a type"
            )
        node_id = node_key(node.get("id"))
        if node_id is None:
            raise WorkflowError(
                f"nodes[{position}]'s id is {describe(node.get('id'))}; a node's id is a number or text"
            )
        if node_id in nodes:
            raise WorkflowError(f"two nodes have the id {short(node_id)}; every node needs its own id")
        if not isinstance(node.get("type"), str):
            raise WorkflowError(
                f"node {short(node_id)}'s type is {describe(node.get('type'))}; "
                "a node's type is the name of its class"
            )
        nodes[node_id] = node
    return nodes


def read_links(entries: Any) -> dict[int | str, tuple[str, int]]:
    """Each link's origin (node id, output slot) by link id, from the list or the object form."""
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise WorkflowError(f"the workflow's 'links' is {describe(entries)}; it is a list of links")
    links: dict[int | str, tuple[str, int]] = {}
    for position, link in enumerate(entries):
        if link is None:
            continue  # nothing linked here
        if isinstance(link, list):
            if len(link) < 5:
                raise WorkflowError(f"links[{position}] has {len(link)} items; a link is {LINK_SHAPE}")
            link_id, origin, slot = link[0], link[1], link[2]
        elif isinstance(link, Mapping):
            link_id, origin, slot = link.get("id"), link.get("origin_id"), link.get("origin_slot", 0)
        else:
            raise WorkflowError(f"links[{position}] is {describe(link)}; a link is {LINK_SHAPE}")
        if not is_link_id(link_id):
            raise WorkflowError(
                f"links[{position}]'s id is {describe(link_id)}; a link's id is a number or text"
            )
        origin_id = node_key(origin)
        if origin_id is None:
            raise WorkflowError(
                f"link {describe(link_id)}'s origin node is {describe(origin)}; a link's origin is a node id"
            )
        output = slot_number(slot)
        if output is None:
            raise WorkflowError(
                f"link {describe(link_id)}'s origin slot (on node {short(origin_id)}) is {describe(slot)}; "
                "a slot is a whole number from 0"
            )
        links[link_id] = (origin_id, output)
    return links


class EditorGraph:
    """A workflow's checked nodes and links, and where each link really comes from."""

    def __init__(self, nodes: dict[str, Mapping[str, Any]], links: dict[int | str, tuple[str, int]]):
        self.nodes = nodes
        self.links = links
        self._sources: dict[int | str, Source | None] = {}

    def source_of(self, link_id: int | str) -> Source | None:
        """Where a link comes from: through any number of reroutes (a loop of them is an error), or a
        primitive's value; None where nothing is linked. Each link is followed once, however many
        inputs it feeds."""
        passed: list[int | str] = []
        reroutes: set[str] = set()
        bypassed: set[str] = set()
        source: Source | None = None
        while link_id not in self._sources:
            passed.append(link_id)
            if link_id not in self.links:
                break
            node_id, slot = self.links[link_id]
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

    def bypass_input(self, node_id: str, node: Mapping[str, Any], slot: int) -> int | str | None:
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

    def reroute_input(self, node_id: str, reroute: Mapping[str, Any]) -> int | str | None:
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
        values = node.get("widgets_values")
        positional: list[Any] = values if isinstance(values, list) else []
        named: Mapping[str, Any] = values if isinstance(values, Mapping) else {}
        if values is not None and not isinstance(values, list | Mapping):
            raise WorkflowError(
                f"{label}'s widgets_values are {describe(values)}; they are a list of widget values"
            )
        next_value = 0
        inputs: dict[str, Any] = {}
        for spec in definition.inputs:
            value: Any = None
            has_value = False
            if spec.is_widget:
                if spec.name in named:
                    value, has_value = named[spec.name], True
                elif next_value < len(positional):
                    value, has_value = positional[next_value], True
                    next_value += 1
                    if spec.type == INT and next_value < len(positional):
                        control = positional[next_value]
                        if isinstance(control, str) and control in CONTROL_VALUES:
                            next_value += 1
            if spec.name in connected:
                source = connected[spec.name]
                inputs[spec.name] = source.value if isinstance(source, PrimitiveValue) else list(source)
            elif has_value:
                inputs[spec.name] = check_constant(value, f"{label}'s widget {describe(spec.name)}")
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


def node_key(value: Any) -> str | None:
    """A node id as the API form's key (text), or None where it is no id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value:
        return value
    return None


def is_link_id(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def slot_number(value: Any) -> int | None:
    """An output slot: a whole number from 0 (also written as text, as some editors do)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SLOT:
        return value
    return None


def check_constant(value: Any, what: str) -> Any:
    """A widget value as the API form can hold it: a list there would read as a link."""
    if isinstance(value, list | Mapping):
        raise WorkflowError(f"{what} is {describe(value)}; a widget's value is a number, text or true/false")
    if isinstance(value, float) and not math.isfinite(value):
        raise WorkflowError(f"{what} is {describe(value)}; a widget's value is a finite number")
    return value


def short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def describe(value: Any) -> str:
    """A short description of a JSON value for a message: small values as written, others by kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**15 else "a very large number"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(short(value))
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"
