"""Repairing a damaged prompt store without losing what can still be read (`depthgraph store repair`).

Nothing is deleted: the damaged file, with the -wal and -shm files beside it, is moved aside under a new
name, and a new store is built from every row that can still be read. sqlite's `.recover` lives in its
shell, not in Python's module, so the rows are read in order from a copy of the damaged file, skipping
ahead past the parts that fail to read. The new store is complete before anything is moved, so a repair
that stops halfway leaves the damaged file where it was.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .store import COLUMNS, STATUSES, PromptStore, StoredPrompt
from .store_faults import StoreDamaged, StoreError, cannot_open

COMPANIONS = ("", "-wal", "-shm")  # the store's file and sqlite's journal files beside it
LARGEST_SKIP = 2**24  # rowids further than this past a damaged part are not looked for


@dataclass
class Repair:
    """What `repair_store` did."""

    problem: str | None = None  # what was wrong with the file, in a few words; None: nothing was done
    moved_to: Path | None = None  # where the damaged file is now
    kept: int = 0  # prompts carried into the new store
    unreadable_rows: int = 0  # rows read but not usable as prompts
    damaged_parts: int = 0  # parts of the file skipped because they failed to read
    moved: list[Path] = field(default_factory=list)  # every file moved aside


def repair_store(path: Path) -> Repair:
    """Mend the store at `path` if it is damaged; a StoreError when it cannot be used for another reason
    (a newer depthgraph's, unreadable, a full disk), which repairing would not fix."""
    if not _present(path):
        return Repair()
    try:
        PromptStore(path).close()
        return Repair()
    except StoreDamaged as error:
        problem = error.detail
    rows, unreadable, damaged_parts = _salvage(path)
    building = path.with_name(path.name + ".repairing")
    _remove_own(building)  # left by a repair that stopped halfway
    try:
        _write_store(building, rows)
    except (StoreError, sqlite3.Error, OSError) as error:
        _remove_own(building)
        raise StoreError(
            f"cannot write the repaired store beside {path} ({error}); nothing was moved"
        ) from None
    aside = _aside_name(path)
    moved = []
    for companion in COMPANIONS:
        source = Path(f"{path}{companion}")
        if _present(source):
            target = Path(f"{aside}{companion}")
            source.rename(target)
            moved.append(target)
    for companion in COMPANIONS:  # none is left once sqlite has closed the new store; to be sure
        if _present(Path(f"{building}{companion}")):
            Path(f"{building}{companion}").rename(Path(f"{path}{companion}"))
    return Repair(problem, aside, len(rows), unreadable, damaged_parts, moved)


def _present(path: Path) -> bool:
    return path.is_symlink() or path.exists()


def _aside_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.broken-{stamp}")
    number = 1
    while any(_present(Path(f"{candidate}{companion}")) for companion in COMPANIONS):
        number += 1
        candidate = path.with_name(f"{path.name}.broken-{stamp}-{number}")
    return candidate


def _remove_own(building: Path) -> None:
    for companion in COMPANIONS:
        with contextlib.suppress(FileNotFoundError):
            Path(f"{building}{companion}").unlink()


def _salvage(path: Path) -> tuple[list[StoredPrompt], int, int]:
    """The prompts that can be read from `path`, the rows that could not be used and the damaged parts
    skipped. Reads a copy, so the damaged file stays exactly as it was."""
    if not path.is_file():
        return [], 0, 0
    with tempfile.TemporaryDirectory(prefix="depthgraph-repair-") as folder:
        copy = Path(folder) / "damaged.sqlite3"
        shutil.copyfile(path, copy)
        if Path(f"{path}-wal").is_file():  # committed prompts that never reached the main file
            shutil.copyfile(f"{path}-wal", f"{copy}-wal")
        try:
            connection = sqlite3.connect(copy)
            # Reads past some damage, a file cut short among them (sqlite refuses one whose header
            # promises more pages than it holds); harmless here: the copy is only read, then deleted.
            connection.execute("PRAGMA writable_schema=ON")
        except sqlite3.Error:
            return [], 0, 1
        try:
            reader = _RowReader(connection)
            prompts: list[StoredPrompt] = []
            unreadable = 0
            for row in reader.rows():
                prompt = _as_prompt(row)
                if prompt is None:
                    unreadable += 1
                else:
                    prompts.append(prompt)
            return prompts, unreadable, reader.damaged_parts
        finally:
            connection.close()


class _RowReader:
    """The prompts table's rows in rowid order, going on past the parts of the file that fail to read."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.damaged_parts = 0
        self.query = f"SELECT rowid, {', '.join(COLUMNS)} FROM prompts WHERE rowid >= ? ORDER BY rowid"

    def rows(self) -> Iterator[tuple[Any, ...]]:
        start: int | None = 1  # sqlite numbers rows from 1 and the store never picks a rowid itself
        while start is not None:
            last = start - 1
            try:
                for row in self.connection.execute(self.query, (start,)):
                    last = row[0]
                    yield row[1:]
                return
            except sqlite3.DatabaseError:
                self.damaged_parts += 1
                start = self._next_readable(last)

    def _next_readable(self, last: int) -> int | None:
        """The first rowid after `last` (past the damaged part) whose row reads, looking ever further."""
        skip = 1
        while skip <= LARGEST_SKIP:
            try:
                row = self.connection.execute(self.query + " LIMIT 1", (last + 1 + skip,)).fetchone()
            except sqlite3.DatabaseError:
                skip *= 2
                continue
            return None if row is None else int(row[0])
        return None


def _as_prompt(row: tuple[Any, ...]) -> StoredPrompt | None:
    """The row as a prompt, if every column holds what the store writes there."""
    prompt_id, number, status, prompt, extra, outputs, messages, created, finished = row
    try:
        item = StoredPrompt(
            prompt_id,
            number,
            status,
            json.loads(prompt),
            json.loads(extra),
            json.loads(outputs),
            json.loads(messages),
            created,
            finished,
        )
    except (ValueError, TypeError):
        return None
    shapes_fit = (
        isinstance(item.prompt_id, str)
        and isinstance(item.number, int | float)
        and item.status in STATUSES
        and isinstance(item.prompt, dict)
        and isinstance(item.extra, dict)
        and isinstance(item.outputs, dict)
        and isinstance(item.messages, list)
        and isinstance(item.created, int | float)
        and (item.finished is None or isinstance(item.finished, int | float))
    )
    return item if shapes_fit else None


def _write_store(path: Path, prompts: list[StoredPrompt]) -> None:
    PromptStore(path).close()  # the current schema
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN")
        connection.executemany(
            f"INSERT OR IGNORE INTO prompts ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in COLUMNS)})",
            [
                (
                    item.prompt_id,
                    item.number,
                    item.status,
                    json.dumps(item.prompt),
                    json.dumps(item.extra),
                    json.dumps(item.outputs),
                    json.dumps(item.messages),
                    item.created,
                    item.finished,
                )
                for item in prompts
            ],
        )
        connection.execute("COMMIT")
    except sqlite3.Error as error:
        raise cannot_open(path, error) from None
    finally:
        connection.close()
