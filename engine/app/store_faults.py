"""What can go wrong with the prompt store's file, and what to tell the user about it.

Two kinds of trouble, told apart because the server answers them differently:

- `StoreError`: the file cannot be used at all (damaged, not depthgraph's, a folder, unreadable, written
  by a newer depthgraph). Found when the store opens: the server refuses to start and says how to go on.
  `StoreDamaged` is the kind that `depthgraph store repair` can mend.
- `StoreUnavailable`: the file is sound but cannot be written now (disk full, I/O error, read-only, locked
  by another process). The store keeps finished results in memory until it can write them, and new prompts
  are refused with the reason meanwhile.
"""

from __future__ import annotations

import errno
import shlex
import shutil
import sqlite3
from pathlib import Path

# sqlite's primary result codes; an extended code (SQLITE_IOERR_WRITE, ...) keeps its primary in the low byte.
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR = 5, 6, 8, 10
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 11, 13, 14, 26
# Python before 3.11 gives only the message; these are sqlite's own texts for the codes above.
_CODES_BY_MESSAGE = (
    ("database or disk is full", SQLITE_FULL),
    ("disk I/O error", SQLITE_IOERR),
    ("readonly database", SQLITE_READONLY),
    ("database is locked", SQLITE_BUSY),
    ("database table is locked", SQLITE_LOCKED),
    ("malformed", SQLITE_CORRUPT),
    ("file is not a database", SQLITE_NOTADB),
    ("unable to open database file", SQLITE_CANTOPEN),
)
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
DISK_FAULT_ERRNOS = frozenset({errno.EIO, errno.EROFS})
NEARLY_FULL_BYTES = 64 * 1024  # less free than this, and a failed write is put down to a full disk


class StoreError(Exception):
    """The store's file cannot be used; the message names the file and says what to do."""


class StoreDamaged(StoreError):
    """The file is damaged or is not depthgraph's store: `depthgraph store repair` moves it aside.
    `detail` is what is wrong, in a few words."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


class StoreUnavailable(StoreError):
    """The store cannot be written now; `reason` says why and what would let it write again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sqlite_code(error: sqlite3.Error) -> int | None:
    """The primary sqlite result code of `error`, when it can be told."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    text = str(error)
    return next((code for fragment, code in _CODES_BY_MESSAGE if fragment in text), None)


def write_failure(error: BaseException, path: Path) -> str | None:
    """Why the store at `path` cannot be written, when `error` puts the disk or the file at fault; None
    when it does not (a refused value, a bug: those are raised as they are)."""
    if isinstance(error, OSError):
        if error.errno in DISK_FULL_ERRNOS:
            return disk_full(path, error.strerror or str(error))
        if error.errno in DISK_FAULT_ERRNOS:
            return f"{path} cannot be written ({error.strerror}); check the disk it is on"
        return None
    if not isinstance(error, sqlite3.DatabaseError) or isinstance(
        error, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
    ):
        return None
    code = sqlite_code(error)
    if code == SQLITE_FULL or (code in (SQLITE_IOERR, SQLITE_CANTOPEN) and _no_space_left(path)):
        return disk_full(path, str(error))
    if code == SQLITE_IOERR:
        return f"{path} cannot be written ({error}); check the disk it is on"
    if code == SQLITE_READONLY:
        return f"{path} is read-only ({error}); make it and its folder writable"
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return (
            f"{path} is locked by another process ({error}); is another depthgraph serving the same "
            "--data-dir?"
        )
    if code == SQLITE_CANTOPEN:
        return f"{path} cannot be opened ({error}); check its folder and permissions"
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return f"{path} is damaged ({error}); stop the server and run {repair_command(path)}"
    return None


def _no_space_left(path: Path) -> bool:
    """Whether the disk holding `path` is full: sqlite reports some writes that fail for want of
    space as I/O errors (growing its shared-memory file, say)."""
    try:
        return shutil.disk_usage(path.parent).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def disk_full(path: Path, detail: str) -> str:
    return (
        f"the disk holding {path} is full ({detail}); free some space: finished results wait in memory "
        "and are written, and new prompts accepted, as soon as it can write again"
    )


def repair_command(path: Path) -> str:
    return f"`depthgraph store repair --data-dir {shlex.quote(str(path.parent))}`"


def move_aside_command(path: Path) -> str:
    """The shell command that moves the store's file (and the journal files beside it) out of the way."""
    moves = [f"mv {shlex.quote(str(path))} {shlex.quote(str(path) + '.broken')}"]
    for companion in ("-wal", "-shm"):
        if Path(f"{path}{companion}").exists():
            moves.append(f"mv {shlex.quote(f'{path}{companion}')} {shlex.quote(f'{path}.broken{companion}')}")
    return " && ".join(moves)


def damaged(path: Path, detail: str) -> StoreDamaged:
    return StoreDamaged(
        f"{path} is damaged or is not depthgraph's store ({detail}), so the queue and history cannot be "
        f"read from it. Run {repair_command(path)} to move it aside (it is kept) and start a new store "
        f"with every prompt that can still be read; or move it aside yourself ({move_aside_command(path)}), "
        "or start with --data-dir elsewhere.",
        detail,
    )


def cannot_open(path: Path, error: sqlite3.Error) -> StoreError:
    """The error for a store that sqlite cannot open or set up: damaged, or the disk is at fault."""
    reason = write_failure(error, path)
    if reason is None or sqlite_code(error) in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return damaged(path, str(error))
    return StoreError(f"depthgraph cannot open its store: {reason}; or start with --data-dir elsewhere")
