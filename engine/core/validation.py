"""Checking a prompt (ComfyUI's API form) before anything runs.

`validate` collects every problem at once — each with node id, input name, a code and a message that
says what to do — and, when there are none, returns the `ExecutableGraph` the scheduler runs: only
the nodes the outputs (or the named targets) need, with constants coerced to their declared types
and the defaults of omitted widgets filled in. Once the graph is known to be well formed, what its
outputs describe (`Output.describe`) is followed along the links in order, so a node's own rule
across its inputs (`inputs_check`) can refuse, say, a depth sampler linked to a model without depth.
Whatever arrives, it answers with issues and never raises; its work grows linearly with the size of
the prompt, loops included.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .coercion import WHOLE_NUMBER_MAX, WHOLE_NUMBER_MIN, NotCoercibleError, coerce, expected, shown
from .files import FileStore
from .gc_pause import gc_paused
from .graph import ExecutableGraph, GraphNode, Link
from .limits import Limits, declared_output_pixels
from .registry import InputSpec, NodeRegistry, Unusable
from .run_order import run_order
from .sockets import ANY, COMBO, INT
from .suggest import closest, did_you_mean


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
    CUSTOM_VALIDATION_FAILED = "custom_validation_failed"  # an input's own rule (e.g. where files go)
    DEPENDENCY_CYCLE = "dependency_cycle"
    PROMPT_NO_OUTPUTS = "prompt_no_outputs"
    OUTPUT_TOO_LARGE = "output_too_large"  # beyond max_output_pixels (see engine.core.limits)
    # A linked value of the right type that this input cannot take (a model without depth into a depth
    # sampler): found by following what outputs describe, see `Output.describe` and `inputs_check`.
    INCOMPATIBLE_INPUT = "incompatible_input"


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


def validate(
    prompt: Any,
    registry: NodeRegistry,
    files: FileStore | None = None,
    targets: Iterable[str] | None = None,
    limits: Limits | None = None,
) -> Validation:
    """Check `prompt` against the node types in `registry` (and the output sizes its constants ask
    for against `limits`, the defaults if not given); see the module docstring."""
    with gc_paused():
        return _validate(prompt, registry, files or FileStore(), targets, limits or Limits())


def _validate(
    prompt: Any, registry: NodeRegistry, files: FileStore, targets: Iterable[str] | None, limits: Limits
) -> Validation:
    issues: list[ValidationIssue] = []
    if not isinstance(prompt, Mapping) or not prompt:
        kind = "an empty object" if isinstance(prompt, Mapping) else type(prompt).__name__
        message = f"a prompt is an object of nodes keyed by id, got {kind}"
        return Validation(None, [ValidationIssue(Code.INVALID_PROMPT, message)])

    raw_inputs, nodes = _read_nodes(prompt, registry, issues)
    # Nodes that did not load, by id as text (a Python caller may key nodes by number): each has its issue.
    unread = {issue.node_id for issue in issues if issue.node_id is not None}

    # Which nodes must run: the targets (or every output node) and their ancestors.
    if targets is not None:
        wanted = []
        for target in targets:
            target_id = _id_text(target)
            if target_id is None:
                message = f"a target is a node id, got {shown(target)}"
                issues.append(ValidationIssue(Code.INVALID_PROMPT, message))
            elif target_id not in nodes and target_id not in unread:
                message = f"target node {_id_shown(target_id)} is not in the graph"
                issues.append(ValidationIssue(Code.INVALID_PROMPT, message, target_id))
            else:
                wanted.append(target_id)
        wanted = [target for target in wanted if target in nodes]
    else:
        wanted = [node_id for node_id, graph_node in nodes.items() if graph_node.definition.output_node]
    if not wanted and not issues:
        message = "the graph has no output node (such as SaveImage or PreviewImage), so nothing would run"
        issues.append(ValidationIssue(Code.PROMPT_NO_OUTPUTS, message))

    needed = [node_id for node_id in _ancestors(wanted, raw_inputs) if node_id in nodes]
    for node_id in needed:
        known = len(issues)
        _check_inputs(nodes[node_id], raw_inputs[node_id], unread, nodes, files, issues)
        if len(issues) == known:
            _check_output_size(nodes[node_id], limits, issues)

    order = _ordered(needed, nodes, issues)
    if issues or order is None:
        return Validation(None, issues)
    _check_described(order, nodes, files, issues)
    if issues:
        return Validation(None, issues)
    graph = ExecutableGraph({node_id: nodes[node_id] for node_id in order}, order, wanted, prompt)
    return Validation(graph, [])


def _read_nodes(
    prompt: Mapping[Any, Any], registry: NodeRegistry, issues: list[ValidationIssue]
) -> tuple[dict[str, Mapping[str, Any]], dict[str, GraphNode]]:
    """The structure of every node: an object with a known class_type and an inputs object."""
    raw_inputs: dict[str, Mapping[str, Any]] = {}
    nodes: dict[str, GraphNode] = {}
    for raw_id, entry in prompt.items():
        node_id = raw_id if type(raw_id) is str else _id_text(raw_id)
        if node_id is None:
            message = f"node ids are text or whole numbers, got {shown(raw_id)}"
            issues.append(ValidationIssue(Code.INVALID_PROMPT, message))
            continue
        if type(entry) is not dict and not isinstance(entry, Mapping):
            issues.append(ValidationIssue(Code.INVALID_PROMPT, "node entry is not an object", node_id))
            continue
        class_type = entry.get("class_type")
        if type(class_type) is not str:
            message = "node has no 'class_type'; every node names its type"
            issues.append(ValidationIssue(Code.INVALID_PROMPT, message, node_id))
            continue
        definition = registry.get(class_type)
        inputs = entry.get("inputs", {})
        if definition is None:
            suggestion = did_you_mean(class_type, (known.class_name for known in registry))
            hint = suggestion or " is a custom node pack missing?"
            message = f"unknown node type '{_id_shown(class_type)}';{hint} (`depthgraph nodes`)"
            issues.append(ValidationIssue(Code.UNKNOWN_NODE_TYPE, message, node_id, class_type))
            if isinstance(inputs, Mapping):
                raw_inputs[node_id] = inputs  # walked through, so problems above it are found too
            continue
        if type(inputs) is not dict and not isinstance(inputs, Mapping):
            message = "'inputs' must be an object of input name to value or link"
            issues.append(ValidationIssue(Code.INVALID_PROMPT, message, node_id, class_type))
            continue
        meta = entry.get("_meta")
        title = meta.get("title", "") if type(meta) is dict else ""
        nodes[node_id] = GraphNode(node_id, definition, {}, {}, title if type(title) is str else "")
        raw_inputs[node_id] = inputs
    return raw_inputs, nodes


def _id_text(value: Any) -> str | None:
    """A node id as text: text as it is, a whole number written out (a Python caller may number its
    nodes); None for anything else, or a number too long to be an id."""
    if type(value) is str:
        return value
    if type(value) is int and value.bit_length() <= 64:
        return str(value)
    return None


def _id_shown(node_id: str) -> str:
    """A node id (or type name) as messages show it: as it is, unless it is too long to read."""
    return node_id if len(node_id) <= 64 else shown(node_id)


def _ancestors(wanted: Sequence[str], raw_inputs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """`wanted` and every known node they read from, iteratively (graphs may be very deep)."""
    seen = set(wanted)
    found = list(wanted)
    stack = list(wanted)
    while stack:
        for value in raw_inputs[stack.pop()].values():
            if type(value) is list and len(value) == 2:
                source = _id_text(value[0])
                if source is not None and source not in seen and source in raw_inputs:
                    seen.add(source)
                    found.append(source)
                    stack.append(source)
    return found


def _check_inputs(
    graph_node: GraphNode,
    inputs: Mapping[str, Any],
    unread: Collection[str],
    nodes: Mapping[str, GraphNode],
    files: FileStore,
    issues: list[ValidationIssue],
) -> None:
    """Check every declared input of one node; fill its constants and links (in declared order)."""
    definition = graph_node.definition
    for spec in definition.inputs:
        value = inputs.get(spec.name)
        if value is None:
            if spec.default is not None:
                graph_node.constants[spec.name] = spec.default
            elif spec.required:
                message = "this input is required"
                given = [name for name in inputs if name not in definition.inputs_by_name]
                if found := closest(spec.name, given):
                    message += f" (the node is given {found[0]!r}: a misspelling of {spec.name!r}?)"
                _report(issues, graph_node, spec, Code.REQUIRED_INPUT_MISSING, message)
            continue
        if type(value) is list:
            # Fast path for the common well-formed link; `_check_link` explains anything else.
            if len(value) == 2 and type(value[0]) is str and type(value[1]) is int:
                source = nodes.get(value[0])
                outputs = source.definition.outputs if source is not None else ()
                if 0 <= value[1] < len(outputs) and outputs[value[1]].type == spec.type:
                    graph_node.links[spec.name] = tuple.__new__(Link, value)
                    continue
            problem = _check_link(graph_node, spec, value, unread, nodes)
        else:
            problem = _check_constant(graph_node, spec, value, files)
        if problem is not None:
            _report(issues, graph_node, spec, *problem)


def _report(
    issues: list[ValidationIssue], graph_node: GraphNode, spec: InputSpec, code: Code, message: str
) -> None:
    issues.append(ValidationIssue(code, message, graph_node.node_id, graph_node.class_type, spec.name))


def _check_link(
    graph_node: GraphNode,
    spec: InputSpec,
    value: list[Any],
    unread: Collection[str],
    nodes: Mapping[str, GraphNode],
) -> tuple[Code, str] | None:
    source_id = _id_text(value[0]) if len(value) == 2 else None
    if source_id is None or type(value[1]) is not int:
        return Code.BAD_LINKED_INPUT, f"a link is [node id, output index], got {shown(value)}"
    link = tuple.__new__(Link, (source_id, value[1]))  # Link(...) without NamedTuple's slower __new__
    source = nodes.get(link.source)
    if source is None:
        if link.source in unread:
            return None  # the source node has its own issue already
        return Code.BAD_LINKED_INPUT, f"links to node {_id_shown(link.source)}, which is not in the graph"
    outputs = source.definition.outputs
    if not 0 <= link.output < len(outputs):
        return Code.BAD_LINKED_INPUT, (
            f"links to output {shown(link.output)} of node {link.source} ({source.class_type}), "
            f"which has {len(outputs)} output(s)"
        )
    produced = outputs[link.output].type
    if produced != spec.type and produced != ANY and spec.type != ANY:
        return Code.RETURN_TYPE_MISMATCH, (
            f"expects {spec.type} but is linked to output {link.output} of node {link.source} "
            f"({source.class_type}), which gives {produced}"
        )
    graph_node.links[spec.name] = link
    return None


def _check_constant(
    graph_node: GraphNode, spec: InputSpec, value: Any, files: FileStore
) -> tuple[Code, str] | None:
    try:
        graph_node.constants[spec.name] = checked_constant(spec, value, files)
    except ConstantError as error:
        return error.code, str(error)
    return None


class ConstantError(ValueError):
    """A typed-in value that does not fit its input; `code` says how."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code


