"""Node declarations and the registry that collects them.

A node is declared once: one function, whose parameters are its inputs. Each parameter's default
says what the input is (its type, default, bounds, choices and tooltip), and `node` adds the rest::

    @node(
        "ImageBrighten",
        display_name="Brighten Image",
        category="image",
        description="Adds a constant to every pixel.",
        outputs=[Output(IMAGE)],
    )
    def image_brighten(
        image: torch.Tensor = Socket(IMAGE),
        amount: float = Float(0.1, min=-1.0, max=1.0, tooltip="added to each channel"),
    ) -> tuple[torch.Tensor]:
        return ((image + amount).clamp(0, 1),)

`Socket`, `Int`, `Float`, `String`, `FilenamePrefix`, `Boolean` and `Combo` make the inputs; a
parameter named `context` is not an input but the run's `NodeContext`. The declaration is read and
checked when the module is imported (`engine.core.declaration`): a mistake raises `NodeDeclarationError`
naming the node and the fix. The decorated name is a `NodeDefinition`, still callable as the function
with plain values (`image_brighten(image, 0.2)`), the inputs' defaults filled in.

The decorator registers nothing by itself. A `NodeRegistry` collects the definitions found in
node-pack modules (see `engine.app.plugins`), refuses a second node under a name that is already taken,
and remembers which nodes are built in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .declaration import check_node_name, read_declaration
from .sockets import ANY, BOOLEAN, COMBO, FLOAT, INT, STRING, WIDGET_TYPES
from .specs import (
    Boolean,
    Combo,
    Describe,
    FilenamePrefix,
    Fingerprint,
    Float,
    Input,
    InputsCheck,
    InputSpec,
    Int,
    MissingHint,
    NodeDeclarationError,
    NodeOutput,
    OptionsSource,
    Output,
    OutputSize,
    Socket,
    String,
    Unusable,
    ValueCheck,
    inside_output_folder,
)

if TYPE_CHECKING:
    pass


__all__ = [
    "ANY",
    "BOOLEAN",
    "COMBO",
    "FLOAT",
    "INT",
    "STRING",
    "WIDGET_TYPES",
    "Boolean",
    "Combo",
    "Describe",
    "DuplicateNodeError",
    "FilenamePrefix",
    "Fingerprint",
    "Float",
    "Input",
    "InputSpec",
    "InputsCheck",
    "Int",
    "MissingHint",
    "NodeDeclarationError",
    "NodeDefinition",
    "NodeOutput",
    "NodeRegistry",
    "OptionsSource",
    "Output",
    "OutputSize",
    "Socket",
    "String",
    "Unusable",
    "ValueCheck",
    "declared_in",
    "inside_output_folder",
    "node",
]


@dataclass(frozen=True)
class NodeDefinition:
    """Everything the engine knows about one node type. Calling it calls its function."""

    class_name: str
    display_name: str
    category: str
    description: str
    # Called with the inputs by name (and `context`); inputs left out get their plain defaults.
    function: Callable[..., Any]
    inputs: tuple[InputSpec, ...] = ()
    outputs: tuple[Output, ...] = ()
    version: int = 1
    output_node: bool = False
    # For nodes that read the outside world: a string that changes when that world changes
    # (a file's hash). It is given the node's constant inputs and the file store.
    fingerprint: Fingerprint | None = None
    module: str = ""
    wants_context: bool = False
    # How big its output will be, for nodes that make or enlarge images, masks, depth maps or latents.
    output_size: OutputSize | None = None
    # Its own rule across its inputs, checked at validation (see `InputsCheck`).
    inputs_check: InputsCheck | None = None
    inputs_by_name: Mapping[str, InputSpec] = field(default_factory=dict, compare=False, repr=False)
    lazy_inputs: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs_by_name", {spec.name: spec for spec in self.inputs})
        object.__setattr__(self, "lazy_inputs", frozenset(spec.name for spec in self.inputs if spec.lazy))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The node function on plain values, e.g. `noise_latent(model, latent, 5, 0.8, 4, "ddim")`."""
        return self.function(*args, **kwargs)


