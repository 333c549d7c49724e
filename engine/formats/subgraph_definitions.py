"""Reading subgraph definitions (`definitions.subgraphs`, workflow schema 0.4 and 1), checked.

A definition is a small workflow of its own, with an `id` (the type its instances carry), a `name`,
its `nodes` and `links` (objects `{id, origin_id, origin_slot, target_id, target_slot, type}`), and
the `inputs` and `outputs` it shows as an instance's slots. Its links may leave a pseudo node for its
inputs (id -10) or enter one for its outputs (id -20); every other end must be one of its nodes.

As ComfyUI's front end (1.58, `normalizeSubgraphDefinitions`) reads them: nested definitions count as
listed after their parent, the first of two definitions with one id counts, and an inner node whose id
another node already has (one of the workflow's, or of an earlier definition) is renumbered to the
next number after the workflow's last node id that no node has, which changes its execution id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from .workflow_json import Link, LinkId, WorkflowError, describe, read_links, read_nodes, short

INPUTS_NODE, OUTPUTS_NODE = "-10", "-20"
MAX_DEPTH = 32  # subgraphs inside subgraphs; the front end sets no limit, the recursion needs one


@dataclass(frozen=True)
class WidgetSlot:
    """One place in a group node's `widgets_values`: the inner widget it sets."""

    node: str
    name: str
    has_control: bool = False  # a "control after generate" value may follow


@dataclass(frozen=True)
class Subgraph:
    """A checked definition: its nodes, links and the names of its inputs and outputs."""

    id: str
    label: str  # "subgraph 'Sampler'" or "group node 'Prompts'", for messages
    nodes: dict[str, Mapping[str, Any]]
    links: dict[LinkId, Link]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    renumbered: Mapping[str, str] = field(default_factory=dict)  # inner ids the front end changes
    # Group nodes only: what the instance's widgets_values set (they promote no inputs).
    widget_slots: tuple[WidgetSlot, ...] | None = None

    def input_links(self, slot: int) -> list[Link]:
        return [
            link for link in self.links.values() if link.origin == INPUTS_NODE and link.origin_slot == slot
        ]

    def output_link(self, slot: int) -> LinkId | None:
        for link_id, link in self.links.items():
            if link.target == OUTPUTS_NODE and link.target_slot == slot:
                return link_id
        return None


def check_nesting(subgraphs: Mapping[str, Subgraph]) -> None:
    """Refuse subgraphs that hold instances of themselves, directly or through others (the front
    end's `getInnerNodes` throws on them), or that nest deeper than MAX_DEPTH."""
    holds: nx.DiGraph = nx.DiGraph()
    for subgraph in subgraphs.values():
        for node_id, node in subgraph.nodes.items():
            if node["type"] in subgraphs:
                holds.add_edge(subgraph.id, node["type"], node=node_id)
    try:
        cycle = nx.find_cycle(holds)
    except nx.NetworkXNoCycle:
        if holds and nx.dag_longest_path_length(holds) >= MAX_DEPTH:
            raise WorkflowError(
                f"the workflow's subgraphs are nested more than {MAX_DEPTH} deep; "
                "unpack some of them in the editor"
            ) from None
        return
    steps = [
        f"{subgraphs[outer].label} holds node {short(holds.edges[outer, inner]['node'])}, "
        f"an instance of {subgraphs[inner].label}"
        for outer, inner in cycle
    ]
    raise WorkflowError(
        f"subgraphs contain themselves: {'; '.join(steps)}; a subgraph cannot hold an instance of "
        "itself — delete one of these nodes"
    )


def read_subgraphs(workflow: Mapping[str, Any], root_nodes: Mapping[str, Any]) -> dict[str, Subgraph]:
    """The workflow's subgraph definitions by id, nested ones too, checked."""
    entries: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for where, entry in definition_entries(workflow, "definitions.subgraphs"):
        subgraph_id = entry.get("id")
        if not isinstance(subgraph_id, str) or not subgraph_id:
            name = entry.get("name")
            raise WorkflowError(
                f"{where}{f' ({describe(name)})' if isinstance(name, str) else ''} has no id; a subgraph's "
                "id is the type its instances carry — save the workflow again from the editor"
            )
        entries.setdefault(subgraph_id, (where, entry))  # the first of two with one id counts
    ids = NodeIds(root_nodes, last_node_id(workflow))
    return {
        subgraph_id: read_subgraph(subgraph_id, entry, ids) for subgraph_id, (_, entry) in entries.items()
    }


def definition_entries(graph: Mapping[str, Any], where: str) -> list[tuple[str, Mapping[str, Any]]]:
    """Every definition with where it is written, each nested one after its parent."""
    definitions = graph.get("definitions")
    if definitions is None:
        return []
    if not isinstance(definitions, Mapping):
        raise WorkflowError(f"{where.rsplit('.', 1)[0]} is {describe(definitions)}; it is an object")
    listed = definitions.get("subgraphs")
    if listed is None:
        return []
    if not isinstance(listed, list):
        raise WorkflowError(f"{where} is {describe(listed)}; it is a list of subgraph definitions")
    found: list[tuple[str, Mapping[str, Any]]] = []
    for position, entry in enumerate(listed):
        if not isinstance(entry, Mapping):
            raise WorkflowError(
                f"{where}[{position}] is {describe(entry)}; a subgraph definition is an object"
            )
        found.append((f"{where}[{position}]", entry))
        found.extend(definition_entries(entry, f"{where}[{position}].definitions.subgraphs"))
    return found


