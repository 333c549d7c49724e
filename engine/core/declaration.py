"""Reading a node's declaration from its function, and the checks it passes when its module is imported.

A node function's parameters are its inputs, each declared once, as the parameter's default::

    def noise_latent(
        model: ModelHandle = Socket(MODEL),
        seed: int = Int(0, min=0, max=MAX_SEED),
        scheduler: str = Combo(SCHEDULERS),
        *,
        context: NodeContext,
    ) -> tuple[dict[str, Any]]: ...

The parameter names the input; `Socket`, `Int`, `Float`, `String`, `FilenamePrefix`, `Boolean` or
`Combo` (`engine.core.registry`) says the rest. `context` is the one parameter that is not an input (it is
keyword-only here because Python wants it after the defaults). The function the node keeps takes
the inputs' plain defaults instead of those declarations (the seed's 0, an optional socket's None),
so it is called from Python like any other function; an input without a default (a required socket)
must be given.

Nodes declared the older way, `inputs=[Input.int("seed", 0), ...]` beside plain parameters, are read
too: there the inputs and the parameters must name the same things.

The checks, each a `NodeDeclarationError` naming the node and what to change: every parameter but
`context` is an input and every input a parameter; no input name repeats; a default is of its
input's type (an INT's a whole number, a FLOAT's written as a float, a STRING's text, a BOOLEAN's
True or False), within min and max, and among a fixed combo's choices; the outputs are `Output`s,
and a node without any is an output node.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .sockets import BOOLEAN, COMBO, FLOAT, INT, STRING
from .specs import InputSpec, NodeDeclarationError, Output

CONTEXT = "context"


class _Required:
    """The stand-in default of an input that has none, until the call says what it is."""

    def __repr__(self) -> str:
        return "<required>"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Declaration:
    """What a node function declares: its inputs in order, the function to call, whether it wants
    the run's context."""

    inputs: tuple[InputSpec, ...]
    function: Callable[..., Any]
    wants_context: bool


def _error(class_name: str, problem: str, fix: str) -> NodeDeclarationError:
    return NodeDeclarationError(f"node {class_name}: {problem}; {fix}")


def check_node_name(class_name: Any, description: Any) -> None:
    """Refuse a node whose name is not a text, or that has no description."""
    if not isinstance(class_name, str) or not class_name:
        raise NodeDeclarationError(
            f"node() takes the node's name first, not {class_name!r}; write "
            '@node("MyNode", category=..., description=..., outputs=[...])'
        )
    if not isinstance(description, str) or not description.strip():
        raise _error(class_name, "has no description", "give it one line for the editor: description=...")


def read_declaration(
    class_name: str,
    function: Callable[..., Any],
    inputs: Sequence[InputSpec],
    outputs: Sequence[Output],
    output_node: bool,
) -> Declaration:
    """The inputs `function` declares (or `inputs`, the older way), checked; see the module docstring."""
    parameters = _parameters(class_name, function)
    in_parameters = any(isinstance(parameter.default, InputSpec) for parameter in parameters.values())
    if in_parameters and inputs:
        raise _error(
            class_name,
            "declares inputs both in inputs=[...] and as parameter defaults",
            "declare each input once, as its parameter's default, and drop inputs=",
        )
    if inputs:
        specs = tuple(inputs)
        _check_unique(class_name, specs)
        _match_parameters(class_name, parameters, specs)
        call = function
    else:
        specs = _inputs_of(class_name, parameters)
        call = _with_plain_defaults(function, specs)
    for spec in specs:
        _check_spec(class_name, spec)
    _check_outputs(class_name, outputs, output_node)
    return Declaration(specs, call, CONTEXT in parameters)


