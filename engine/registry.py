"""Node declarations and the registry that collects them.

A node is declared once, with the `node` decorator on its one function::

    @node(
        "ImageInvert",
        display_name="Invert Image",
        category="image",
        description="Inverts an image's colours (1 - value).",
        inputs=[Input.socket("image", "IMAGE")],
        outputs=[Output("IMAGE")],
    )
    def image_invert(image):
        return (1.0 - image,)

The decorator returns a `NodeDefinition` and registers nothing by itself. A `NodeRegistry` collects
the definitions found in node-pack modules (see `engine.plugins`), refuses a second node under a name
that is already taken, and remembers which nodes are built in.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.files import FileStore

# Widget types: values typed in the editor (or given on the command line) rather than linked.
INT = "INT"
FLOAT = "FLOAT"
STRING = "STRING"
BOOLEAN = "BOOLEAN"
COMBO = "COMBO"
WIDGET_TYPES = frozenset({INT, FLOAT, STRING, BOOLEAN, COMBO})
# An output of type ANY may feed any input (ComfyUI's "*").
ANY = "*"

OptionsSource = Sequence[str] | Callable[["FileStore"], Sequence[str]]
# For dynamic choices: what to tell a user whose value is not there (where it was looked for, what to do).
MissingHint = Callable[["FileStore", str], str]
Fingerprint = Callable[[Mapping[str, Any], "FileStore"], str]
# A typed-in value's own rule, checked at validation after its type and bounds: what is wrong, or None.
ValueCheck = Callable[[Any, "FileStore"], str | None]
# How many pixels (width × height × batch) the node's largest output, or anything larger it makes on
# the way, will have, given its inputs by name; None when it cannot tell yet. See `node`.
OutputSize = Callable[[Mapping[str, Any]], int | None]


@dataclass(frozen=True)
class InputSpec:
    """One input of a node: a socket to link, or a widget with a default and bounds."""

    name: str
    type: str
    required: bool = True
    default: Any = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    # Combo choices: a fixed list, or a function of the file store (e.g. the images in the input folder).
    options: OptionsSource | None = None
    multiline: bool = False
    display: str | None = None  # "slider" or "number" for numeric widgets
    upload: str | None = None  # "image" adds the editor's upload button (ComfyUI's image_upload)
    missing_hint: MissingHint | None = None
    tooltip: str = ""
    # A lazy socket is not computed before its node runs: the node gets a `SubChain` and runs the
    # chain behind the link itself, as often as it needs, with some constants changed (a sweep).
    lazy: bool = False
    check: ValueCheck | None = None

    @property
    def is_widget(self) -> bool:
        return self.type in WIDGET_TYPES

    def choices(self, files: FileStore) -> Sequence[str]:
        """The combo options now (dynamic sources are asked each time)."""
        if self.options is None:
            return ()
        if callable(self.options):
            return self.options(files)
        return self.options


class Input:
    """Constructors for `InputSpec`, one per kind of input."""

    @staticmethod
    def socket(
        name: str, type: str, *, optional: bool = False, lazy: bool = False, tooltip: str = ""
    ) -> InputSpec:
        return InputSpec(name, type, required=not optional, tooltip=tooltip, lazy=lazy)

    @staticmethod
    def int(
        name: str,
        default: int,
        *,
        min: int | None = None,
        max: int | None = None,
        step: int = 1,
        optional: bool = False,
        display: str | None = None,
        tooltip: str = "",
    ) -> InputSpec:
        return InputSpec(name, INT, not optional, default, min, max, step, display=display, tooltip=tooltip)

    @staticmethod
    def float(
        name: str,
        default: float,
        *,
        min: float | None = None,
        max: float | None = None,
        step: float = 0.01,
        optional: bool = False,
        display: str | None = None,
        tooltip: str = "",
    ) -> InputSpec:
        return InputSpec(name, FLOAT, not optional, default, min, max, step, display=display, tooltip=tooltip)

    @staticmethod
    def string(
        name: str,
        default: str = "",
        *,
        multiline: bool = False,
        optional: bool = False,
        tooltip: str = "",
        check: ValueCheck | None = None,
    ) -> InputSpec:
        return InputSpec(
            name, STRING, not optional, default, multiline=multiline, tooltip=tooltip, check=check
        )

    @staticmethod
    def filename_prefix(name: str, default: str, *, tooltip: str = "") -> InputSpec:
        """Where a saving node writes: a file name start, maybe with subfolders, inside the output
        folder; a prefix that would leave it is refused at validation."""
        return Input.string(name, default, tooltip=tooltip, check=inside_output_folder)

    @staticmethod
    def boolean(name: str, default: bool, *, optional: bool = False, tooltip: str = "") -> InputSpec:
        return InputSpec(name, BOOLEAN, not optional, default, tooltip=tooltip)

    @staticmethod
    def combo(
        name: str,
        options: OptionsSource,
        *,
        default: str | None = None,
        optional: bool = False,
        upload: str | None = None,
        tooltip: str = "",
        missing_hint: MissingHint | None = None,
    ) -> InputSpec:
        if default is None and not callable(options) and options:
            default = options[0]
        return InputSpec(
            name,
            COMBO,
            not optional,
            default,
            options=options,
            upload=upload,
            tooltip=tooltip,
            missing_hint=missing_hint,
        )


def inside_output_folder(prefix: Any, files: FileStore) -> str | None:
    """Why files named `prefix_00001.png` could not be saved inside the output folder (`..`, an
    absolute path, a drive, a NUL byte, a name too long, a subfolder that is a symlink leading out),
    or None: the rules saving applies, checked before anything runs."""
    from engine.coercion import shown
    from engine.files import UnsafePathError, check_relative_name

    fix = "a prefix names files inside the output folder, e.g. renders/cat"
    try:
        relative = check_relative_name(prefix or "depthgraph", "filename prefix")
    except UnsafePathError as error:
        return f"{error}; {fix}"
    if not relative.parent.parts:
        return None
    subfolder = relative.parent.as_posix()
    try:
        files.resolve("output", "", subfolder)
    except UnsafePathError:
        where = f"through a symlink in {shown(subfolder)}"
        return f"filename prefix {shown(prefix)} leads outside the output folder {where}; {fix}"
    except (OSError, RuntimeError) as error:  # a path the system cannot resolve (too long, a symlink loop)
        return f"filename prefix {shown(prefix)} cannot be used as a path ({error}); {fix}"
    return None


@dataclass(frozen=True)
class Output:
    """One output socket: its type and the name shown on the node (the type by default)."""

    type: str
    name: str = ""
    tooltip: str = ""

    @property
    def label(self) -> str:
        return self.name or self.type


@dataclass(frozen=True)
class NodeOutput:
    """What an output node returns: its output values and what the user sees (e.g. saved images)."""

    values: tuple[Any, ...] = ()
    ui: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class NodeDefinition:
    """Everything the engine knows about one node type."""

    class_name: str
    display_name: str
    category: str
    description: str
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
    inputs_by_name: Mapping[str, InputSpec] = field(default_factory=dict, compare=False, repr=False)
    lazy_inputs: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        names = [spec.name for spec in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError(f"node {self.class_name}: input names repeat: {names}")
        object.__setattr__(self, "inputs_by_name", {spec.name: spec for spec in self.inputs})
        object.__setattr__(self, "lazy_inputs", frozenset(spec.name for spec in self.inputs if spec.lazy))


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
) -> Callable[[Callable[..., Any]], NodeDefinition]:
    """Declare a node. The function receives the inputs as keyword arguments (and `context`, a
    `NodeContext`, if it has a parameter of that name) and returns a tuple with one value per output,
    or a `NodeOutput` when it also has something to show.

    A node that makes or enlarges images, masks, depth maps or latents declares `output_size`: given
    its inputs by name, the pixels (width × height × batch; a latent counts at the size of its image)
    of the largest thing it will make, or None when it cannot tell. Validation calls it with the
    typed-in constants only (a linked input is missing: reading it raises KeyError, which counts as
    "cannot tell"; a count it can only bound from below, such as an unknown batch taken as 1, is fine),
    and the scheduler calls it again with the real values just before the node runs. Beyond the
    `max_output_pixels` setting the node is refused, before anything is allocated."""

    def declare(function: Callable[..., Any]) -> NodeDefinition:
        parameters = inspect.signature(function).parameters
        return NodeDefinition(
            class_name=class_name,
            display_name=display_name or class_name,
            category=category,
            description=description,
            function=function,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            version=version,
            output_node=output_node,
            fingerprint=fingerprint,
            module=function.__module__,
            wants_context="context" in parameters,
            output_size=output_size,
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
