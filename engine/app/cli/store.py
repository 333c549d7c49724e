"""`depthgraph store check | repair`."""

from __future__ import annotations

import argparse
import sys

from ..config import Settings
from .common import EXIT_FAILED, EXIT_OK


def store_command(args: argparse.Namespace, settings: Settings) -> int:
    from ..store import PromptStore, StoreError, store_path
    from ..store_repair import repair_store

    path = store_path(settings.data_dir)
    if not (path.exists() or path.is_symlink()):
        print(f"there is no store at {path} yet; the server makes one when it starts")
        return EXIT_OK
    try:
        if args.action == "check":
            store = PromptStore(path)
            try:
                counts = store.counts()
            finally:
                store.close()
            held = "".join(f", {count} {status}" for status, count in sorted(counts.items()))
            print(f"{path} is sound; it holds {sum(counts.values())} prompt(s){held}")
            return EXIT_OK
        repair = repair_store(path)
    except StoreError as error:
        print(f"depthgraph: {error}", file=sys.stderr)
        return EXIT_FAILED
    if repair.problem is None:
        print(f"{path} is sound; nothing to repair")
        return EXIT_OK
    print(f"{path} was damaged: {repair.problem}")
    print(f"moved it aside, as it was, to {repair.moved_to}")
    print(f"the new store at {path} holds the {repair.kept} prompt(s) that could be read")
    if repair.damaged_parts or repair.unreadable_rows:
        print(
            f"skipped {repair.damaged_parts} damaged part(s) of the file and {repair.unreadable_rows} "
            "row(s) that could not be read"
        )
    return EXIT_OK
