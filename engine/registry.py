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
checked when the module is imported (`engine.declaration`): a mistake raises `NodeDeclarationError`
naming the node and the fix. The decorated name is a `NodeDefinition`, still callable as the function
with plain values (`image_brighten(image, 0.2)`), the inputs' defaults filled in.

The decorator registers nothing by itself. A `NodeRegistry` collects the definitions found in
node-pack modules (see `engine.plugins`), refuses a second node under a name that is already taken,
and remembers which nodes are built in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
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


# The inputs of a node, written as its parameters' defaults (`seed: int = Int(0, min=0)`): each makes
# an `InputSpec` that the parameter names. They are typed `Any`, as pydantic's `Field` is, so that
# `seed: int = Int(0)` reads as an int to type checkers; `node` replaces them with the plain defaults.
# They are named like the kinds of input they make (Int, Float, ...), hence N802.


def Socket(  # noqa: N802
    type: str, *, optional: bool = False, lazy: bool = False, tooltip: str = ""
) -> Any:
    """A socket linked from another node's output of `type`. An optional one that is not linked
    leaves the parameter None; a lazy one gets a `SubChain` to run on demand (`engine.subchain`)."""
    return InputSpec("", type, required=not optional, tooltip=tooltip, lazy=lazy)


def Int(  # noqa: N802
    default: int,
    *,
    min: int | None = None,
    max: int | None = None,
    step: int = 1,
    optional: bool = False,
    display: str | None = None,
    tooltip: str = "",
) -> Any:
    """A whole number typed in (`display` "slider" or "number" in the editor)."""
    return InputSpec("", INT, not optional, default, min, max, step, display=display, tooltip=tooltip)


def Float(  # noqa: N802
    default: float,
    *,
    min: float | None = None,
    max: float | None = None,
    step: float = 0.01,
    optional: bool = False,
    display: str | None = None,
    tooltip: str = "",
) -> Any:
    """A number with a fraction typed in; the default is written as a float (1.0, not 1)."""
    return InputSpec("", FLOAT, not optional, default, min, max, step, display=display, tooltip=tooltip)


def String(  # noqa: N802
    default: str = "",
    *,
    multiline: bool = False,
    optional: bool = False,
    tooltip: str = "",
    check: ValueCheck | None = None,
) -> Any:
    """A text typed in; `check` is the value's own rule, run at validation (why it is refused, or None)."""
    return InputSpec("", STRING, not optional, default, multiline=multiline, tooltip=tooltip, check=check)


def FilenamePrefix(default: str, *, tooltip: str = "") -> Any:  # noqa: N802
    """Where a saving node writes: a file name start, maybe with subfolders, inside the output
    folder; a prefix that would leave it is refused at validation."""
    return String(default, tooltip=tooltip, check=inside_output_folder)


def Boolean(default: bool, *, optional: bool = False, tooltip: str = "") -> Any:  # noqa: N802
    """A switch."""
    return InputSpec("", BOOLEAN, not optional, default, tooltip=tooltip)


def Combo(  # noqa: N802
    options: OptionsSource,
    *,
    default: str | None = None,
    optional: bool = False,
    upload: str | None = None,
    tooltip: str = "",
    missing_hint: MissingHint | None = None,
) -> Any:
    """One of a list of choices: fixed, or a function of the file store (the files in a folder), with
    `missing_hint` saying where a missing one was looked for. A fixed list defaults to its first."""
    if default is None and not callable(options) and options:
        default = options[0]
    return InputSpec(
        "",
        COMBO,
        not optional,
        default,
        options=options,
        upload=upload,
        tooltip=tooltip,
        missing_hint=missing_hint,
    )


class Input:
    """The same inputs, named, for `node(inputs=[...])`: the way nodes were declared before their
    parameters carried their inputs, still read (and checked the same way)."""

    @staticmethod
    def socket(name: str, type: str, **options: Any) -> InputSpec:
        return _named(name, Socket(type, **options))

    @staticmethod
    def int(name: str, default: int, **options: Any) -> InputSpec:
        return _named(name, Int(default, **options))

    @staticmethod
    def float(name: str, default: float, **options: Any) -> InputSpec:
        return _named(name, Float(default, **options))

    @staticmethod
    def string(name: str, default: str = "", **options: Any) -> InputSpec:
        return _named(name, String(default, **options))

    @staticmethod
    def filename_prefix(name: str, default: str, *, tooltip: str = "") -> InputSpec:
        return _named(name, FilenamePrefix(default, tooltip=tooltip))

    @staticmethod
    def boolean(name: str, default: bool, **options: Any) -> InputSpec:
        return _named(name, Boolean(default, **options))

    @staticmethod
    def combo(name: str, options: OptionsSource, **settings: Any) -> InputSpec:
        return _named(name, Combo(options, **settings))


def _named(name: str, spec: InputSpec) -> InputSpec:
    return replace(spec, name=name)


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
    inputs_by_name: Mapping[str, InputSpec] = field(default_factory=dict, compare=False, repr=False)
    lazy_inputs: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs_by_name", {spec.name: spec for spec in self.inputs})
        object.__setattr__(self, "lazy_inputs", frozenset(spec.name for spec in self.inputs if spec.lazy))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The node function on plain values, e.g. `noise_latent(model, latent, 5, 0.8, 4, "ddim")`."""
        return self.function(*args, **kwargs)


class NodeDeclarationError(ValueError):
    """A node declaration that cannot work, found when its module is imported; the message names the
    node and the fix."""


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

    The declaration is checked here, when the module is imported (`engine.declaration` lists the
    rules); a mistake raises `NodeDeclarationError`."""
    # engine.declaration reads the InputSpec and Output types defined above, so it is imported here.
    from engine.declaration import check_node_name, read_declaration

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
