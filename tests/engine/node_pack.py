"""A small torch-free node pack for engine tests: numbers, text, an output node, a failing node,
a node that reports progress, a node that reads a file (with a fingerprint), one that holds bytes,
nodes that declare their output size and one that takes a filename prefix.

`CALLS` counts how often each node function ran, so tests can say exactly what executed.
"""

from __future__ import annotations

import time
import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.registry import Input, NodeOutput, NodeRegistry, Output, node
from depthgraph.engine.core.sockets import ANY
from depthgraph.engine.core.subchain import SubChain

CALLS: Counter[str] = Counter()
# Called at every progress step of `Steps` (tests use it to interrupt mid-node).
ON_STEP: list[Callable[[int], None]] = []


@node(
    "Number",
    category="test",
    description="Outputs a whole number.",
    inputs=[Input.int("value", 0, min=-1000, max=1_000_000)],
    outputs=[Output("INT")],
)
def number(value: int) -> tuple[int]:
    CALLS["Number"] += 1
    return (value,)


@node(
    "Add",
    category="test",
    description="Adds two whole numbers.",
    inputs=[Input.int("a", 0), Input.int("b", 1, min=-100, max=100)],
    outputs=[Output("INT")],
)
def add(a: int, b: int) -> tuple[int]:
    CALLS["Add"] += 1
    return (a + b,)


@node(
    "Scale",
    category="test",
    description="Multiplies a number by a factor.",
    inputs=[Input.int("value", 0), Input.float("factor", 1.0, min=0.0, max=10.0)],
    outputs=[Output("FLOAT")],
)
def scale(value: int, factor: float) -> tuple[float]:
    CALLS["Scale"] += 1
    return (value * factor,)


@node(
    "Text",
    category="test",
    description="Outputs text, upper-cased if asked, in a chosen style.",
    inputs=[
        Input.string("text", "hello", multiline=True),
        Input.boolean("shout", False),
        Input.combo("style", ("plain", "quoted")),
        Input.socket("suffix", "STRING", optional=True),
    ],
    outputs=[Output("STRING", "text")],
)
def text(text: str, shout: bool, style: str, suffix: str = "") -> tuple[str]:
    CALLS["Text"] += 1
    value = (text.upper() if shout else text) + suffix
    return (f'"{value}"' if style == "quoted" else value,)


@node(
    "Show",
    category="test",
    description="Shows any value.",
    inputs=[Input.socket("value", ANY)],
    output_node=True,
)
def show(value: Any) -> NodeOutput:
    CALLS["Show"] += 1
    return NodeOutput((), {"text": [repr(value)]})


@node(
    "Fail",
    category="test",
    description="Raises when its input is negative, else passes it on.",
    inputs=[Input.int("value", 0)],
    outputs=[Output("INT")],
)
def fail(value: int) -> tuple[int]:
    CALLS["Fail"] += 1
    if value < 0:
        raise ValueError(f"negative value {value}")
    return (value,)


@node(
    "Steps",
    category="test",
    description="Counts to `steps`, reporting progress at each step and pausing `delay` s before each.",
    inputs=[Input.int("steps", 3, min=1, max=1000), Input.float("delay", 0.0, min=0.0, max=1.0)],
    outputs=[Output("INT")],
)
def steps(steps: int, context: NodeContext, delay: float = 0.0) -> tuple[int]:
    CALLS["Steps"] += 1
    for step in range(1, steps + 1):
        for hook in ON_STEP:
            hook(step)
        if delay:
            time.sleep(delay)  # works in a worker process too, where ON_STEP hooks do not reach
        context.progress(step, steps)
    return (steps,)


def _text_files(files: FileStore) -> list[str]:
    return files.list_inputs({".txt"})


def _mtime_and_size(inputs: Mapping[str, Any], files: FileStore) -> str:
    CALLS["fingerprint"] += 1
    stat = files.resolve_input(inputs["name"]).stat()
    return f"{stat.st_mtime_ns}:{stat.st_size}"


