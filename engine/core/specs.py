"""What a node's inputs and outputs are: `InputSpec` and the makers a declaration writes them with
(`Socket`, `Int`, `Float`, `String`, `FilenamePrefix`, `Boolean`, `Combo`, or `Input.*`), `Output`,
`NodeOutput`, and the error a declaration that cannot work raises. `registry` builds node
definitions from these; `declaration` reads and checks them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .sockets import BOOLEAN, COMBO, FLOAT, INT, STRING, WIDGET_TYPES

if TYPE_CHECKING:
    from .files import FileStore


OptionsSource = Sequence[str] | Callable[["FileStore"], Sequence[str]]
# For dynamic choices: what to tell a user whose value is not there (where it was looked for, what to do).
MissingHint = Callable[["FileStore", str], str]
Fingerprint = Callable[[Mapping[str, Any], "FileStore"], str]
# A typed-in value's own rule, checked at validation after its type and bounds: what is wrong, or None.
ValueCheck = Callable[[Any, "FileStore"], str | None]
# What a node's output will be, told at validation before anything runs (which model family a loader
# gives, say): called with the node's known inputs by name (its typed-in constants and, for each linked
# input whose source output describes itself, that description) and the file store. Any value; None
# when it cannot tell; an `Unusable` refuses every link from the output.
Describe = Callable[[Mapping[str, Any], "FileStore"], Any]
# A node's own rule across its inputs, checked at validation with what `Describe` gets (a linked input
# whose source tells nothing is left out of the known inputs): what is wrong, by input name.
InputsCheck = Callable[[Mapping[str, Any], "FileStore"], Mapping[str, str]]
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
    leaves the parameter None; a lazy one gets a `SubChain` to run on demand (`engine.core.subchain`)."""
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
    from .coercion import shown
    from .files import UnsafePathError, check_relative_name

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
class Unusable:
    """What an output's `describe` gives when the output cannot be used at all with the node's inputs
    (a loader's DEPTH_MODEL for a model without a depth estimator): validation refuses every link from
    it, with `reason` as the message."""

    reason: str


@dataclass(frozen=True)
class Output:
    """One output socket: its type and the name shown on the node (the type by default), and how to
    tell at validation what its value will be (`describe`, see `Describe`)."""

    type: str
    name: str = ""
    tooltip: str = ""
    describe: Describe | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        return self.name or self.type


@dataclass(frozen=True)
class NodeOutput:
    """What an output node returns: its output values and what the user sees (e.g. saved images)."""

    values: tuple[Any, ...] = ()
    ui: Mapping[str, Any] | None = None


class NodeDeclarationError(ValueError):
    """A node declaration that cannot work, found when its module is imported; the message names the
    node and the fix."""
