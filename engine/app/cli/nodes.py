"""`depthgraph nodes [NAME]`: the node list, one node's inputs in full, or the schema as /object_info
has it."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence

from ...core.files import FileStore
from ...core.registry import InputSpec, NodeDefinition
from ...core.schema import object_info
from ...core.suggest import closest
from ..engine import Engine
from .common import EXIT_FAILED, EXIT_OK

MAX_CHOICES_SHOWN = 12


def describe_nodes(definitions: Sequence[NodeDefinition]) -> str:
    """The node list as text, grouped by category."""
    lines: list[str] = []
    for category in sorted({definition.category for definition in definitions}):
        lines.append(category)
        for definition in sorted(definitions, key=lambda d: d.class_name):
            if definition.category != category:
                continue
            lines.append(f"  {definition.class_name} ({definition.display_name}): {definition.description}")
            inputs = ", ".join(
                f"{spec.name}: {spec.type}" + ("" if spec.required else "?") for spec in definition.inputs
            )
            outputs = ", ".join(output.label for output in definition.outputs) or "-"
            lines.append(textwrap.indent(f"in  {inputs or '-'}\nout {outputs}", "      "))
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe_input(spec: InputSpec, files: FileStore) -> str:
    """One input: name, type, whether it is needed, default, range or choices, and its tooltip."""
    parts = [f"{spec.name}: {spec.type}"]
    if spec.lazy:
        parts.append("(lazy: run once per value)")
    if not spec.required:
        parts.append("(optional)")
    if spec.default is not None:
        parts.append(f"default {spec.default!r}")
    if spec.min is not None or spec.max is not None:
        low = "" if spec.min is None else _number(spec.min)
        high = "" if spec.max is None else _number(spec.max)
        step = f", step {_number(spec.step)}" if spec.step not in (None, 1) else ""
        parts.append(f"range {low}..{high}{step}")
    if spec.options is not None:
        choices = list(spec.choices(files))
        shown = ", ".join(repr(choice) for choice in choices[:MAX_CHOICES_SHOWN])
        more = f", ... ({len(choices)} in all)" if len(choices) > MAX_CHOICES_SHOWN else ""
        parts.append(f"one of {shown}{more}" if choices else "one of: (none yet)")
    line = " ".join(parts)
    return f"{line}\n    {spec.tooltip}" if spec.tooltip else line


def describe_node(definition: NodeDefinition, files: FileStore) -> str:
    """Everything about one node: what it does, each input in full, its outputs."""
    lines = [
        f"{definition.class_name} ({definition.display_name}), category {definition.category}",
        *textwrap.wrap(definition.description, 100),
        "",
        "inputs:",
    ]
    for spec in definition.inputs:
        lines.append(textwrap.indent(describe_input(spec, files), "  "))
    lines.append("outputs:")
    lines += [f"  {index}: {output.label} ({output.type})" for index, output in enumerate(definition.outputs)]
    if not definition.outputs:
        lines.append("  none (an output node: it saves or shows what it gets)")
    return "\n".join(lines)


def nodes_command(args: argparse.Namespace, engine: Engine) -> int:
    name = getattr(args, "name", None)
    if name:
        definition = engine.registry.get(name)
        if definition is None:
            names = [known.class_name for known in engine.registry]
            by_display = {known.display_name.lower(): known for known in engine.registry}
            definition = by_display.get(name.lower())
            if definition is None:
                class_of = {known.display_name: known.class_name for known in engine.registry}
                near = closest(name, [*names, *class_of], count=4)
                found = list(dict.fromkeys(class_of.get(item, item) for item in near))[:3]
                hint = f"; did you mean {' or '.join(repr(item) for item in found)}?" if found else ""
                print(
                    f"depthgraph: no node type {name!r}{hint} (`depthgraph nodes` lists them all)",
                    file=sys.stderr,
                )
                return EXIT_FAILED
        if args.json:
            print(json.dumps(object_info(engine.registry, engine.files)[definition.class_name], indent=2))
        else:
            print(describe_node(definition, engine.files))
        return EXIT_OK
    if args.json:
        print(json.dumps(object_info(engine.registry, engine.files), indent=2))
    else:
        print(describe_nodes(list(engine.registry)))
    return EXIT_OK
