"""Checking a prompt (ComfyUI's API form) before anything runs.

`validate` collects every problem at once — each with node id, input name, a code and a message that
says what to do — and, when there are none, returns the `ExecutableGraph` the scheduler runs: only
the nodes the outputs (or the named targets) need, with constants coerced to their declared types
and the defaults of omitted widgets filled in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import networkx as nx

from engine.files import FileStore
from engine.graph import ExecutableGraph, GraphNode, Link
from engine.registry import ANY, BOOLEAN, COMBO, FLOAT, INT, STRING, InputSpec, NodeRegistry


class Code(str, Enum):
    """Validation error codes (ComfyUI's names where it has one)."""

    INVALID_PROMPT = "invalid_prompt"
    UNKNOWN_NODE_TYPE = "unknown_node_type"
    REQUIRED_INPUT_MISSING = "required_input_missing"
    BAD_LINKED_INPUT = "bad_linked_input"
    RETURN_TYPE_MISMATCH = "return_type_mismatch"
    INVALID_INPUT_TYPE = "invalid_input_type"
    VALUE_SMALLER_THAN_MIN = "value_smaller_than_min"
    VALUE_BIGGER_THAN_MAX = "value_bigger_than_max"
    VALUE_NOT_IN_LIST = "value_not_in_list"
    DEPENDENCY_CYCLE = "dependency_cycle"
    PROMPT_NO_OUTPUTS = "prompt_no_outputs"


@dataclass(frozen=True)
class ValidationIssue:
    """One problem with a prompt."""

    code: Code
    message: str
    node_id: str | None = None
    class_type: str | None = None
    input_name: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.node_id is not None:
            where = f"node {self.node_id}"
            if self.class_type:
                where += f" ({self.class_type})"
            if self.input_name:
                where += f", input '{self.input_name}'"
            where += ": "
        return f"{where}{self.message} [{self.code.value}]"

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.code.value,
            "message": self.message,
            "details": str(self),
            "extra_info": {"input_name": self.input_name} if self.input_name else {},
        }


@dataclass
class Validation:
    """The outcome of `validate`: the executable graph, or every issue found."""

    graph: ExecutableGraph | None
    issues: list[ValidationIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.graph is not None and not self.issues

    def node_errors(self) -> dict[str, dict[str, Any]]:
        """Issues grouped by node, in the shape of ComfyUI's `node_errors`."""
        grouped: dict[str, dict[str, Any]] = {}
        for issue in self.issues:
            if issue.node_id is None:
                continue
            entry = grouped.setdefault(
                issue.node_id, {"errors": [], "dependent_outputs": [], "class_type": issue.class_type}
            )
            entry["errors"].append(issue.as_dict())
        return grouped


class InvalidGraphError(Exception):
    """Raised by callers that need a valid graph; carries every issue."""

    def __init__(self, issues: Sequence[ValidationIssue]) -> None:
        self.issues = list(issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"the graph has {len(self.issues)} problem(s):\n{lines}")


class _NotCoercibleError(Exception):
    pass


_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})


def _coerce(spec: InputSpec, value: Any) -> Any:
    """`value` as the type `spec` declares, or raise `_NotCoercibleError`."""
    kind = spec.type
    if kind == INT:
        if isinstance(value, bool):
            raise _NotCoercibleError
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                number = _parse_float(value)
                if number.is_integer():
                    return int(number)
        raise _NotCoercibleError
    if kind == FLOAT:
        if isinstance(value, bool):
            raise _NotCoercibleError
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            number = _parse_float(value)
        else:
            raise _NotCoercibleError
        if not math.isfinite(number):
            raise _NotCoercibleError
        return number
    if kind == BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
            return value.strip().lower() in _TRUE_WORDS
        raise _NotCoercibleError
    if kind in (STRING, COMBO):
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise _NotCoercibleError
    # A socket type (IMAGE, LATENT, ...) cannot be typed in: it must be linked.
    raise _NotCoercibleError


def _parse_float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise _NotCoercibleError from None


