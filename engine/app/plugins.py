"""Finding node packs: built-in ones through the `depthgraph.nodes` entry point (so the engine never
imports `nodes/` by name), and custom ones from `custom_nodes/` folders.

Every module of a pack is imported and the nodes it declares are registered. A custom module that
fails to import, or a custom node that reuses a taken name, is reported and skipped: it never stops
the engine, and it never replaces a built-in node.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
import sys
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from ..core.registry import DuplicateNodeError, NodeRegistry, declared_in

ENTRY_POINT_GROUP = "depthgraph.nodes"
CUSTOM_MODULE_PREFIX = "depthgraph_custom_nodes"
log = logging.getLogger(__name__)


@dataclass
class PackReport:
    """What loading node packs did: node names per module, and every problem met."""

    loaded: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def problem(self, message: str) -> None:
        log.warning(message)
        self.problems.append(message)


def load_node_packs(registry: NodeRegistry, custom_dirs: Iterable[Path] = ()) -> PackReport:
    """Register the built-in packs, then the custom modules of `custom_dirs`."""
    report = PackReport()
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            pack = entry_point.load()
        except Exception as error:
            report.problem(
                f"node pack '{entry_point.name}' ({entry_point.value}) failed to import: {error!r}"
            )
            continue
        for module in _with_submodules(pack, report):
            _register(registry, module, builtin=True, report=report)
    if not any(registry.is_builtin(definition.class_name) for definition in registry):
        report.problem(
            "no built-in nodes were found: depthgraph is not installed in this environment "
            "(run `pip install -e .` in its folder)"
        )
    for folder in custom_dirs:
        load_custom_nodes(registry, folder, report)
    return report


def load_custom_nodes(registry: NodeRegistry, folder: Path, report: PackReport) -> None:
    """Import each `*.py` file and each package of `folder` and register their nodes."""
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.name.startswith((".", "_")):
            continue
        is_package = path.is_dir() and (path / "__init__.py").is_file()
        if not is_package and path.suffix != ".py":
            continue
        name = f"{CUSTOM_MODULE_PREFIX}.{path.stem}"
        try:
            module = _import_file(name, path / "__init__.py" if is_package else path, is_package)
        except Exception:
            detail = traceback.format_exc(limit=-1).strip().splitlines()[-1]
            report.problem(f"custom node module {path} failed to import and was skipped: {detail}")
            continue
        for submodule in _with_submodules(module, report):
            _register(registry, submodule, builtin=False, report=report)


def _import_file(name: str, path: Path, is_package: bool) -> ModuleType:
    if CUSTOM_MODULE_PREFIX not in sys.modules:
        namespace = ModuleType(CUSTOM_MODULE_PREFIX)
        namespace.__path__ = []
        sys.modules[CUSTOM_MODULE_PREFIX] = namespace
    locations = [str(path.parent)] if is_package else None
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=locations)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _with_submodules(module: ModuleType, report: PackReport) -> Iterator[ModuleType]:
    """The module itself and, for a package, every module inside it."""
    yield module
    path = getattr(module, "__path__", None)
    if path is None:
        return
    for info in pkgutil.walk_packages(path, prefix=f"{module.__name__}."):
        try:
            yield importlib.import_module(info.name)
        except Exception as error:
            report.problem(f"node module {info.name} failed to import and was skipped: {error!r}")


def _register(registry: NodeRegistry, module: ModuleType, *, builtin: bool, report: PackReport) -> None:
    names: list[str] = []
    for value in declared_in(module):
        try:
            registry.add(value, builtin=builtin)
        except DuplicateNodeError as error:
            report.problem(f"node skipped: {error}")
            continue
        names.append(value.class_name)
    if names:
        report.loaded[module.__name__] = names
