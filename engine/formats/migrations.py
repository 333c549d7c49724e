"""Numbered migrations of the depthgraph file format.

`FORMAT_VERSION` is the version this code writes. When the format changes, bump it and add a step
`MIGRATIONS[n]` that turns a version-n document into a version-(n+1) one, with a golden file of
version n under tests/golden/ that must keep loading. Files of any older version then load through
the chain of steps; a file newer than this code is refused with a message to upgrade.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FORMAT_VERSION = 1

Document = dict[str, Any]
MIGRATIONS: dict[int, Callable[[Document], Document]] = {}


class MigrationError(Exception):
    """A document whose version cannot be brought to `FORMAT_VERSION`."""


def migrate(document: Document, current: int | None = None) -> Document:
    """Bring `document` (with an integer "version") up to the current format version."""
    target = FORMAT_VERSION if current is None else current
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise MigrationError(f"its 'version' must be a whole number from 1 up, got {version!r}")
    if version > target:
        raise MigrationError(
            f"it was saved in format version {version}, newer than this depthgraph reads ({target}); "
            "upgrade depthgraph to open it"
        )
    while version < target:
        step = MIGRATIONS.get(version)
        if step is None:
            raise MigrationError(f"there is no migration from format version {version} to {version + 1}")
        document = step(dict(document))
        version += 1
        document["version"] = version
    return document
