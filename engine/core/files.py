"""The input, output and temp folders, and the one place that turns a user-given name into a path.

Names come from graphs, the command line and HTTP requests, so every lookup goes through
`FileStore.resolve`, which refuses anything that would leave its folder: `..`, absolute paths,
drive letters, NUL bytes, and symlinks that point outside; and names no file system would take
(a part over 255 bytes, a symlink loop) with a message instead of an OS error.

Files appear whole or not at all: outputs are written under a hidden temporary name and published
under their counter name only when finished (`FileStore.write_output`), uploads likewise
(`create_whole`), so a full disk or a crash never leaves a half-written file under a real name.

What a run saved is read back from the nodes' UI outputs by `saved_files`, the one lister of them
(for the command line, batches, and the files a cluster worker sends back).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO, Literal

FolderKind = Literal["input", "output", "temp"]
FOLDER_KINDS: tuple[FolderKind, ...] = ("input", "output", "temp")
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp"})
# What common file systems take (ext4, APFS, NTFS: 255 bytes a part); the whole relative name is
# kept well under PATH_MAX (4096 on Linux) so the folder in front of it still fits.
MAX_NAME_PART_BYTES = 255
MAX_NAME_BYTES = 1024
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})  # no quotas on Windows


@dataclass(frozen=True)
class SavedFile:
    """One file a node's UI output names: the UI key that lists it ("images", "depth_files"), the
    folder it is in and its name there."""

    key: str
    kind: FolderKind
    filename: str
    subfolder: str = ""

    def entry(self) -> dict[str, str]:
        """The file as a UI output lists it: {filename, subfolder, type}."""
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.kind}


def saved_files(ui: Mapping[str, Any], kinds: Iterable[FolderKind] = FOLDER_KINDS) -> Iterator[SavedFile]:
    """Each file a node's UI output names, of every key (`images`, `depth_files`, ...), in order: the
    `{filename, subfolder, type}` entries in its lists whose type is one of `kinds`. Everything else
    a node shows (text, numbers, entries without a file name) is skipped."""
    wanted = frozenset(kinds)
    for key, value in ui.items():
        if not isinstance(value, list):
            continue
        for item in value:
            if not isinstance(item, Mapping):
                continue
            filename, subfolder, kind = item.get("filename"), item.get("subfolder", ""), item.get("type")
            if isinstance(filename, str) and isinstance(subfolder, str) and kind in wanted:
                yield SavedFile(key, kind, filename, subfolder)


class UnsafePathError(ValueError):
    """A name that would read or write outside its folder, or that no file can have."""


class NameTooLongError(UnsafePathError):
    """A name longer than file systems allow (a part over 255 bytes, or the whole over 1024)."""


class DiskFullError(OSError):
    """The disk (or the user's quota) is full: nothing was saved under the name asked for."""


FOLDER_ANNOTATIONS: dict[str, FolderKind] = {" [input]": "input", " [output]": "output", " [temp]": "temp"}


def split_annotation(name: str) -> tuple[FolderKind, str]:
    """ComfyUI's annotated file names: `x.png [output]` is x.png in the output folder."""
    for suffix, kind in FOLDER_ANNOTATIONS.items():
        if name.endswith(suffix):
            return kind, name[: -len(suffix)]
    return "input", name


def check_relative_name(name: str, what: str = "file name") -> PurePosixPath:
    """Return `name` as a relative path with no `..` parts, or raise `UnsafePathError`."""
    if "\x00" in name:
        raise UnsafePathError(f"{what} {name[:80]!r} contains a NUL byte")
    check_name_length(name, what)
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(name).drive:
        raise UnsafePathError(f"{what} {name!r} is absolute; give a name inside the folder")
    if any(part == ".." for part in posix.parts):
        raise UnsafePathError(f"{what} {name!r} climbs out of its folder with '..'")
    return posix


def check_name_length(name: str, what: str = "file name") -> None:
    """Refuse names no file system takes: a part over 255 bytes (UTF-8), or over 1024 in all."""
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise NameTooLongError(
            f"{what} {name[:40]!r}... is {size} bytes long; names are at most {MAX_NAME_BYTES} bytes"
        )
    for part in name.replace("\\", "/").split("/"):
        part_size = len(part.encode("utf-8", "surrogatepass"))
        if part_size > MAX_NAME_PART_BYTES:
            raise NameTooLongError(
                f"{what} {part[:40]!r}... has a part of {part_size} bytes; each file or folder name "
                f"is at most {MAX_NAME_PART_BYTES} bytes: give a shorter one"
            )


@dataclass
class FileStore:
    """Where a run reads inputs and writes outputs.

    `extra_inputs` maps names given on the command line (`--set 1.image=photos/cat.png`) to the files
    they name: a local user may point at any file, a graph file or a client may not.
    """

    input_dir: Path = Path("input")
    output_dir: Path = Path("output")
    temp_dir: Path = Path("temp")
    extra_inputs: Mapping[str, Path] = field(default_factory=dict)
    models_dir: Path = Path("models")  # only listed (for the loader's choices), never written
    max_image_pixels: int = 64 * 2**20  # larger input images are refused before decoding

    def folder(self, kind: FolderKind) -> Path:
        if kind == "input":
            return self.input_dir
        if kind == "output":
            return self.output_dir
        if kind == "temp":
            return self.temp_dir
        raise UnsafePathError(f"unknown folder type {kind!r}; use one of {', '.join(FOLDER_KINDS)}")

    def resolve(self, kind: FolderKind, name: str, subfolder: str = "") -> Path:
        """The path of `subfolder/name` inside the folder of `kind`, refusing any escape."""
        relative = check_relative_name(subfolder, "subfolder") / check_relative_name(name)
        check_name_length(relative.as_posix(), "name")
        try:
            folder = self.folder(kind).resolve()
            path = (folder / relative).resolve()
        except RuntimeError:  # Path.resolve's word for a symlink loop before Python 3.13
            raise UnsafePathError(f"{relative.as_posix()!r} is a symlink loop in the {kind} folder") from None
        except OSError as error:
            raise UnsafePathError(
                f"{relative.as_posix()!r} cannot be looked up in the {kind} folder ({error.strerror})"
            ) from None
        if path != folder and folder not in path.parents:
            raise UnsafePathError(f"{name!r} leads outside the {kind} folder (through a symlink)")
        return path

    def path_of(self, saved: SavedFile) -> Path:
        """Where a file a node saved is (refusing a name that would leave its folder)."""
        return self.resolve(saved.kind, saved.filename, saved.subfolder)

    def resolve_input(self, name: str) -> Path:
        """An input file: one named on the command line, or a name inside the input folder (or, as
        ComfyUI's front end writes after its mask editor or "paste", `name [output]` in another)."""
        if name in self.extra_inputs:
            return self.extra_inputs[name]
        kind, plain = split_annotation(name)
        return self.resolve(kind, plain)

    def annotated_exists(self, name: str) -> bool:
        """Whether `name` carries a folder annotation (`x.png [input]`) and that file exists."""
        kind, plain = split_annotation(name)
        if plain == name:
            return False
        try:
            return self.resolve(kind, plain).is_file()
        except (UnsafePathError, OSError):
            return False

    def list_inputs(self, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> list[str]:
        """Names of the files in the input folder (subfolders included) with one of `extensions`,
        plus the files named on the command line. Symlinks to files outside the folder are left out,
        since `resolve` would refuse them."""
        wanted = {extension.lower() for extension in extensions}
        names = set(self.extra_inputs)
        folder = self.input_dir
        if folder.is_dir():
            inside = folder.resolve()
            for path in folder.rglob("*"):
                if path.suffix.lower() in wanted and path.is_file() and inside in path.resolve().parents:
                    names.add(path.relative_to(folder).as_posix())
        return sorted(names)

    def write_output(
        self, prefix: str, extension: str, kind: FolderKind, write: Callable[[BinaryIO], object]
    ) -> tuple[Path, str, str]:
        """Save a new file `prefix_00001.ext` (the next free counter) and return its path, subfolder
        and file name. `write` fills an open binary file; only once it has finished is the file
        published under its name, which is never one that already exists. On any failure nothing is
        left behind (no file under a counter name, no temporary file); a full disk raises
        `DiskFullError`."""
        target_dir, subfolder, stem = self._output_folder(prefix, extension, kind)
        temporary = _temporary_in(target_dir)
        try:
            with temporary.open("xb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())  # the data is on disk before any name points at it
            path = _publish(temporary, target_dir, stem, extension)
        except OSError as error:
            if error.errno in DISK_FULL_ERRNOS:
                shown = f"{subfolder}/{stem}" if subfolder else stem
                raise DiskFullError(
                    f"the {kind} disk is full while saving {shown}_#####{extension}: free some space "
                    f"in {self.folder(kind)} and run it again"
                ) from None
            raise
        finally:
            temporary.unlink(missing_ok=True)
        return path, subfolder, path.name

    def _output_folder(self, prefix: str, extension: str, kind: FolderKind) -> tuple[Path, str, str]:
        """The folder a prefix such as `renders/cat` saves into (made if missing, refused if it
        would leave the folder of `kind`), its subfolder name and the file name's stem."""
        relative = check_relative_name(prefix or "depthgraph", "filename prefix")
        check_name_length(f"{relative.name}_00000{extension}", "filename prefix")
        folder = self.folder(kind).resolve()
        subfolder = relative.parent.as_posix() if relative.parent != PurePosixPath(".") else ""
        target_dir = self.resolve(kind, "", subfolder) if subfolder else folder
        target_dir.mkdir(parents=True, exist_ok=True)
        if target_dir != folder and folder not in target_dir.resolve().parents:
            raise UnsafePathError(f"filename prefix {prefix!r} leads outside the {kind} folder")
        return target_dir, subfolder, relative.name

    def save_upload(
        self, kind: FolderKind, filename: str, subfolder: str, data: bytes, overwrite: bool
    ) -> str:
        """Save uploaded bytes as `subfolder/filename` and return the name used. A same-named file
        with the same bytes is reused (deduplicated by content); one with other bytes is kept and the
        upload gets a new name ("photo (1).png"). The file appears whole or not at all; a full disk
        raises `DiskFullError`."""
        try:
            return self._save_upload(kind, filename, subfolder, data, overwrite)
        except OSError as error:
            if error.errno in DISK_FULL_ERRNOS:
                raise DiskFullError(
                    f"the {kind} disk is full while saving the upload {filename!r}: free some space "
                    f"in {self.folder(kind)} and upload it again"
                ) from None
            raise

    def _save_upload(
        self, kind: FolderKind, filename: str, subfolder: str, data: bytes, overwrite: bool
    ) -> str:
        path = self.resolve(kind, filename, subfolder)
        path.parent.mkdir(parents=True, exist_ok=True)
        if overwrite:
            if path.is_dir():
                raise UnsafePathError(
                    f"{filename!r} is a folder in the {kind} folder; upload the file under another name"
                )
            temporary = _temporary_in(path.parent)
            try:
                temporary.write_bytes(data)
                temporary.replace(path)
            finally:
                temporary.unlink(missing_ok=True)
            return path.name
        digest = hashlib.sha256(data).digest()
        stem, suffix = Path(filename).stem, Path(filename).suffix
        counter = 1
        while not create_whole(path, data):  # taken (even by a writer racing this one)
            if path.is_file() and hashlib.sha256(path.read_bytes()).digest() == digest:
                return path.name
            path = path.with_name(f"{stem} ({counter}){suffix}")  # a folder or other bytes hold it
            check_name_length(path.name)
            counter += 1
        return path.name


def _temporary_in(folder: Path) -> Path:
    """A hidden name for a file being written, never one of a counter or an upload."""
    return folder / f".{uuid.uuid4().hex}.part"


def _publish(temporary: Path, folder: Path, stem: str, extension: str) -> Path:
    """Give the finished file `temporary` the next free name `stem_00001.ext` in `folder`, never
    replacing a file: a hard link fails on a taken name (then the next counter is tried)."""
    pattern = re.compile(rf"^{re.escape(stem)}_(\d+){re.escape(extension)}$")
    counters = [int(match.group(1)) for path in folder.iterdir() if (match := pattern.match(path.name))]
    counter = max(counters, default=0) + 1
    while True:
        path = folder / f"{stem}_{counter:05d}{extension}"
        try:
            _link_or_move(temporary, path)
        except FileExistsError:
            counter += 1
            continue
        return path


def _link_or_move(temporary: Path, path: Path) -> None:
    """Make the finished `temporary` appear as `path`, raising FileExistsError if the name is taken."""
    try:
        os.link(temporary, path)
        return
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno in DISK_FULL_ERRNOS:
            raise
    # A file system without hard links: claim the name exclusively, then move the file onto it.
    with path.open("xb"):
        pass
    try:
        temporary.replace(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def create_whole(path: Path, data: bytes) -> bool:
    """Create `path` with `data` if no file has that name yet, whole or not at all (a hard link of a
    finished file never replaces one); False if the name is taken."""
    partial = _temporary_in(path.parent)
    try:
        partial.write_bytes(data)
        _link_or_move(partial, path)
    except FileExistsError:
        return False
    finally:
        partial.unlink(missing_ok=True)
    return True
