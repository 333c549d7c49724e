"""Declaring a node with its inputs as its parameters' defaults, and the mistakes refused at import."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from depthgraph.engine.app.plugins import PackReport, load_custom_nodes
from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.registry import (
    Boolean,
    Combo,
    Float,
    Input,
    Int,
    NodeDeclarationError,
    NodeDefinition,
    NodeRegistry,
    Output,
    Socket,
    String,
    node,
)
from depthgraph.engine.core.sockets import FLOAT, INT
from depthgraph.engine.core.subchain import SubChain

from tests.engine.conftest import Runner


def declare(**options: Any) -> Any:
    """`node` with a name and the keyword arguments every node needs, for the mistakes below."""
    options = {
        "category": "test",
        "description": "A node with a mistake.",
        "outputs": [Output(INT)],
    } | options
    return node(options.pop("class_name", "Mistaken"), **options)


def test_a_misspelled_parameter_is_refused_with_the_input_it_likely_means() -> None:
    with pytest.raises(NodeDeclarationError) as refused:

        @declare(inputs=[Input.int("seed", 0), Input.int("steps", 20)])
        def mistaken(sed: int, steps: int) -> tuple[int]:
            return (sed,)

    message = str(refused.value)
    assert message.startswith("node Mistaken: parameter 'sed' is not one of its inputs (seed, steps)")
    assert "did you mean 'seed'?" in message
    assert "rename the parameter after the input it receives" in message


def test_an_input_without_a_parameter_is_refused() -> None:
    with pytest.raises(
        NodeDeclarationError, match=r"^node Mistaken: input 'steps' has no parameter"
    ) as refused:

        @declare(inputs=[Input.int("seed", 0), Input.int("steps", 20)])
        def mistaken(seed: int) -> tuple[int]:
            return (seed,)

    assert "add steps to the function's parameters" in str(refused.value)


def test_a_parameter_that_declares_no_input_is_refused() -> None:
    with pytest.raises(NodeDeclarationError) as bare:

        @declare()
        def mistaken(amount: float, image: Any = Socket("IMAGE")) -> tuple[int]:
            return (0,)

    assert "node Mistaken: parameter 'amount' is not declared as an input" in str(bare.value)
    assert "or name it context" in str(bare.value)

    with pytest.raises(NodeDeclarationError) as plain:

        @declare()
        def also_mistaken(amount: float = 0.5) -> tuple[int]:
            return (0,)

    assert "parameter 'amount' has the plain default 0.5" in str(plain.value)
    assert "declare it as one, e.g. amount=Float(0.5)" in str(plain.value)


def test_an_optional_input_needs_a_parameter_default_in_the_older_style() -> None:
    with pytest.raises(NodeDeclarationError, match=r"input 'mask' is optional.*give the parameter a default"):

        @declare(inputs=[Input.socket("image", "IMAGE"), Input.socket("mask", "MASK", optional=True)])
        def mistaken(image: Any, mask: Any) -> tuple[int]:
            return (0,)


def test_a_default_above_max_is_refused() -> None:
    with pytest.raises(NodeDeclarationError) as refused:

        @declare(class_name="Steps")
        def steps(steps: int = Int(5000, min=1, max=1000)) -> tuple[int]:
            return (steps,)

    assert str(refused.value) == (
        "node Steps: the default 5000 of input 'steps' is above its max 1000; lower the default to at "
        "most 1000, or raise max"
    )


def test_a_default_below_min_is_refused() -> None:
    with pytest.raises(NodeDeclarationError) as refused:

        @declare(class_name="Strength", outputs=[Output(FLOAT)])
        def strength(strength: float = Float(-0.5, min=0.0, max=1.0)) -> tuple[float]:
            return (strength,)

    assert str(refused.value) == (
        "node Strength: the default -0.5 of input 'strength' is below its min 0.0; raise the default to "
        "at least 0.0, or lower min"
    )


def test_bounds_in_the_wrong_order_are_refused() -> None:
    with pytest.raises(
        NodeDeclarationError, match=r"node Mistaken: input 'size' has min 10 above its max 1; swap"
    ):

        @declare()
        def mistaken(size: int = Int(5, min=10, max=1)) -> tuple[int]:
            return (size,)


def test_a_default_that_is_not_among_the_choices_is_refused() -> None:
    with pytest.raises(NodeDeclarationError) as refused:

        @declare()
        def mistaken(scheduler: str = Combo(("ddim", "euler"), default="dim")) -> tuple[int]:
            return (0,)

    assert str(refused.value) == (
        "node Mistaken: the default 'dim' of input 'scheduler' is not one of its choices ('ddim', "
        "'euler') (did you mean 'ddim'?); make the default one of them"
    )


@pytest.mark.parametrize(
    ("spec", "problem", "fix"),
    [
        (Int(0.5), "the default 0.5 of INT input 'value' is not a whole number", "give an int, e.g. Int(1)"),
        (Int(True), "the default True of INT input 'value' is not a whole number", "give an int"),
        (Float(1), "the default 1 of FLOAT input 'value' is not written as a float", "e.g. Float(1.0)"),
        (String(3), "the default 3 of STRING input 'value' is not text", 'e.g. String("")'),
        (Boolean("yes"), "the default 'yes' of BOOLEAN input 'value' is not True or False", "give a bool"),
    ],
)
def test_a_default_of_the_wrong_type_is_refused(spec: Any, problem: str, fix: str) -> None:
    with pytest.raises(NodeDeclarationError) as refused:

        @declare()
        def mistaken(value: Any = spec) -> tuple[int]:
            return (0,)

    assert str(refused.value).startswith(f"node Mistaken: {problem}; ")
    assert fix in str(refused.value)


def test_a_node_without_outputs_is_refused_unless_it_is_an_output_node() -> None:
    with pytest.raises(NodeDeclarationError) as refused:

        @declare(outputs=[])
        def mistaken(image: Any = Socket("IMAGE")) -> tuple[()]:
            return ()

    assert str(refused.value) == (
        "node Mistaken: declares no outputs; declare what it returns (outputs=[Output(IMAGE)]), or set "
        "output_node=True for a node that only saves or shows something"
    )

    @declare(class_name="Shows", outputs=[], output_node=True)
    def shows(image: Any = Socket("IMAGE")) -> tuple[()]:
        return ()

    assert shows.output_node and shows.outputs == ()


def test_an_output_given_as_a_bare_type_is_refused() -> None:
    with pytest.raises(
        NodeDeclarationError, match=r"outputs\[0\] is 'IMAGE', not an Output; write Output\('IMAGE'\)"
    ):

        @declare(outputs=["IMAGE"])
        def mistaken(image: Any = Socket("IMAGE")) -> tuple[Any]:
            return (image,)


def test_a_repeated_input_name_is_refused() -> None:
    with pytest.raises(NodeDeclarationError) as refused:

        @declare(inputs=[Input.int("a", 0), Input.int("a", 1)])
        def mistaken(a: int) -> tuple[int]:
            return (a,)

    assert str(refused.value) == (
        "node Mistaken: input names repeat: 'a' is declared twice; give each input its own name"
    )


def test_inputs_declared_twice_over_are_refused() -> None:
    with pytest.raises(NodeDeclarationError, match=r"both in inputs=.* drop inputs="):

        @declare(inputs=[Input.int("a", 0)])
        def mistaken(a: int = Int(0)) -> tuple[int]:
            return (a,)


def test_a_node_without_a_description_is_refused() -> None:
    with pytest.raises(NodeDeclarationError, match=r"^node Mistaken: has no description; give it one line"):

        @declare(description=" ")
        def mistaken(a: int = Int(0)) -> tuple[int]:
            return (a,)


def test_the_declared_inputs_are_what_the_parameters_say() -> None:
    @node("Composite", category="test", description="Every kind of input.", outputs=[Output("IMAGE")])
    def composite(
        image: Any = Socket("IMAGE", tooltip="the picture"),
        amount: float = Float(0.25, min=-1.0, max=1.0, step=0.05, display="slider", tooltip="how much"),
        count: int = Int(3, min=1, max=9, tooltip="how many"),
        mode: str = Combo(("add", "multiply"), tooltip="how"),
        label: str = String("hi", multiline=True),
        flip: bool = Boolean(False),
        mask: Any = Socket("MASK", optional=True),
        chain: SubChain | None = Socket("IMAGE", optional=True, lazy=True),
        *,
        context: NodeContext,
    ) -> tuple[Any]:
        return (image,)

    assert isinstance(composite, NodeDefinition) and composite.wants_context
    assert [spec.name for spec in composite.inputs] == [
        "image",
        "amount",
        "count",
        "mode",
        "label",
        "flip",
        "mask",
        "chain",
    ]
    specs = composite.inputs_by_name
    assert (specs["image"].type, specs["image"].required, specs["image"].tooltip) == (
        "IMAGE",
        True,
        "the picture",
    )
    amount = specs["amount"]
    assert (amount.type, amount.default, amount.min, amount.max, amount.step) == (
        FLOAT,
        0.25,
        -1.0,
        1.0,
        0.05,
    )
    assert (amount.display, amount.tooltip) == ("slider", "how much")
    assert (specs["count"].type, specs["count"].default, specs["count"].step) == (INT, 3, 1)
    assert (specs["mode"].options, specs["mode"].default) == (("add", "multiply"), "add")
    assert specs["label"].multiline and specs["flip"].default is False
    assert not specs["mask"].required and composite.lazy_inputs == {"chain"}
    assert "context" not in specs


def test_the_same_node_in_the_older_style_has_the_same_inputs() -> None:
    @node("New", category="test", description="New style.", outputs=[Output(INT)])
    def new(value: int = Socket(INT), factor: int = Int(2, min=1, max=8, tooltip="times")) -> tuple[int]:
        return (value * factor,)

    @node(
        "Old",
        category="test",
        description="Older style.",
        inputs=[Input.socket("value", INT), Input.int("factor", 2, min=1, max=8, tooltip="times")],
        outputs=[Output(INT)],
    )
    def old(value: int, factor: int) -> tuple[int]:
        return (value * factor,)

    assert new.inputs == old.inputs


def test_a_declared_node_is_called_with_plain_values_and_its_defaults() -> None:
    @node("Blend", category="test", description="Blends two numbers.", outputs=[Output(FLOAT)])
    def blend(
        a: float = Socket(FLOAT),
        b: float = Socket(FLOAT),
        factor: float = Float(0.5, min=0.0, max=1.0),
        offset: float | None = Socket(FLOAT, optional=True),
    ) -> tuple[float]:
        return (a * (1 - factor) + b * factor + (offset or 0.0),)

    assert blend(2.0, 4.0) == (3.0,)
    assert blend(2.0, 4.0, 0.25, 1.0) == (3.5,)
    assert blend.function(a=2.0, b=4.0, factor=1.0) == (4.0,)
    with pytest.raises(TypeError, match="blend\\(\\) is missing the input 'b'"):
        blend(2.0)


def write(folder: Path, name: str, source: str) -> None:
    (folder / name).write_text(textwrap.dedent(source))


CUSTOM_NODE = """
    from depthgraph.engine.core.context import NodeContext
    from depthgraph.engine.core.registry import Int, Output, Socket, node


    @node("Multiply", category="custom", description="Multiplies a number.", outputs=[Output("INT")])
    def multiply(
        value: int = Socket("INT"), times: int = Int(3, min=1, max=10), *, context: NodeContext
    ) -> tuple[int]:
        if times == 1:
            context.warn("multiplying by 1 changes nothing")
        return (value * times,)