def _parameters(class_name: str, function: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    if not callable(function):
        raise _error(class_name, f"@node(...) decorates {function!r}", "put it right above a def")
    parameters = inspect.signature(function).parameters
    for parameter in parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise _error(
                class_name,
                f"its function takes {'*' if parameter.kind is parameter.VAR_POSITIONAL else '**'}"
                f"{parameter.name}",
                "name each input as a parameter of its own",
            )
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise _error(
                class_name,
                f"parameter {parameter.name!r} is positional-only, but inputs are passed by name",
                "remove the / from the parameters",
            )
    return parameters


def _suggestion(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _spec_for_plain_default(name: str, default: Any) -> str:
    """How to declare the input a parameter with a plain default (0.5, "", None) stands for."""
    if default is None:
        return f"{name}=Socket(TYPE, optional=True)"
    for kind, constructor in (
        (bool, "Boolean"),
        (int, "Int"),
        (float, "Float"),
        (str, "String"),
    ):
        if isinstance(default, kind):
            return f"{name}={constructor}({default!r})"
    return f"{name}=Socket(TYPE)"


def _inputs_of(class_name: str, parameters: Mapping[str, inspect.Parameter]) -> tuple[InputSpec, ...]:
    """The inputs the parameters declare as their defaults, named after them."""
    specs = []
    for name, parameter in parameters.items():
        default = parameter.default
        if name == CONTEXT:
            if isinstance(default, InputSpec):
                raise _error(
                    class_name,
                    "an input is named 'context', the name of the run's context",
                    "give the input another name",
                )
            continue
        if not isinstance(default, InputSpec):
            if default is parameter.empty:
                problem = f"parameter {name!r} is not declared as an input"
                fix = (
                    f"give it its input as its default, e.g. {name}=Socket(IMAGE) or {name}=Int(0), "
                    "or name it context to get the run's context"
                )
            else:
                problem = f"parameter {name!r} has the plain default {default!r}, not an input"
                fix = f"declare it as one, e.g. {_spec_for_plain_default(name, default)}"
            raise _error(class_name, problem, fix)
        if default.name and default.name != name:
            raise _error(
                class_name,
                f"parameter {name!r} has as its default the input named {default.name!r}",
                f"rename the parameter to {default.name} or leave the input unnamed",
            )
        specs.append(replace(default, name=name))
    return tuple(specs)


def _plain_default(spec: InputSpec) -> Any:
    """What the function gets for an input it is called without."""
    if spec.is_widget and spec.default is not None:
        return spec.default
    return REQUIRED if spec.required else None


def _with_plain_defaults(function: Callable[..., Any], specs: Sequence[InputSpec]) -> Callable[..., Any]:
    """`function` with its inputs' plain defaults in place of their declarations."""
    defaults = {spec.name: _plain_default(spec) for spec in specs}
    signature = inspect.signature(function)
    plain = signature.replace(
        parameters=[
            parameter.replace(default=defaults[name]) if name in defaults else parameter
            for name, parameter in signature.parameters.items()
        ]
    )

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        bound = plain.bind(*args, **kwargs)
        bound.apply_defaults()
        missing = [name for name, value in bound.arguments.items() if value is REQUIRED]
        if missing:
            raise TypeError(f"{function.__name__}() is missing the input {', '.join(map(repr, missing))}")
        return function(*bound.args, **bound.kwargs)

    call.__signature__ = plain  # type: ignore[attr-defined]
    return call


def _check_unique(class_name: str, specs: Sequence[InputSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if not spec.name:
            raise _error(
                class_name,
                f"an input of type {spec.type} in inputs=[...] has no name",
                "name it (Input.int('seed', 0)), or declare it as a parameter's default",
            )
        if spec.name in seen:
            raise _error(
                class_name,
                f"input names repeat: {spec.name!r} is declared twice",
                "give each input its own name",
            )
        seen.add(spec.name)


def _match_parameters(
    class_name: str, parameters: Mapping[str, inspect.Parameter], specs: Sequence[InputSpec]
) -> None:
    """For inputs=[...]: each input has its parameter, each parameter (but context) its input."""
    names = [spec.name for spec in specs]
    arguments = [name for name in parameters if name != CONTEXT]
    for name in arguments:
        if name not in names:
            raise _error(
                class_name,
                f"parameter {name!r} is not one of its inputs ({', '.join(names) or 'none'})"
                + _suggestion(name, names),
                "rename the parameter after the input it receives, or declare the input",
            )
    for spec in specs:
        parameter = parameters.get(spec.name)
        if parameter is None:
            raise _error(
                class_name,
                f"input {spec.name!r} has no parameter of that name" + _suggestion(spec.name, arguments),
                f"add {spec.name} to the function's parameters",
            )
        if not spec.required and spec.default is None and parameter.default is parameter.empty:
            raise _error(
                class_name,
                f"input {spec.name!r} is optional, so the function is called without it when it is "
                "not linked",
                f"give the parameter a default: {spec.name}=None",
            )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_type(class_name: str, spec: InputSpec) -> None:
    """A widget's default is of its type."""
    default, where = spec.default, f"the default {spec.default!r} of {spec.type} input {spec.name!r}"
    if spec.type == INT and not (_is_number(default) and isinstance(default, int)):
        raise _error(class_name, f"{where} is not a whole number", "give an int, e.g. Int(1)")
    if spec.type == FLOAT and not (_is_number(default) and isinstance(default, float)):
        shown = f"Float({float(default)!r})" if _is_number(default) else "Float(0.5)"
        raise _error(class_name, f"{where} is not written as a float", f"write it as one, e.g. {shown}")
    if spec.type == STRING and not isinstance(default, str):
        raise _error(class_name, f"{where} is not text", 'give a string, e.g. String("")')
    if spec.type == BOOLEAN and not isinstance(default, bool):
        raise _error(class_name, f"{where} is not True or False", "give a bool, e.g. Boolean(False)")


def _check_bounds(class_name: str, spec: InputSpec) -> None:
    low, high, default = spec.min, spec.max, spec.default
    if low is not None and high is not None and low > high:
        raise _error(class_name, f"input {spec.name!r} has min {low!r} above its max {high!r}", "swap them")
    if spec.step is not None and spec.step <= 0:
        raise _error(class_name, f"input {spec.name!r} has step {spec.step!r}", "give a step above 0")
    if low is not None and default < low:
        raise _error(
            class_name,
            f"the default {default!r} of input {spec.name!r} is below its min {low!r}",
            f"raise the default to at least {low!r}, or lower min",
        )
    if high is not None and default > high:
        raise _error(
            class_name,
            f"the default {default!r} of input {spec.name!r} is above its max {high!r}",
            f"lower the default to at most {high!r}, or raise max",
        )


def _check_choices(class_name: str, spec: InputSpec) -> None:
    """A fixed list of choices is not empty and holds the default (a function of the files is asked
    only at validation, when the files are there)."""
    if spec.options is None or callable(spec.options):
        return
    choices = list(spec.options)
    if not choices:
        raise _error(class_name, f"combo input {spec.name!r} has no choices", "list at least one")
    if spec.default is not None and spec.default not in choices:
        listed = ", ".join(map(repr, choices))
        raise _error(
            class_name,
            f"the default {spec.default!r} of input {spec.name!r} is not one of its choices ({listed})"
            + _suggestion(str(spec.default), map(str, choices)),
            "make the default one of them",
        )


def _check_spec(class_name: str, spec: InputSpec) -> None:
    if not spec.is_widget:
        if not isinstance(spec.type, str) or not spec.type:
            raise _error(class_name, f"socket {spec.name!r} has no type", "give one, e.g. Socket(IMAGE)")
        return
    if spec.type == COMBO:
        _check_choices(class_name, spec)
        return
    if spec.default is None:  # a typed socket such as Socket(STRING): its value comes from a link
        return
    _check_type(class_name, spec)
    if spec.type in (INT, FLOAT):
        _check_bounds(class_name, spec)


def _check_outputs(class_name: str, outputs: Sequence[Output], output_node: bool) -> None:
    for index, output in enumerate(outputs):
        if not isinstance(output, Output):
            raise _error(
                class_name, f"outputs[{index}] is {output!r}, not an Output", f"write Output({output!r})"
            )
    if not outputs and not output_node:
        raise _error(
            class_name,
            "declares no outputs",
            "declare what it returns (outputs=[Output(IMAGE)]), or set output_node=True for a node "
            "that only saves or shows something",
        )
