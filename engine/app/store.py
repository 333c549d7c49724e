"""The prompt store: every accepted prompt, its status and its outputs, in sqlite, so the queue and the
history survive a restart.

Statuses: pending -> running -> success | error | interrupted. On start-up, `recover()` marks prompts
that were running when the process died as failed (with a message saying so) and returns the pending
ones in queue order, to be queued again. The schema has a version table and numbered migrations.

The store is safe to leave running on a disk that fills up. A status change or a finished result that
cannot be written (disk full, I/O error, read-only, locked) waits in an in-memory backlog instead of
raising: `get()` and `history()` show it, `problem` says why, `add()` refuses new prompts with
`StoreUnavailable`, and `retry_backlog()` (or the next `add()`) writes it once the disk takes writes
again. A prompt's waiting changes merge in call order, so an older state never overwrites a newer one.

Opening checks the file (`PRAGMA quick_check`, in `store_open`): a damaged one raises `StoreDamaged`
with what to do; `engine.app.store_repair` moves it aside and keeps what can be read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..formats.json_body import dump_json
from .store_faults import (
    StoreDamaged,
    StoreError,
    StoreUnavailable,
    cannot_open,
    write_failure,
)
from .store_open import open_database

__all__ = ["PromptStore", "StoreDamaged", "StoreError", "StoreUnavailable", "StoredPrompt", "store_path"]

log = logging.getLogger("depthgraph.store")
SCHEMA_VERSION = 1
STORE_FILENAME = "depthgraph.sqlite3"
STATUSES = ("pending", "running", "success", "error", "interrupted")
FINISHED = ("success", "error", "interrupted")
INTERRUPTED_BY_RESTART = "the server stopped while this prompt was running; queue it again to run it"
COLUMNS = ("prompt_id", "number", "status", "prompt", "extra", "outputs", "messages", "created", "finished")


def store_path(data_dir: Path) -> Path:
    """Where the server keeps its store in `data_dir`."""
    return data_dir / STORE_FILENAME


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


def row_to_prompt(row: tuple[Any, ...]) -> StoredPrompt:
    """A row of COLUMNS as a StoredPrompt (ValueError, TypeError or KeyError when it cannot be read)."""
    return StoredPrompt(
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


@dataclass(frozen=True)
class _Change:
    """What a prompt's row should become; None leaves a column as it is. JSON columns are kept as the
    text to write, so a caller changing its objects later changes nothing here."""

    status: str
    outputs: str | None = None
    messages: str | None = None
    finished: float | None = None
    extra: str | None = None

    def then(self, later: _Change) -> _Change:
        """This change followed by `later` (whose columns win)."""
        return _Change(
            later.status,
            later.outputs if later.outputs is not None else self.outputs,
            later.messages if later.messages is not None else self.messages,
            later.finished if later.finished is not None else self.finished,
            later.extra if later.extra is not None else self.extra,
        )

    def columns(self) -> dict[str, Any]:
        values: dict[str, Any] = {"status": self.status, "outputs": self.outputs}
        values.update(messages=self.messages, finished=self.finished, extra=self.extra)
        return {name: value for name, value in values.items() if value is not None}

    def applied_to(self, item: StoredPrompt) -> StoredPrompt:
        changed: dict[str, Any] = {"status": self.status}
        if self.outputs is not None:
            changed["outputs"] = json.loads(self.outputs)
        if self.messages is not None:
            changed["messages"] = json.loads(self.messages)
        if self.finished is not None:
            changed["finished"] = self.finished
        if self.extra is not None:
            changed["extra"] = json.loads(self.extra)
        return replace(item, **changed)


class PromptStore:
    """Thread-safe: the event loop and the prompt threads share it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._backlog: dict[str, _Change] = {}  # per prompt, in the order they first failed
        self._closed = False
        self._problem: str | None  # why the store cannot write (see `problem`)
        self._connection, self._problem = open_database(path)
        try:
            self._migrate()
        except BaseException:
            self._connection.close()
            raise
        self._index_by_time()

    def _migrate(self) -> None:
        with self._lock:
            try:
                self._connection.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
                )
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
            except sqlite3.Error as error:
                self._roll_back()
                raise cannot_open(self.path, error) from None

    def _index_by_time(self) -> None:
        """The indexes `page` and `history` walk, newest or oldest first, stopping after a page. Made on
        opening, not by a migration, so that a store on a disk that cannot write still opens (pages
        are then only slower: every row is read and sorted)."""
        with self._lock:
            try:
                for name, column in (("prompts_by_time", "created"), ("prompts_by_finish", "finished")):
                    self._connection.execute(
                        f"CREATE INDEX IF NOT EXISTS {name} ON prompts ({column}, status)"
                    )
            except sqlite3.Error as error:
                log.info("the store's indexes by time cannot be made now (%s); lists are slower", error)

    # --- state of the disk ---------------------------------------------------------------------------
    @property
    def problem(self) -> str | None:
        """Why the store could not write, from a failed write until one succeeds with nothing left
        waiting; None while it writes. Read without the lock (one reference: atomic), so the event
        loop never waits on a write in progress."""
        return self._problem

    @property
    def backlog_size(self) -> int:
        """How many prompts have a status or result that waits in memory to be written (read
        without the lock, as `problem`)."""
        return len(self._backlog)

    def retry_backlog(self) -> bool:
        """Write what waits in memory, oldest first; True when nothing is left waiting."""
        with self._lock:
            wrote = 0
            for prompt_id, change in list(self._backlog.items()):
                try:
                    self._write(self._update, prompt_id, change)
                except StoreUnavailable:
                    if wrote:
                        log.info("%d waiting result(s) written; %d still wait", wrote, len(self._backlog))
                    return False
                del self._backlog[prompt_id]
                wrote += 1
            if wrote:
                log.info("the store writes again: %d waiting result(s) written to %s", wrote, self.path)
                self._problem = None
            return True

    def close(self) -> None:
        """Write what still waits (if the disk allows) and close the file."""
        with self._lock:
            if self._closed:
                return
            if self._backlog and not self.retry_backlog():
                for prompt_id, change in self._backlog.items():
                    log.error(
                        "prompt %s ended %s but could not be stored (%s); its outputs: %s",
                        prompt_id,
                        change.status,
                        self._problem,
                        _shortened(change.outputs or "{}"),
                    )
            self._closed = True
            self._connection.close()

    # --- writing -------------------------------------------------------------------------------------
    def add(self, item: StoredPrompt) -> None:
        """Store a new prompt. Raises StoreUnavailable when it cannot be written (what waits in memory
        is written first), sqlite3.IntegrityError when its id is taken."""
        # Serialised before the lock is taken (member by member, so other threads run meanwhile):
        # a large prompt's seconds of encoding hold up no one else's reads.
        row = (
            item.prompt_id,
            item.number,
            item.status,
            dump_json(item.prompt),
            json.dumps(item.extra),
            time.time(),
        )
        with self._lock:
            if self._backlog and not self.retry_backlog():
                raise StoreUnavailable(self._problem or f"{self.path} cannot be written")
            self._write(self._insert, row)
            self._problem = None

    def exists(self, prompt_id: str) -> bool:
        return bool(self._read("SELECT 1 FROM prompts WHERE prompt_id = ?", (prompt_id,)))

    def set_status(self, prompt_id: str, status: str) -> None:
        """Never raises for the disk: a status that cannot be written waits in memory."""
        self._record(prompt_id, _Change(status))

    def finish(
        self,
        prompt_id: str,
        status: str,
        outputs: dict[str, Any],
        messages: list[Any],
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Store a prompt's end; `extra` replaces its extra data (to add how it was routed, say). Never
        raises for the disk: a result that cannot be written waits in memory (see the module's notes)."""
        change = _Change(
            status,
            json.dumps(outputs),
            json.dumps(messages),
            time.time(),
            None if extra is None else json.dumps(extra),
        )
        self._record(prompt_id, change)

    def recover(self, requeue_running: bool = False) -> list[StoredPrompt]:
        """Return the pending prompts in order, after dealing with those a dead process left running:
        marked failed, or (`requeue_running`, when they ran elsewhere and may run again) pending."""
        now = time.time()
        message = ["execution_error", {"exception_message": INTERRUPTED_BY_RESTART, "timestamp": now}]
        if requeue_running:
            change = _Change("pending")
        else:
            change = _Change("error", messages=json.dumps([message]), finished=now)
        with self._lock:
            for item in self._with_status(("running",)):
                self._record(item.prompt_id, change)
            return sorted(self._with_status(("pending",)), key=lambda item: item.number)

    def delete(self, prompt_ids: Iterable[str], finished_only: bool = False) -> None:
        """Remove prompts (only finished ones if `finished_only`). Raises StoreUnavailable when the disk
        refuses, and then removes nothing."""
        with self._lock:
            stored: list[str] = []
            forgotten: list[str] = []  # those with changes waiting: what waits decides if they finished
            for prompt_id in prompt_ids:
                change = self._backlog.get(prompt_id)
                if change is None:
                    stored.append(prompt_id)
                elif not finished_only or change.status in FINISHED:
                    forgotten.append(prompt_id)
            finished: tuple[str, ...] = FINISHED if finished_only else ()
            condition = f" AND status IN ({_marks(FINISHED)})" if finished_only else ""
            statements = [
                (f"DELETE FROM prompts WHERE prompt_id = ?{condition}", [(key, *finished) for key in stored]),
                ("DELETE FROM prompts WHERE prompt_id = ?", [(key,) for key in forgotten]),
            ]
            self._write(self._delete, statements)
            for prompt_id in forgotten:
                del self._backlog[prompt_id]

    def clear(self, status: str | None = None) -> None:
        """Remove finished prompts (status None) or the prompts with `status`."""
        statuses = FINISHED if status is None else (status,)
        with self._lock:
            matching = [key for key, change in self._backlog.items() if change.status in statuses]
            other = [key for key, change in self._backlog.items() if change.status not in statuses]
            where = f"status IN ({_marks(statuses)})"
            if other:  # their stored status is out of date: what waits decides
                where += f" AND prompt_id NOT IN ({_marks(other)})"
            self._write(self._clear, where, (*statuses, *other), matching)
            for prompt_id in matching:
                del self._backlog[prompt_id]

    # --- reading -------------------------------------------------------------------------------------
    def get(self, prompt_id: str) -> StoredPrompt | None:
        found = self._select("WHERE prompt_id = ?", (prompt_id,))
        return found[0] if found else None

    def history(self, max_items: int | None = None, offset: int | None = None) -> list[StoredPrompt]:
        """Finished prompts, oldest first, with results waiting to be written. As ComfyUI pages them:
        `max_items` without an offset gives the newest that many (a client polling `max_items=1` gets
        the latest); an `offset` counts from the oldest."""
        with self._lock:
            if not self._backlog:
                if offset is None and max_items is not None:
                    newest = self._select(  # `+status`: by prompts_by_finish, as in `page`
                        f"WHERE +status IN ({_marks(FINISHED)}) ORDER BY finished DESC LIMIT ?",
                        (*FINISHED, max_items),
                    )
                    return newest[::-1]
                limit = -1 if max_items is None else max_items
                return self._select(
                    f"WHERE +status IN ({_marks(FINISHED)}) ORDER BY finished LIMIT ? OFFSET ?",
                    (*FINISHED, limit, offset or 0),
                )
            items = self._with_status(FINISHED)
        items.sort(key=lambda item: -float("inf") if item.finished is None else item.finished)
        if max_items is None:
            return items[offset or 0 :]
        if offset is None:
            return items[-max_items:] if max_items else []
        return items[offset : offset + max_items]

    def page(
        self, statuses: Iterable[str], newest_first: bool, limit: int | None, offset: int = 0
    ) -> tuple[list[StoredPrompt], int]:
        """`limit` prompts (None: all) from `offset` of those whose status is one of `statuses`, by the
        time they were queued, and how many such prompts there are. sqlite sorts, counts and pages
        them, so a page of a long history reads only that page (unless results wait in memory)."""
        wanted = tuple(statuses)
        with self._lock:
            if self._backlog:
                items = self._with_status(wanted)
                items.sort(key=lambda item: item.created, reverse=newest_first)
                end = None if limit is None else offset + limit
                return items[offset:end], len(items)
            where = f"WHERE status IN ({_marks(wanted)})"
            ((total,),) = self._read(f"SELECT COUNT(*) FROM prompts {where}", wanted)
            order = "DESC" if newest_first else "ASC"
            # `+status` keeps sqlite off the status index here, so it walks prompts_by_time in order
            # (reading the status from the index too) and stops after the page.
            items = self._select(
                f"WHERE +status IN ({_marks(wanted)}) ORDER BY created {order} LIMIT ? OFFSET ?",
                (*wanted, -1 if limit is None else limit, offset),
            )
        return items, int(total)

    def with_status(self, statuses: Iterable[str]) -> list[StoredPrompt]:
        """Every prompt whose status is one of `statuses` (what waits in memory included), unordered."""
        return self._with_status(tuple(statuses))

    def counts(self) -> dict[str, int]:
        """How many prompts have each status."""
        with self._lock:
            rows = self._read("SELECT prompt_id, status FROM prompts")
            statuses = (self._backlog[row[0]].status if row[0] in self._backlog else row[1] for row in rows)
            return dict(Counter(statuses))

    # --- inside --------------------------------------------------------------------------------------
    def _record(self, prompt_id: str, change: _Change) -> None:
        """Write `change` (after what already waits for this prompt), or keep it waiting."""
        with self._lock:
            waiting = self._backlog.get(prompt_id)
            merged = change if waiting is None else waiting.then(change)
            try:
                self._write(self._update, prompt_id, merged)
            except StoreUnavailable as error:
                if not self._backlog:
                    log.warning("the store cannot write: %s", error.reason)
                self._backlog[prompt_id] = merged
                return
            if waiting is not None:
                del self._backlog[prompt_id]
            if not self._backlog:
                self._problem = None

    def _write(self, action: Callable[..., None], *arguments: Any) -> None:
        """Run a writing `action`; a failure of the disk or the file becomes StoreUnavailable."""
        try:
            action(*arguments)
        except (sqlite3.Error, OSError) as error:
            self._roll_back()
            reason = write_failure(error, self.path)
            if reason is None:
                raise
            self._problem = reason
            raise StoreUnavailable(reason) from error

    def _roll_back(self) -> None:
        if self._connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # sqlite rolls back itself after some I/O errors
                self._connection.execute("ROLLBACK")

    def _insert(self, row: tuple[Any, ...]) -> None:
        self._connection.execute(
            "INSERT INTO prompts (prompt_id, number, status, prompt, extra, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            row,
        )

    def _update(self, prompt_id: str, change: _Change) -> None:
        columns = change.columns()
        assignments = ", ".join(f"{name} = ?" for name in columns)
        self._connection.execute(
            f"UPDATE prompts SET {assignments} WHERE prompt_id = ?", (*columns.values(), prompt_id)
        )

    def _delete(self, statements: list[tuple[str, list[tuple[str, ...]]]]) -> None:
        self._connection.execute("BEGIN")
        for statement, rows in statements:
            if rows:
                self._connection.executemany(statement, rows)
        self._connection.execute("COMMIT")

    def _clear(self, where: str, parameters: tuple[str, ...], waiting: list[str]) -> None:
        self._connection.execute("BEGIN")
        self._connection.execute(f"DELETE FROM prompts WHERE {where}", parameters)
        if waiting:
            self._connection.execute(f"DELETE FROM prompts WHERE prompt_id IN ({_marks(waiting)})", waiting)
        self._connection.execute("COMMIT")

    def _read(self, query: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of `query`; a file that fails to read raises StoreUnavailable with the reason."""
        with self._lock:
            try:
                return self._connection.execute(query, parameters).fetchall()
            except sqlite3.Error as error:
                reason = write_failure(error, self.path)
                if reason is None:
                    raise
                raise StoreUnavailable(reason) from error

    def _select(self, where: str, parameters: tuple[Any, ...] = ()) -> list[StoredPrompt]:
        """The prompts `where` selects, as they will be once what waits in memory is written."""
        with self._lock:
            rows = self._read(f"SELECT {', '.join(COLUMNS)} FROM prompts {where}", parameters)
            waiting = dict(self._backlog)
        items: list[StoredPrompt] = []
        for row in rows:
            try:
                item = row_to_prompt(row)
            except (ValueError, TypeError) as error:
                log.warning("prompt %s in %s cannot be read (%s); it is left out", row[0], self.path, error)
                continue
            change = waiting.get(item.prompt_id)
            items.append(item if change is None else change.applied_to(item))
        return items

    def _with_status(self, statuses: tuple[str, ...]) -> list[StoredPrompt]:
        """The prompts whose status, counting what waits in memory, is one of `statuses`."""
        with self._lock:
            waiting = list(self._backlog)
            where = f"WHERE status IN ({_marks(statuses)})"
            if waiting:
                where += f" OR prompt_id IN ({_marks(waiting)})"
            items = self._select(where, (*statuses, *waiting))
        return [item for item in items if item.status in statuses]


def _marks(values: Iterable[object]) -> str:
    return ", ".join("?" for _ in values)


def _shortened(text: str, most: int = 600) -> str:
    """`text` cut to `most` characters, saying how much was left out (for the log)."""
    return text if len(text) <= most else f"{text[:most]}... ({len(text) - most} more characters)"