def read_subgraph(subgraph_id: str, entry: Mapping[str, Any], ids: NodeIds) -> Subgraph:
    name = entry.get("name")
    label = f"subgraph {describe(name if isinstance(name, str) else subgraph_id)}"
    if not isinstance(entry.get("nodes"), list):
        raise WorkflowError(f"{label}: nodes are {describe(entry.get('nodes'))}; they are a list of nodes")
    try:
        nodes = read_nodes(entry["nodes"])
        links = read_links(entry.get("links"))
    except WorkflowError as error:
        raise WorkflowError(f"in {label}: {error}") from None
    renumbered = ids.claim(nodes)
    subgraph = Subgraph(
        subgraph_id,
        label,
        {renumbered.get(node_id, node_id): node for node_id, node in nodes.items()},
        {link_id: renumber(link, renumbered) for link_id, link in links.items()},
        slot_names(label, entry.get("inputs"), "inputs"),
        slot_names(label, entry.get("outputs"), "outputs"),
        renumbered,
    )
    check_links(subgraph)
    return subgraph


def slot_names(label: str, slots: Any, side: str) -> tuple[str, ...]:
    if slots is None:
        return ()
    if not isinstance(slots, list) or not all(
        isinstance(slot, Mapping) and isinstance(slot.get("name"), str) for slot in slots
    ):
        raise WorkflowError(f"{label}: {side} are {describe(slots)}; they are a list of slots with names")
    return tuple(slot["name"] for slot in slots)


def renumber(link: Link, renumbered: Mapping[str, str]) -> Link:
    if not renumbered:
        return link
    target = renumbered.get(link.target, link.target) if link.target is not None else None
    return Link(renumbered.get(link.origin, link.origin), link.origin_slot, target, link.target_slot)


def check_links(subgraph: Subgraph) -> None:
    """Every link of a definition runs between its nodes or its inputs and outputs nodes."""
    for link_id, link in subgraph.links.items():
        what = f"{subgraph.label}: link {describe(link_id)}"
        if link.origin == INPUTS_NODE:
            if link.origin_slot >= len(subgraph.inputs):
                raise WorkflowError(
                    f"{what} leaves the subgraph's input {link.origin_slot}, but it has "
                    f"{len(subgraph.inputs)} input(s); reconnect that link in the editor"
                )
        elif link.origin not in subgraph.nodes:
            raise WorkflowError(
                f"{what} comes from node {short(link.origin)}, which is not in the subgraph; "
                "reconnect or delete that link in the editor"
            )
        if link.target is None or link.target_slot is None:
            raise WorkflowError(
                f"{what} names no target node and slot; a link is "
                "{id, origin_id, origin_slot, target_id, target_slot, type}"
            )
        if link.target == OUTPUTS_NODE:
            if link.target_slot >= len(subgraph.outputs):
                raise WorkflowError(
                    f"{what} enters the subgraph's output {link.target_slot}, but it has "
                    f"{len(subgraph.outputs)} output(s); reconnect that link in the editor"
                )
        elif link.target not in subgraph.nodes:
            raise WorkflowError(
                f"{what} goes to node {short(link.target)}, which is not in the subgraph; "
                "reconnect or delete that link in the editor"
            )


def last_node_id(workflow: Mapping[str, Any]) -> int:
    state = workflow.get("state")
    value = state.get("lastNodeId") if isinstance(state, Mapping) else workflow.get("last_node_id")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class NodeIds:
    """The node ids taken so far, to renumber an inner node whose id is taken as the front end does:
    the next number after the last node id that no node has."""

    def __init__(self, root_nodes: Mapping[str, Any], last: int):
        self.taken = set(root_nodes)
        self.numbers = {number for node_id in self.taken if (number := whole_number(node_id)) is not None}
        self.last = last

    def claim(self, nodes: Mapping[str, Any]) -> dict[str, str]:
        """Take the ids of a definition's nodes; those already taken get new ones (old → new)."""
        renumbered: dict[str, str] = {}
        for node_id in nodes:
            if node_id in self.taken:
                new = self.last + 1
                while new in self.numbers:
                    new += 1
                self.last = new
                self.numbers.add(new)
                self.taken.add(str(new))
                renumbered[node_id] = str(new)
                continue
            self.taken.add(node_id)
            number = whole_number(node_id)
            if number is not None:
                self.numbers.add(number)
                self.last = max(self.last, number)
        return renumbered


def whole_number(node_id: str) -> int | None:
    """A node id that is a number written plainly ("12", not "012" or "a:12")."""
    try:
        number = int(node_id)
    except ValueError:
        return None
    return number if str(number) == node_id else None
