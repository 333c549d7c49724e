"""The in-memory queue of prompts waiting for the execution worker (mirrored in the prompt store).

Prompts run in order of their number; `front` prompts get a number below every waiting one. The
prompt threads block in `take()` (one thread, or one per slot of a pool of workers, so several
prompts may be running); the event loop adds, removes and lists without blocking them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..core.graph import ExecutableGraph


@dataclass
class QueuedPrompt:
    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)  # client_id, extra_data, targets
    graph: ExecutableGraph | None = None  # validated when queued; None after a restart

    def as_comfy(self) -> list[Any]:
        """ComfyUI's queue/history entry: [number, prompt_id, prompt, extra_data, outputs to execute]."""
        return [
            comfy_number(self.number),
            self.prompt_id,
            self.prompt,
            self.extra.get("extra_data", {}),
            self.extra.get("targets", []),
        ]


def comfy_number(number: float) -> float:
    """A queue number as ComfyUI shows it: whole numbers as integers (4, not 4.0)."""
    return int(number) if float(number).is_integer() else number


class PromptQueue:
    def __init__(self) -> None:
        self._pending: list[QueuedPrompt] = []
        self._running: dict[str, QueuedPrompt] = {}
        self._condition = threading.Condition()
        self._closed = False
        self._last_number: float = 0

    def next_number(self, front: bool = False) -> int:
        """A whole number before every waiting prompt (`front`) or after every prompt so far (numbers
        a client gave may be fractional; the ones handed out are whole, as ComfyUI's are)."""
        with self._condition:
            if front:
                return math.floor(min([item.number for item in self._pending] + [self._last_number + 1])) - 1
            self._last_number = (
                math.floor(max([self._last_number, *[item.number for item in self._pending]])) + 1
            )
            return int(self._last_number)

    def put(self, item: QueuedPrompt) -> None:
        with self._condition:
            self._pending.append(item)
            self._pending.sort(key=lambda queued: queued.number)
            self._last_number = max(self._last_number, item.number)
            self._condition.notify()

    def take(self) -> QueuedPrompt | None:
        """The next prompt (it becomes the running one), or None once the queue is closed."""
        with self._condition:
            while not self._pending and not self._closed:
                self._condition.wait()
            if self._closed:
                return None
            item = self._pending.pop(0)
            self._running[item.prompt_id] = item
            return item

    def finished(self, prompt_id: str) -> None:
        with self._condition:
            self._running.pop(prompt_id, None)

    def remove(self, prompt_ids: Iterable[str]) -> list[str]:
        wanted = set(prompt_ids)
        with self._condition:
            removed = [item.prompt_id for item in self._pending if item.prompt_id in wanted]
            self._pending = [item for item in self._pending if item.prompt_id not in wanted]
        return removed

    def clear(self) -> list[str]:
        with self._condition:
            removed = [item.prompt_id for item in self._pending]
            self._pending = []
        return removed

    def snapshot(self) -> tuple[list[QueuedPrompt], list[QueuedPrompt]]:
        """The running prompts (oldest first) and the waiting ones (in the order they will run)."""
        with self._condition:
            return sorted(self._running.values(), key=lambda item: item.number), list(self._pending)

    def remaining(self) -> int:
        with self._condition:
            return len(self._pending) + len(self._running)

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