def _expected(spec: InputSpec) -> str:
    if spec.type == INT:
        return "a whole number"
    if spec.type == FLOAT:
        return "a number"
    if spec.type == BOOLEAN:
        return "true or false"
    if spec.type in (STRING, COMBO):
        return "text"
    return f"a link from a node's {spec.type} output (it cannot be typed in)"


def _as_link(value: Any) -> Link | None:
    """`[source id, output index]` as a `Link`, or None when malformed."""
    if len(value) != 2:
        return None
    source, output = value
    if isinstance(source, int) and not isinstance(source, bool):
        source = str(source)
    if not isinstance(source, str) or not isinstance(output, int) or isinstance(output, bool):
        return None
    return Link(source, output)


def validate(
    prompt: Any,
    registry: NodeRegistry,
    files: FileStore | None = None,
    targets: Iterable[str] | None = None,
) -> Validation:
    """Check `prompt` against the node types in `registry`; see the module docstring."""
    files = files or FileStore()
    issues: list[ValidationIssue] = []
    if not isinstance(prompt, Mapping) or not prompt:
        kind = "an empty object" if isinstance(prompt, Mapping) else type(prompt).__name__
        message = f"a prompt is an object of nodes keyed by id, got {kind}"
        return Validation(None, [ValidationIssue(Code.INVALID_PROMPT, message)])

    # Pass 1: structure of every node, and which ones exist.
    raw_inputs: dict[str, Mapping[str, Any]] = {}
    nodes: dict[str, GraphNode] = {}
    for raw_id, entry in prompt.items():
        node_id = str(raw_id)
        if not isinstance(entry, Mapping):
            issues.append(ValidationIssue(Code.INVALID_PROMPT, "node entry is not an object", node_id))
            continue
        class_type = entry.get("class_type")
        if not isinstance(class_type, str):
            message = "node has no 'class_type'; every node names its type"
            issues.append(ValidationIssue(Code.INVALID_PROMPT, message, node_id))
            continue
        definition = registry.get(class_type)
        if definition is None:
            message = f"unknown node type '{class_type}'; is a custom node pack missing? (`depthgraph nodes`)"
            issues.append(ValidationIssue(Code.UNKNOWN_NODE_TYPE, message, node_id, class_type))
            continue
        inputs = entry.get("inputs", {})
        if not isinstance(inputs, Mapping):
            message = "'inputs' must be an object of input name to value or link"
            issues.append(ValidationIssue(Code.INVALID_PROMPT, message, node_id, class_type))
            continue
        meta = entry.get("_meta")
        title = meta.get("title", "") if isinstance(meta, Mapping) else ""
        nodes[node_id] = GraphNode(node_id, definition, title=title if isinstance(title, str) else "")
        raw_inputs[node_id] = inputs

    # Which nodes must run: the targets (or every output node) and their ancestors.
    if targets is not None:
        wanted = [str(target) for target in targets]
        for target in wanted:
            if target not in prompt:
                message = f"target node {target} is not in the graph"
                issues.append(ValidationIssue(Code.INVALID_PROMPT, message, target))
        wanted = [target for target in wanted if target in nodes]
    else:
        wanted = [node_id for node_id, graph_node in nodes.items() if graph_node.definition.output_node]
    if not wanted and not issues:
        message = "the graph has no output node (such as SaveImage or PreviewImage), so nothing would run"
        issues.append(ValidationIssue(Code.PROMPT_NO_OUTPUTS, message))

    needed = _ancestors(wanted, raw_inputs)

    # Pass 2: every input of every needed node.
    for node_id in needed:
        graph_node = nodes[node_id]
        _check_inputs(graph_node, raw_inputs[node_id], prompt, nodes, files, issues)

    order = _topological_order(needed, nodes, issues)
    if issues or order is None:
        return Validation(None, issues)
    graph = ExecutableGraph({node_id: nodes[node_id] for node_id in order}, order, wanted, prompt)
    return Validation(graph, [])


