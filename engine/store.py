"""The prompt store: every accepted prompt, its status and its outputs, in sqlite, so the queue and the
history survive a restart.

Statuses: pending -> running -> success | error | interrupted. On start-up, `recover()` marks prompts
that were running when the process died as failed (with a message saying so) and returns the pending
ones in queue order, to be queued again. The schema has a version table and numbered migrations.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
FINISHED = ("success", "error", "interrupted")
INTERRUPTED_BY_RESTART = "the server stopped while this prompt was running; queue it again to run it"


def _create_prompts(connection: sqlite3.Connection) -> None:
    connection.execute(
        """CREATE TABLE prompts (
            prompt_id TEXT PRIMARY KEY,
            number REAL NOT NULL,
            status TEXT NOT NULL,
            prompt TEXT NOT NULL,
            extra TEXT NOT NULL,
            outputs TEXT NOT NULL DEFAULT '{}',
            messages TEXT NOT NULL DEFAULT '[]',
            created REAL NOT NULL,
            finished REAL
        )"""
    )
    connection.execute("CREATE INDEX prompts_by_status ON prompts (status, number)")


# MIGRATIONS[n] brings a version n-1 database to version n (version 0 = empty file).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _create_prompts}


@dataclass
class StoredPrompt:
    prompt_id: str
    number: float
    status: str
    prompt: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)  # client_id, extra_data, targets
    outputs: dict[str, Any] = field(default_factory=dict)
    messages: list[Any] = field(default_factory=list)
    created: float = 0.0
    finished: float | None = None


class StoreError(Exception):
    """The store's file cannot be used (newer schema, not a database)."""


class PromptStore:
    """Thread-safe: the event loop and the execution worker both use it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL may lose the last commits on power loss, never consistency; FULL would
        # wait for the disk on every status change.
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            try:
                self._connection.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
                )
            except sqlite3.DatabaseError as error:
                raise StoreError(f"{self.path} is not a depthgraph database: {error}") from None
            row = self._connection.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer depthgraph (schema {version}; this one reads "
                    f"{SCHEMA_VERSION}); upgrade depthgraph or use another --data-dir"
                )
            while version < SCHEMA_VERSION:
                version += 1
                self._connection.execute("BEGIN")
                MIGRATIONS[version](self._connection)
                self._connection.execute("DELETE FROM schema_version")
                self._connection.execute("INSERT INTO schema_version VALUES (?)", (version,))
                self._connection.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def add(self, item: StoredPrompt) -> None:
        with self._lock:
            self._connection.execute(
                "INSERT INTO prompts (prompt_id, number, status, prompt, extra, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    item.prompt_id,
                    item.number,
                    item.status,
                    json.dumps(item.prompt),
                    json.dumps(item.extra),
                    time.time(),
                ),
            )

    def exists(self, prompt_id: str) -> bool:
        with self._lock:
            row = self._connection.execute(
                "SELECT 1 FROM prompts WHERE prompt_id = ?", (prompt_id,)
            ).fetchone()
        return row is not None

    def set_status(self, prompt_id: str, status: str) -> None:
        with self._lock:
            self._connection.execute("UPDATE prompts SET status = ? WHERE prompt_id = ?", (status, prompt_id))

    def finish(
        self,
        prompt_id: str,
        status: str,
        outputs: dict[str, Any],
        messages: list[Any],
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Store a prompt's end; `extra` replaces its extra data (to add how it was routed, say)."""
        with self._lock:
            self._connection.execute(
                "UPDATE prompts SET status = ?, outputs = ?, messages = ?, finished = ?, "
                "extra = COALESCE(?, extra) WHERE prompt_id = ?",
                (
                    status,
                    json.dumps(outputs),
                    json.dumps(messages),
                    time.time(),
                    None if extra is None else json.dumps(extra),
                    prompt_id,
                ),
            )

    def recover(self, requeue_running: bool = False) -> list[StoredPrompt]:
        """Return the pending prompts in order, after dealing with those a dead process left running:
        marked failed, or (`requeue_running`, when they ran elsewhere and may run again) pending."""
        now = time.time()
        message = ["execution_error", {"exception_message": INTERRUPTED_BY_RESTART, "timestamp": now}]
        with self._lock:
            if requeue_running:
                self._connection.execute("UPDATE prompts SET status = 'pending' WHERE status = 'running'")
            else:
                self._connection.execute(
                    "UPDATE prompts SET status = 'error', messages = ?, finished = ? "
                    "WHERE status = 'running'",
                    (json.dumps([message]), now),
                )
        return self._select("WHERE status = 'pending' ORDER BY number")

    def get(self, prompt_id: str) -> StoredPrompt | None:
        found = self._select("WHERE prompt_id = ?", (prompt_id,))
        return found[0] if found else None

    def history(self, max_items: int | None = None, offset: int = 0) -> list[StoredPrompt]:
        """Finished prompts, oldest first (as ComfyUI lists them)."""
        limit = -1 if max_items is None else max_items
        statuses = ", ".join(f"'{status}'" for status in FINISHED)
        return self._select(
            f"WHERE status IN ({statuses}) ORDER BY finished LIMIT ? OFFSET ?", (limit, offset)
        )

    def delete(self, prompt_ids: Iterable[str], finished_only: bool = False) -> None:
        condition = (
            f" AND status IN ({', '.join(repr(status) for status in FINISHED)})" if finished_only else ""
        )
        with self._lock:
            self._connection.executemany(
                f"DELETE FROM prompts WHERE prompt_id = ?{condition}",
                [(prompt_id,) for prompt_id in prompt_ids],
            )

    def clear(self, status: str | None = None) -> None:
        """Remove finished prompts (status None) or the prompts with `status`."""
        with self._lock:
            if status is None:
                statuses = ", ".join(f"'{finished}'" for finished in FINISHED)
                self._connection.execute(f"DELETE FROM prompts WHERE status IN ({statuses})")
            else:
                self._connection.execute("DELETE FROM prompts WHERE status = ?", (status,))

    def _select(self, where: str, parameters: tuple[Any, ...] = ()) -> list[StoredPrompt]:
        query = (
            "SELECT prompt_id, number, status, prompt, extra, outputs, messages, created, finished "
            f"FROM prompts {where}"
        )
        with self._lock:
            rows = self._connection.execute(query, parameters).fetchall()
        return [
            StoredPrompt(
                row[0],
                row[1],
                row[2],
                json.loads(row[3]),
                json.loads(row[4]),
                json.loads(row[5]),
                json.loads(row[6]),
                row[7],
                row[8],
            )
            for row in rows
        ]
