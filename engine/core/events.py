"""What the scheduler tells its listeners while it runs a prompt.

Each event knows its ComfyUI WebSocket message type and payload (`message()`), so the server only
forwards them and the command line only draws them. Events are plain slotted dataclasses (not frozen):
the scheduler makes several per node, and frozen ones cost four times as much to create.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class PreviewFrame:
    """An encoded preview image sent with a progress step."""

    format: str  # "JPEG" or "PNG"
    data: bytes


@dataclass(slots=True)
class ImageSent:
    """A finished image a node hands straight to the client (ComfyUI's `SaveImageWebsocket`): sent as
    a binary frame, never stored, never a JSON message."""

    prompt_id: str
    node_id: str
    frame: PreviewFrame

    def message(self) -> tuple[str, dict[str, Any]]:
        return "image_sent", {"prompt_id": self.prompt_id, "node": self.node_id, "format": self.frame.format}


@dataclass(slots=True)
class PromptStarted:
    prompt_id: str

    def message(self) -> tuple[str, dict[str, Any]]:
        return "execution_start", {"prompt_id": self.prompt_id}


@dataclass(slots=True)
class NodesCached:
    prompt_id: str
    node_ids: Sequence[str]

    def message(self) -> tuple[str, dict[str, Any]]:
        return "execution_cached", {"nodes": list(self.node_ids), "prompt_id": self.prompt_id}


@dataclass(slots=True)
class NodeExecuting:
    """A node starts; `node_id` None marks the end of the prompt (ComfyUI clients wait for it)."""

    prompt_id: str
    node_id: str | None

    def message(self) -> tuple[str, dict[str, Any]]:
        return "executing", {"node": self.node_id, "display_node": self.node_id, "prompt_id": self.prompt_id}


@dataclass(slots=True)
class Progress:
    prompt_id: str
    node_id: str
    value: int
    max: int
    preview: PreviewFrame | None = None

    def message(self) -> tuple[str, dict[str, Any]]:
        return "progress", {
            "value": self.value,
            "max": self.max,
            "node": self.node_id,
            "prompt_id": self.prompt_id,
        }


@dataclass(slots=True)
class NodeExecuted:
    """A node finished (or was served from the cache) and has something to show."""

    prompt_id: str
    node_id: str
    ui: Mapping[str, Any]

    def message(self) -> tuple[str, dict[str, Any]]:
        return "executed", {
            "node": self.node_id,
            "display_node": self.node_id,
            "output": dict(self.ui),
            "prompt_id": self.prompt_id,
        }


@dataclass(slots=True)
class NodeWarning:
    """A node ran but something in its input deserves the user's attention (an all-zero mask, say)."""

    prompt_id: str
    node_id: str
    class_type: str
    text: str

    def message(self) -> tuple[str, dict[str, Any]]:
        return "execution_warning", {
            "prompt_id": self.prompt_id,
            "node_id": self.node_id,
            "node_type": self.class_type,
            "message": self.text,
        }


@dataclass(slots=True)
class PromptSucceeded:
    prompt_id: str

    def message(self) -> tuple[str, dict[str, Any]]:
        return "execution_success", {"prompt_id": self.prompt_id}


@dataclass(slots=True)
class PromptFailed:
    prompt_id: str
    node_id: str
    class_type: str
    exception_type: str
    exception_message: str
    traceback: Sequence[str] = ()
    executed: Sequence[str] = field(default_factory=list)
    # As ComfyUI reports them: the failing node's inputs, and the nodes whose outputs are there.
    current_inputs: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    current_outputs: Sequence[str] = field(default_factory=list)

    def message(self) -> tuple[str, dict[str, Any]]:
        return "execution_error", {
            "prompt_id": self.prompt_id,
            "node_id": self.node_id,
            "node_type": self.class_type,
            "executed": list(self.executed),
            "exception_message": self.exception_message,
            "exception_type": self.exception_type,
            "traceback": list(self.traceback),
            "current_inputs": {name: list(values) for name, values in self.current_inputs.items()},
            "current_outputs": list(self.current_outputs),
        }


@dataclass(slots=True)
class PromptInterrupted:
    prompt_id: str
    node_id: str | None
    class_type: str | None
    executed: Sequence[str] = field(default_factory=list)

    def message(self) -> tuple[str, dict[str, Any]]:
        return "execution_interrupted", {
            "prompt_id": self.prompt_id,
            "node_id": self.node_id,
            "node_type": self.class_type,
            "executed": list(self.executed),
        }


Event = (
    PromptStarted
    | ImageSent
    | NodesCached
    | NodeExecuting
    | Progress
    | NodeExecuted
    | NodeWarning
    | PromptSucceeded
    | PromptFailed
    | PromptInterrupted
)
Listener = Callable[[Event], None]
