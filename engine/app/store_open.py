"""Opening the prompt store's sqlite file: checked before use (a damaged file raises StoreDamaged with
what to do, and is left as it was for a repair), in WAL mode, and still readable on a full disk."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from .store_faults import (
    SQLITE_CORRUPT,
    SQLITE_NOTADB,
    StoreDamaged,
    StoreError,
    cannot_open,
    damaged,
    move_aside_command,
    sqlite_code,
    write_failure,
)

log = logging.getLogger("depthgraph.store")


def open_database(path: Path) -> tuple[sqlite3.Connection, str | None]:
    """A connection to the sound sqlite file at `path` (created if missing), and why it cannot be
    written when it opened on a full or failing disk; a StoreError saying what to do if none opens."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        why = write_failure(error, path) or error.strerror or str(error)
        raise StoreError(
            f"depthgraph cannot create its data folder {path.parent}: {why}; or start with --data-dir "
            "elsewhere"
        ) from None
    if path.is_dir():
        raise StoreDamaged(
            f"{path} is a folder, where depthgraph keeps its store's file; move it aside "
            f"({move_aside_command(path)}) or start with --data-dir elsewhere",
            "it is a folder",
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(
            f"{path} cannot be read and written by this user; fix its permissions (chmod u+rw {path}) "
            "or start with --data-dir elsewhere"
        )
    checked = path.is_file() and path.stat().st_size > 0 and _check_without_writing(path)
    try:
        return _connect(path, exclusive=False, check=not checked), None
    except sqlite3.Error as error:
        reason = write_failure(error, path)
        if reason is None or sqlite_code(error) in (SQLITE_CORRUPT, SQLITE_NOTADB) or not path.is_file():
            raise cannot_open(path, error) from None
        first_error = error
    # WAL keeps its index in a shared-memory file beside the store, which a full disk cannot hold.
    # Holding the file alone, sqlite keeps that index in this process: the history stays readable, and
    # results wait in memory until the disk takes writes (other processes cannot read it meanwhile).
    try:
        connection = _connect(path, exclusive=True, check=not checked)
    except sqlite3.Error:
        raise cannot_open(path, first_error) from None
    log.warning("the store opened on a disk that cannot write: %s", reason)
    return connection, reason


def _check_without_writing(path: Path) -> bool:
    """Raise StoreDamaged if the file at `path` is damaged; True when it is sound, False when the disk
    did not let it be checked. Read-only, because sqlite closing a writable connection to a damaged file
    folds its journal into it or deletes the journal: the file stays as it was, for a repair."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        _quick_check(connection, path)
    except sqlite3.Error as error:
        reason = write_failure(error, path)
        if reason is None or sqlite_code(error) in (SQLITE_CORRUPT, SQLITE_NOTADB):
            raise damaged(path, str(error)) from None
        return False
    finally:
        connection.close()
    return True


def _quick_check(connection: sqlite3.Connection, path: Path) -> None:
    # Reads every page's structure once (a few ms for a long history); a damaged file is found now,
    # not halfway through a user's request.
    report = connection.execute("PRAGMA quick_check(1)").fetchone()
    if report is None or report[0] != "ok":
        raise damaged(path, "sqlite's check says: " + (str(report[0]) if report else "nothing"))


def _connect(path: Path, exclusive: bool, check: bool) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        if exclusive:
            connection.execute("PRAGMA locking_mode=EXCLUSIVE")
        if check:
            _quick_check(connection, path)
        connection.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL may lose the last commits on power loss, never consistency; FULL would
        # wait for the disk on every status change.
        connection.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        connection.close()
        raise
    return connection
