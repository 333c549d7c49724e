"""What a running node may know about its run: where files go, which device to use, and one callback
to report progress (which is also where an interrupt reaches it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.events import PreviewFrame
from engine.files import FileStore
from engine.limits import Limits
from engine.models.manager import ModelManager

__all__ = ["Interrupted", "Limits", "NodeContext"]


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
    models: ModelManager = field(default_factory=ModelManager)
    # The API form of the running prompt and the editor form it came from, for image metadata.
    prompt: Mapping[str, Any] = field(default_factory=dict)
    workflow: Mapping[str, Any] | None = None
    report: Callable[[int, int, PreviewFrame | None], None] = lambda value, total, preview: None
    interrupted: Callable[[], bool] = lambda: False
    warned: Callable[[str], None] = lambda text: None
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

    def progress(self, value: int, total: int, preview: PreviewFrame | None = None) -> None:
        """Report step `value` of `total` (with an optional preview) and stop here if interrupted."""
        self.check_interrupted()
        self.report(value, total, preview)
