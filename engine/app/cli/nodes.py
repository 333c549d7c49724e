"""`depthgraph nodes`: the node list, or the schema as /object_info has it."""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Sequence

from ...core.registry import NodeDefinition
from ...core.schema import object_info
from ..engine import Engine
from .common import EXIT_OK


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


def nodes_command(args: argparse.Namespace, engine: Engine) -> int:
    if args.json:
        print(json.dumps(object_info(engine.registry, engine.files), indent=2))
    else:
        print(describe_nodes(list(engine.registry)))
    return EXIT_OK
