"""ComfyUI's `progress_state` message: every node of a prompt that has started, with its state
(`running`, `finished`, `error`) and progress, sent whole to the prompt's client each time one changes.

The front end draws each node's progress bar from it, and its counters of finished nodes; nodes served
from the cache count as finished the moment they are listed.
"""

from __future__ import annotations

from typing import Any

from depthgraph.engine.core.events import (
    Event,
    NodeExecuting,
    NodesCached,
    Progress,
    PromptFailed,
    PromptSucceeded,
)


class ProgressState:
    """The nodes of one prompt, by id, as the next `progress_state` message lists them."""

    def __init__(self, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        self.nodes: dict[str, dict[str, Any]] = {}

    def message(self, event: Event) -> dict[str, Any] | None:
        """The `progress_state` data after `event`, or None when the event changes no node."""
        if isinstance(event, NodesCached):
            for node_id in event.node_ids:
                self.set(node_id, "finished", 1.0, 1.0)
        elif isinstance(event, NodeExecuting):
            self.finish_running()
            if event.node_id is None:
                return None
            self.set(event.node_id, "running", 0.0, 1.0)
        elif isinstance(event, Progress):
            self.set(event.node_id, "running", float(event.value), float(event.max))
        elif isinstance(event, PromptSucceeded):
            self.finish_running()
        elif isinstance(event, PromptFailed):
            if event.node_id in self.nodes:
                self.nodes[event.node_id]["state"] = "error"
        else:
            return None
        return {"prompt_id": self.prompt_id, "nodes": {key: dict(node) for key, node in self.nodes.items()}}

    def set(self, node_id: str, state: str, value: float, maximum: float) -> None:
        self.nodes[node_id] = {
            "value": value,
            "max": maximum,
            "state": state,
            "node_id": node_id,
            "prompt_id": self.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": parent_of(node_id),
            "real_node_id": node_id,
        }

    def finish_running(self) -> None:
        for node in self.nodes.values():
            if node["state"] == "running":
                node["state"], node["value"] = "finished", node["max"]


def parent_of(node_id: str) -> str | None:
    """A node flattened out of a subgraph is `instance:inner`; its parent is the instance."""
    return node_id.rsplit(":", 1)[0] if ":" in node_id else None