def checked_constant(spec: InputSpec, value: Any, files: FileStore) -> Any:
    """`value` read as the input's type and checked against its bounds, its choices and its own rule,
    or `ConstantError`. Whole numbers stay within 64 bits where the input declares no bounds."""
    try:
        coerced = coerce(spec.type, value)
    except NotCoercibleError:
        raise ConstantError(Code.INVALID_INPUT_TYPE, f"{shown(value)} is not {expected(spec.type)}") from None
    low, high = spec.min, spec.max
    if spec.type == INT:
        low = WHOLE_NUMBER_MIN if low is None else low
        high = WHOLE_NUMBER_MAX if high is None else high
    if low is not None and coerced < low:
        raise ConstantError(Code.VALUE_SMALLER_THAN_MIN, f"{shown(coerced)} is below the minimum {low}")
    if high is not None and coerced > high:
        raise ConstantError(Code.VALUE_BIGGER_THAN_MAX, f"{shown(coerced)} is above the maximum {high}")
    if spec.check is not None:
        problem = spec.check(coerced, files)
        if problem is not None:
            raise ConstantError(Code.CUSTOM_VALIDATION_FAILED, problem)
    if spec.type == COMBO:
        choices = spec.choices(files)
        # An upload picker also takes ComfyUI's annotated names (`x.png [input]`) of existing files.
        if coerced not in choices and not (spec.upload and files.annotated_exists(coerced)):
            if spec.missing_hint is not None:
                raise ConstantError(Code.VALUE_NOT_IN_LIST, spec.missing_hint(files, coerced))
            if not choices:
                raise ConstantError(
                    Code.VALUE_NOT_IN_LIST, f"{shown(coerced)} is not available: there are no choices"
                )
            listed = ", ".join(repr(choice) for choice in list(choices)[:12])
            more = ", ..." if len(choices) > 12 else ""
            raise ConstantError(
                Code.VALUE_NOT_IN_LIST, f"{shown(coerced)} is not one of the choices [{listed}{more}]"
            )
    return coerced


