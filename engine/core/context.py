"""What a running node may know about its run: where files go, which device to use, and one callback
to report progress (which is also where an interrupt reaches it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .events import PreviewFrame
from .files import FileStore
from .limits import Limits

__all__ = ["Interrupted", "Limits", "ModelProvider", "NoModels", "NodeContext"]


class ModelProvider(Protocol):
    """Where nodes get models: the core passes it through and never looks inside
    (`engine.models.manager.ModelManager` is the real one)."""

    def find(self, name: str) -> Any: ...

    def load(self, name: str, component: str) -> Any: ...


class NoModels:
    """The provider of a run that was given none: graphs without model nodes need nothing more."""

    def find(self, name: str) -> Any:
        raise LookupError(f"this run has no model manager, so model {name!r} cannot be loaded")

    def load(self, name: str, component: str) -> Any:
        return self.find(name)


class Interrupted(Exception):
    """The user asked to stop the running prompt."""


@dataclass
class NodeContext:
    """Handed to node functions that take a `context` parameter."""

    prompt_id: str
    node_id: str
    class_type: str
    files: FileStore
    device: str = "cpu"
    models: ModelProvider = field(default_factory=NoModels)
    # The API form of the running prompt and the editor form it came from, for image metadata.
    prompt: Mapping[str, Any] = field(default_factory=dict)
    workflow: Mapping[str, Any] | None = None
    report: Callable[[int, int, PreviewFrame | None], None] = lambda value, total, preview: None
    interrupted: Callable[[], bool] = lambda: False
    warned: Callable[[str], None] = lambda text: None
    sent: Callable[[PreviewFrame], None] = lambda frame: None
    limits: Limits = field(default_factory=Limits)
    # Whether a listener shows step previews (the editor does); nodes skip making them otherwise.
    previews: bool = False

    def check_interrupted(self) -> None:
        """Raise `Interrupted` if the user asked to stop."""
        if self.interrupted():
            raise Interrupted(f"interrupted at node {self.node_id} ({self.class_type})")

    def warn(self, text: str) -> None:
        """Tell the user something looks wrong without failing the node (shown and kept in history)."""
        self.warned(text)

    def send_image(self, frame: PreviewFrame) -> None:
        """Hand an encoded image straight to the client that queued the prompt (a binary frame)."""
        self.sent(frame)

    def progress(self, value: int, total: int, preview: PreviewFrame | None = None) -> None:
        """Report step `value` of `total` (with an optional preview) and stop here if interrupted."""
        self.check_interrupted()
        self.report(value, total, preview)
