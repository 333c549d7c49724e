"""Finding models of one kind in their own folder of the models folder (`depth/`, `controlnet/`):
model folders one or two levels deep (`depth/dpt-large`, `depth/depth-anything/Depth-Anything-V2-
Small-hf`), then single weights files, each by the name a loader's choice shows."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

FoundKind = Literal["folder", "single_file"]


def scan_models(
    folder: Path, suffixes: Iterable[str], is_model_folder: Callable[[Path], bool]
) -> list[tuple[str, FoundKind, Path]]:
    """(name, kind, path) of every model folder in `folder` (one or two levels deep), then of every
    file with one of `suffixes`, each in name order."""
    if not folder.is_dir():
        return []
    endings = tuple(suffixes)
    folders: list[tuple[str, FoundKind, Path]] = []
    files: list[tuple[str, FoundKind, Path]] = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in endings:
            files.append((path.name, "single_file", path))
        if not path.is_dir():
            continue
        if is_model_folder(path):
            folders.append((path.name, "folder", path))
            continue
        for inner in sorted(path.iterdir()):
            if inner.is_dir() and is_model_folder(inner):
                folders.append((f"{path.name}/{inner.name}", "folder", inner))
    return folders + files


def files_fingerprint(kind: str, path: Path | None, files: Iterable[Path]) -> str:
    """Changes when a model on disk is replaced (a file's name, time or size), so results loaded
    from it are not reused."""
    if path is None:
        return kind
    stats = [(item.name, item.stat().st_mtime_ns, item.stat().st_size) for item in files if item.is_file()]
    return f"{kind}:{path.resolve()}:{stats}"