def _check_output_size(graph_node: GraphNode, limits: Limits, issues: list[ValidationIssue]) -> None:
    """Refuse a node whose constants alone ask for an output beyond the budget (see engine.core.limits)."""
    if graph_node.definition.output_size is None:
        return
    try:
        pixels = declared_output_pixels(graph_node.definition, graph_node.constants)
    except Exception:  # a declaration that cannot read these constants: the run-time check decides
        return
    problem = limits.output_problem(pixels)
    if problem is not None:
        issue = ValidationIssue(Code.OUTPUT_TOO_LARGE, problem, graph_node.node_id, graph_node.class_type)
        issues.append(issue)


def _check_described(
    order: Sequence[str], nodes: Mapping[str, GraphNode], files: FileStore, issues: list[ValidationIssue]
) -> None:
    """Follow what outputs describe along the links, in running order: refuse links from `Unusable`
    outputs, and report what each node's `inputs_check` finds. A describe or check that raises counts
    as telling nothing (the node checks again when it runs)."""
    described: dict[tuple[str, int], Any] = {}
    for node_id in order:
        graph_node = nodes[node_id]
        definition = graph_node.definition
        check = definition.inputs_check
        describes = [(index, o.describe) for index, o in enumerate(definition.outputs) if o.describe]
        if not described and check is None and not describes:
            continue  # nothing described so far, nothing to check or describe here
        known = dict(graph_node.constants)
        for name, link in graph_node.links.items():
            description = described.get(link)
            if isinstance(description, Unusable):
                issue = ValidationIssue(
                    Code.INCOMPATIBLE_INPUT, description.reason, node_id, graph_node.class_type, name
                )
                issues.append(issue)
            elif description is not None:
                known[name] = description
        if check is not None:
            problems = _told(check, known, files) or {}
            for name, message in problems.items():
                code = Code.INCOMPATIBLE_INPUT if name in graph_node.links else Code.CUSTOM_VALIDATION_FAILED
                issues.append(ValidationIssue(code, message, node_id, graph_node.class_type, name))
        for index, describe in describes:
            description = _told(describe, known, files)
            if description is not None:
                described[(node_id, index)] = description