def _ancestors(wanted: Sequence[str], raw_inputs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """`wanted` and every known node they read from, iteratively (graphs may be very deep)."""
    seen = set(wanted)
    found = list(wanted)
    stack = list(wanted)
    while stack:
        for value in raw_inputs[stack.pop()].values():
            if isinstance(value, list) and len(value) == 2:
                source = str(value[0])
                if source not in seen and source in raw_inputs:
                    seen.add(source)
                    found.append(source)
                    stack.append(source)
    return found


def _check_inputs(
    graph_node: GraphNode,
    inputs: Mapping[str, Any],
    prompt: Mapping[str, Any],
    nodes: Mapping[str, GraphNode],
    files: FileStore,
    issues: list[ValidationIssue],
) -> None:
    definition = graph_node.definition
    node_id = graph_node.node_id
    class_type = definition.class_name

    def problem(code: Code, spec: InputSpec, message: str) -> None:
        issues.append(ValidationIssue(code, message, node_id, class_type, spec.name))

    for spec in definition.inputs:
        value = inputs.get(spec.name)
        if value is None:
            if spec.default is not None:
                graph_node.constants[spec.name] = spec.default
            elif spec.required:
                problem(Code.REQUIRED_INPUT_MISSING, spec, f"required input '{spec.name}' is missing")
            continue
        if isinstance(value, list):
            link = _as_link(value)
            if link is None:
                message = f"a link is [node id, output index], got {value!r}"
                problem(Code.BAD_LINKED_INPUT, spec, message)
                continue
            source = nodes.get(link.source)
            if source is None:
                if link.source in prompt:
                    continue  # the source node has its own issue already
                message = f"links to node {link.source}, which is not in the graph"
                problem(Code.BAD_LINKED_INPUT, spec, message)
                continue
            outputs = source.definition.outputs
            if not 0 <= link.output < len(outputs):
                message = (
                    f"links to output {link.output} of node {link.source} ({source.class_type}), "
                    f"which has {len(outputs)} output(s)"
                )
                problem(Code.BAD_LINKED_INPUT, spec, message)
                continue
            produced = outputs[link.output].type
            if produced != spec.type and ANY not in (produced, spec.type):
                message = (
                    f"expects {spec.type} but is linked to output {link.output} of node {link.source} "
                    f"({source.class_type}), which gives {produced}"
                )
                problem(Code.RETURN_TYPE_MISMATCH, spec, message)
                continue
            graph_node.links[spec.name] = link
            continue
        try:
            coerced = _coerce(spec, value)
        except _NotCoercibleError:
            problem(Code.INVALID_INPUT_TYPE, spec, f"{value!r} is not {_expected(spec)}")
            continue
        if spec.min is not None and coerced < spec.min:
            problem(Code.VALUE_SMALLER_THAN_MIN, spec, f"{coerced} is below the minimum {spec.min}")
            continue
        if spec.max is not None and coerced > spec.max:
            problem(Code.VALUE_BIGGER_THAN_MAX, spec, f"{coerced} is above the maximum {spec.max}")
            continue
        if spec.type == COMBO:
            choices = spec.choices(files)
            if coerced not in choices:
                shown = ", ".join(repr(choice) for choice in list(choices)[:12])
                more = ", ..." if len(choices) > 12 else ""
                message = f"{coerced!r} is not one of the choices [{shown}{more}]"
                if not choices:
                    message = f"{coerced!r} is not available: there are no choices (is the folder empty?)"
                problem(Code.VALUE_NOT_IN_LIST, spec, message)
                continue
        graph_node.constants[spec.name] = coerced


def _topological_order(
    needed: Sequence[str], nodes: Mapping[str, GraphNode], issues: list[ValidationIssue]
) -> list[str] | None:
    """Order the needed nodes so that each follows its sources, or report the cycle."""
    graph = nx.DiGraph()
    graph.add_nodes_from(needed)
    graph.add_edges_from(
        (link.source, node_id)
        for node_id in needed
        for link in nodes[node_id].links.values()
        if link.source in nodes
    )
    try:
        return list(nx.topological_sort(graph))
    except nx.NetworkXUnfeasible:
        cycle = [source for source, _ in nx.find_cycle(graph)]
        path = " -> ".join([*cycle, cycle[0]])
        for node_id in cycle:
            message = f"the graph loops back on itself ({path}); remove one of these links"
            issues.append(ValidationIssue(Code.DEPENDENCY_CYCLE, message, node_id, nodes[node_id].class_type))
        return None
