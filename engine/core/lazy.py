"""Modules imported when first used, so that what only declares nodes or reads graphs starts fast.

torch takes seconds to import; `depthgraph validate`, `nodes`, `models list` and `--help` need none
of it. A node module names torch through `lazy_module("torch")`: the name is there at import, and the
real module is imported the first time an attribute is read (`torch.Tensor`, `torch.cat`), so a node
that runs has it and a command that only reads declarations never pays for it. Nothing is put in
`sys.modules`: other code importing torch gets the real module, as before.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    """A stand-in for a module, which imports it on the first attribute read and then forwards."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_module"] = None

    def _load(self) -> ModuleType:
        module: ModuleType | None = self.__dict__["_module"]
        if module is None:
            try:
                module = importlib.import_module(self.__name__)
            except ModuleNotFoundError as error:
                top = self.__name__.partition(".")[0]
                if error.name != top:
                    raise
                raise ModuleNotFoundError(
                    f"{top} is not installed, and running this node needs it: install depthgraph with its "
                    f"dependencies (pip install -e . in its folder, or pip install {top})",
                    name=top,
                ) from None
            self.__dict__["_module"] = module
        return module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._load(), name)

    def __dir__(self) -> list[str]:
        return dir(self._load())

    def __repr__(self) -> str:
        state = "imported" if self.__dict__["_module"] is not None else "not imported yet"
        return f"<lazy module {self.__name__!r} ({state})>"


def lazy_module(name: str) -> Any:
    """`name` (e.g. "torch", "torch.nn.functional"), imported when an attribute of it is first read."""
    return LazyModule(name)
