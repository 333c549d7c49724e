"""The input, output and temp folders, and the one place that turns a user-given name into a path.

Names come from graphs, the command line and (later) HTTP requests, so every lookup goes through
`FileStore.resolve`, which refuses anything that would leave its folder: `..`, absolute paths,
drive letters, NUL bytes, and symlinks that point outside.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal

FolderKind = Literal["input", "output", "temp"]
FOLDER_KINDS: tuple[FolderKind, ...] = ("input", "output", "temp")
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp"})


class UnsafePathError(ValueError):
    """A name that would read or write outside its folder."""


def check_relative_name(name: str, what: str = "file name") -> PurePosixPath:
    """Return `name` as a relative path with no `..` parts, or raise `UnsafePathError`."""
    if "\x00" in name:
        raise UnsafePathError(f"{what} {name!r} contains a NUL byte")
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(name).drive:
        raise UnsafePathError(f"{what} {name!r} is absolute; give a name inside the folder")
    if any(part == ".." for part in posix.parts):
        raise UnsafePathError(f"{what} {name!r} climbs out of its folder with '..'")
    return posix


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
        folder = self.folder(kind).resolve()
        relative = check_relative_name(subfolder, "subfolder") / check_relative_name(name)
        path = (folder / relative).resolve()
        if path != folder and folder not in path.parents:
            raise UnsafePathError(f"{name!r} leads outside the {kind} folder (through a symlink)")
        return path

    def resolve_input(self, name: str) -> Path:
        """An input file: one named on the command line, or a name inside the input folder."""
        if name in self.extra_inputs:
            return self.extra_inputs[name]
        return self.resolve("input", name)

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

    def reserve_output(
        self, prefix: str, extension: str, kind: FolderKind = "output"
    ) -> tuple[Path, str, str]:
        """Create a new empty file `prefix_00001.ext` (the next free counter) and return its path,
        subfolder and file name. Never overwrites: the file is created exclusively."""
        relative = check_relative_name(prefix or "depthgraph", "filename prefix")
        folder = self.folder(kind).resolve()
        subfolder = relative.parent.as_posix() if relative.parent != PurePosixPath(".") else ""
        target_dir = self.resolve(kind, "", subfolder) if subfolder else folder
        target_dir.mkdir(parents=True, exist_ok=True)
        if target_dir != folder and folder not in target_dir.resolve().parents:
            raise UnsafePathError(f"filename prefix {prefix!r} leads outside the {kind} folder")
        stem = relative.name
        pattern = re.compile(rf"^{re.escape(stem)}_(\d+){re.escape(extension)}$")
        counters = [int(m.group(1)) for p in target_dir.iterdir() if (m := pattern.match(p.name))]
        counter = max(counters, default=0) + 1
        while True:
            filename = f"{stem}_{counter:05d}{extension}"
            path = target_dir / filename
            try:
                with path.open("xb"):
                    pass
            except FileExistsError:
                counter += 1
                continue
            return path, subfolder, filename

    def save_upload(
        self, kind: FolderKind, filename: str, subfolder: str, data: bytes, overwrite: bool
    ) -> str:
        """Save uploaded bytes as `subfolder/filename` and return the name used. A same-named file
        with the same bytes is reused (deduplicated by content); one with other bytes is kept and the
        upload gets a new name ("photo (1).png"). The file appears whole or not at all."""
        path = self.resolve(kind, filename, subfolder)
        path.parent.mkdir(parents=True, exist_ok=True)
        if overwrite:
            temporary = _partial(path)
            temporary.write_bytes(data)
            temporary.replace(path)
            return path.name
        digest = hashlib.sha256(data).digest()
        stem, suffix = Path(filename).stem, Path(filename).suffix
        counter = 1
        while not create_whole(path, data):  # taken (even by a writer racing this one)
            if hashlib.sha256(path.read_bytes()).digest() == digest:
                return path.name
            path = path.with_name(f"{stem} ({counter}){suffix}")
            counter += 1
        return path.name


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")


def create_whole(path: Path, data: bytes) -> bool:
    """Create `path` with `data` if no file has that name yet, whole or not at all (a hard link of a
    finished file never replaces one); False if the name is taken."""
    partial = _partial(path)
    partial.write_bytes(data)
    try:
        os.link(partial, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: create exclusively, then write
        try:
            with path.open("xb") as handle:
                handle.write(data)
        except FileExistsError:
            return False
    finally:
        partial.unlink(missing_ok=True)
    return True