def node(
    class_name: str,
    *,
    display_name: str | None = None,
    category: str,
    description: str,
    inputs: Sequence[InputSpec] = (),
    outputs: Sequence[Output] = (),
    version: int = 1,
    output_node: bool = False,
    fingerprint: Fingerprint | None = None,
    output_size: OutputSize | None = None,
    inputs_check: InputsCheck | None = None,
) -> Callable[[Callable[..., Any]], NodeDefinition]:
    """Declare a node. Its inputs are the function's parameters, each with its input as its default
    (see the module docstring); `inputs=[Input.int("seed", 0), ...]` with plain parameters is the
    older way, still read. The function receives the inputs as keyword arguments (and `context`, a
    `NodeContext`, if it has a parameter of that name) and returns a tuple with one value per output,
    or a `NodeOutput` when it also has something to show. A node with no outputs is an `output_node`.

    A node that reads the outside world (a file) declares a `fingerprint`: given its typed-in inputs
    and the file store, a string that changes when that world does, so the node runs again.

    A node that makes or enlarges images, masks, depth maps or latents declares `output_size`: given
    its inputs by name, the pixels (width × height × batch; a latent counts at the size of its image)
    of the largest thing it will make, or None when it cannot tell. Validation calls it with the
    typed-in constants only (a linked input is missing: reading it raises KeyError, which counts as
    "cannot tell"; a count it can only bound from below, such as an unknown batch taken as 1, is fine),
    and the scheduler calls it again with the real values just before the node runs. Beyond the
    `max_output_pixels` setting the node is refused, before anything is allocated.

    What a value will be can be told before anything runs: an `Output(..., describe=...)` says it from
    the node's constants and what its linked inputs describe (a loader: the model family of the name
    typed in), and `inputs_check` is the node's rule across its inputs, given the same (a sampler:
    "this model takes no depth"). Validation reports what `inputs_check` returns, and refuses any link
    from an output described as `Unusable`, before anything runs; the node still checks at run time
    what validation could not tell.

    The declaration is checked here, when the module is imported (`engine.core.declaration` lists the
    rules); a mistake raises `NodeDeclarationError`."""

    check_node_name(class_name, description)

    def declare(function: Callable[..., Any]) -> NodeDefinition:
        declaration = read_declaration(class_name, function, inputs, outputs, output_node)
        return NodeDefinition(
            class_name=class_name,
            display_name=display_name or class_name,
            category=category,
            description=description,
            function=declaration.function,
            inputs=declaration.inputs,
            outputs=tuple(outputs),
            version=version,
            output_node=output_node,
            fingerprint=fingerprint,
            module=function.__module__,
            wants_context=declaration.wants_context,
            output_size=output_size,
            inputs_check=inputs_check,
        )

    return declare


def declared_in(module: ModuleType) -> list[NodeDefinition]:
    """The nodes declared in `module` itself (not ones it imports from elsewhere)."""
    return [
        value
        for value in vars(module).values()
        if isinstance(value, NodeDefinition) and value.module == module.__name__
    ]


class DuplicateNodeError(ValueError):
    """A node was declared under a class name that is already registered."""


class NodeRegistry:
    """The node types an engine can run, by class name."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeDefinition] = {}
        self._builtin: set[str] = set()

    def add(self, definition: NodeDefinition, *, builtin: bool = True) -> None:
        existing = self._nodes.get(definition.class_name)
        if existing is not None:
            kind = "a built-in node" if definition.class_name in self._builtin else "another node"
            raise DuplicateNodeError(
                f"{definition.class_name} from {definition.module} is already registered as {kind} "
                f"(from {existing.module}); rename the class to use it"
            )
        self._nodes[definition.class_name] = definition
        if builtin:
            self._builtin.add(definition.class_name)

    def add_module(self, module: ModuleType, *, builtin: bool = True) -> list[str]:
        """Register every node declared in `module` itself (not ones it imports); return their names."""
        definitions = declared_in(module)
        for definition in definitions:
            self.add(definition, builtin=builtin)
        return [definition.class_name for definition in definitions]

    def get(self, class_name: str) -> NodeDefinition | None:
        return self._nodes.get(class_name)

    def is_builtin(self, class_name: str) -> bool:
        return class_name in self._builtin

    def __contains__(self, class_name: object) -> bool:
        return class_name in self._nodes

    def __iter__(self) -> Iterator[NodeDefinition]:
        return iter(self._nodes.values())

    def __len__(self) -> int:
        return len(self._nodes)