def _told(function: Any, *arguments: Any) -> Any:
    """What a node's describe or check function says, or None if it raises."""
    try:
        return function(*arguments)
    except Exception:
        return None


def _ordered(
    needed: Sequence[str], nodes: Mapping[str, GraphNode], issues: list[ValidationIssue]
) -> list[str] | None:
    """The needed nodes in run order, or None with an issue on every node of a loop."""
    order, cycle = run_order(needed, nodes)
    if not cycle:
        return order
    message = f"the graph loops back on itself ({_loop_text(cycle)}); remove one of these links"
    for node_id in cycle:
        issues.append(ValidationIssue(Code.DEPENDENCY_CYCLE, message, node_id, nodes[node_id].class_type))
    return None


LOOP_SHOWN = 12  # nodes of a loop named in its message; a longer loop is shortened in the middle


def _loop_text(cycle: Sequence[str]) -> str:
    """ "a -> b -> a"; a long loop names its first and last nodes only, so that each of its nodes'
    messages stays short (every node on it gets one)."""
    if len(cycle) <= LOOP_SHOWN:
        names = [_id_shown(node_id) for node_id in cycle]
    else:
        half = LOOP_SHOWN // 2
        hidden = f"... ({len(cycle) - 2 * half:,} more)"
        names = [*map(_id_shown, cycle[:half]), hidden, *map(_id_shown, cycle[-half:])]
    return " -> ".join([*names, names[0]])