"""


def test_a_custom_node_in_the_new_style_registers_and_runs(
    tmp_path: Path, registry: NodeRegistry, run: Runner, files: FileStore
) -> None:
    write(tmp_path, "multiply.py", CUSTOM_NODE)
    report = PackReport()
    load_custom_nodes(registry, tmp_path, report)
    assert report.problems == []
    assert not registry.is_builtin("Multiply")

    result = run(
        {
            "1": {"class_type": "Number", "inputs": {"value": 14}},
            "2": {"class_type": "Multiply", "inputs": {"value": ["1", 0]}},
            "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
        }
    )
    assert result.status == "success"
    assert result.outputs["3"]["text"] == ["42"]


def test_a_custom_module_with_a_declaration_mistake_is_reported_with_the_fix_and_skipped(
    tmp_path: Path, registry: NodeRegistry
) -> None:
    write(tmp_path, "mistaken.py", CUSTOM_NODE.replace("Int(3, min=1, max=10)", "Int(30, min=1, max=10)"))
    report = PackReport()
    load_custom_nodes(registry, tmp_path, report)
    (problem,) = report.problems
    assert "mistaken.py failed to import and was skipped" in problem
    assert "node Multiply: the default 30 of input 'times' is above its max 10" in problem
    assert "Multiply" not in registry