@node(
    "ReadText",
    category="test",
    description="Reads a text file from the input folder.",
    inputs=[Input.combo("name", _text_files)],
    outputs=[Output("STRING")],
    fingerprint=_mtime_and_size,
)
def read_text(name: str, context: NodeContext) -> tuple[str]:
    CALLS["ReadText"] += 1
    return (context.files.resolve_input(name).read_text(),)


@node(
    "Blob",
    category="test",
    description="Holds `size` bytes.",
    inputs=[Input.int("size", 10, min=0, max=10**9), Input.int("tag", 0)],
    outputs=[Output("BYTES")],
)
def blob(size: int, tag: int) -> tuple[bytes]:
    CALLS["Blob"] += 1
    return (bytes(size),)


@node(
    "Bad",
    category="test",
    description="Returns the wrong number of values.",
    inputs=[],
    outputs=[Output("INT"), Output("INT")],
)
def bad() -> tuple[int]:
    return (1,)


@node(
    "Sweep",
    category="test",
    description="Runs the chain behind `value` once per number in `values`, changing `target`.",
    inputs=[
        Input.socket("value", ANY, lazy=True),
        Input.string("target", "1.value"),
        Input.string("values", "1, 2, 3"),
    ],
    outputs=[Output("LIST")],
)
def sweep(value: SubChain, target: str, values: str) -> tuple[list[Any]]:
    CALLS["Sweep"] += 1
    node_id, _, name = target.partition(".")
    checked = value.check(node_id, name, values.split(","))
    return ([value.evaluate({node_id: {name: item}}) for item in checked],)


@node(
    "Warn",
    category="test",
    description="Passes a number on, warning when it is zero.",
    inputs=[Input.int("value", 0)],
    outputs=[Output("INT")],
)
def warn(value: int, context: NodeContext) -> tuple[int]:
    if value == 0:
        context.warn("the value is zero")
    return (value,)


class Holder:
    """A value that can be watched with a weak reference."""

    def __init__(self, previous: Holder | None) -> None:
        self.previous_alive = previous is not None


HELD: list[weakref.ref[Holder]] = []


@node(
    "Hold",
    category="test",
    description="Makes a new Holder from the previous one.",
    inputs=[Input.socket("previous", "HOLDER", optional=True)],
    outputs=[Output("HOLDER")],
)
def hold(previous: Holder | None = None) -> tuple[Holder]:
    holder = Holder(previous)
    HELD.append(weakref.ref(holder))
    return (holder,)


def _canvas_size(inputs: Mapping[str, Any]) -> int:
    return int(inputs["width"]) * int(inputs["height"])


@node(
    "Canvas",
    category="test",
    description="A picture's size (width, height), declared as width × height pixels.",
    inputs=[Input.int("width", 8, min=1, max=10**6), Input.int("height", 8, min=1, max=10**6)],
    outputs=[Output("PICTURE")],
    output_size=_canvas_size,
)
def canvas(width: int, height: int) -> tuple[tuple[int, int]]:
    CALLS["Canvas"] += 1
    return ((width, height),)


def _enlarged_size(inputs: Mapping[str, Any]) -> int:
    width, height = inputs["picture"]
    return width * height * int(inputs["factor"]) ** 2


@node(
    "Enlarge",
    category="test",
    description="A picture's size times a factor on each side.",
    inputs=[Input.socket("picture", "PICTURE"), Input.int("factor", 2, min=1, max=1000)],
    outputs=[Output("PICTURE")],
    output_size=_enlarged_size,
)
def enlarge(picture: tuple[int, int], factor: int) -> tuple[tuple[int, int]]:
    CALLS["Enlarge"] += 1
    return ((picture[0] * factor, picture[1] * factor),)


@node(
    "SaveAs",
    category="test",
    description="Shows the file name start it was given (it writes nothing).",
    inputs=[Input.socket("value", ANY), Input.filename_prefix("filename_prefix", "test")],
    output_node=True,
)
def save_as(value: Any, filename_prefix: str) -> NodeOutput:
    return NodeOutput((), {"prefix": [filename_prefix]})


def make_registry() -> NodeRegistry:
    import sys

    registry = NodeRegistry()
    registry.add_module(sys.modules[__name__])
    return registry
