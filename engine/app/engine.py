"""One engine: its nodes, files, result cache and executor, built from settings. The command line
and the server each make one and keep it for their lifetime, so results stay cached between runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import cached_property
from typing import Any

from ..core.cache import ResultCache
from ..core.events import Listener
from ..core.executor import Executor, RunResult
from ..core.files import FileStore
from ..core.limits import Limits
from ..core.registry import NodeRegistry
from ..core.validation import InvalidGraphError, Validation, validate
from ..models.devices import resolve_device
from ..models.manager import ModelManager
from .config import Settings
from .plugins import PackReport, load_node_packs


class Engine:
    """Validates and runs prompts against one registry and one cache."""

    def __init__(
        self,
        settings: Settings | None = None,
        registry: NodeRegistry | None = None,
        files: FileStore | None = None,
    ) -> None:
        self.settings = settings or Settings()
        if registry is None:
            registry = NodeRegistry()
            self.pack_report = load_node_packs(registry, self.settings.custom_nodes_dirs)
        else:
            self.pack_report = PackReport()
        self.registry = registry
        self.files = files or self.settings.file_store()
        self.cache = ResultCache(self.settings.cache_budget)
        self.limits = Limits(
            max_grid_cells=self.settings.max_grid_cells, max_output_pixels=self.settings.max_output_pixels
        )
        if self.settings.device != "auto":
            self.device  # noqa: B018 (a device asked for by name is checked now, so a wrong one fails at start)

    # The device, the model manager and the executor are made when first needed: validating a graph
    # or listing nodes needs none of them, and telling the "auto" device imports torch (seconds).

    @cached_property
    def device(self) -> str:
        return resolve_device(self.settings.device)

    @cached_property
    def models(self) -> ModelManager:
        acceleration = replace(self.settings.acceleration, cache_dir=self.settings.compile_cache_dir())
        models = ModelManager(
            self.settings.models_dir, self.device, self.settings.dtype, acceleration=acceleration
        )
        # Weights and cached results share one budget on the compute device, if one is set.
        residency = models.residency
        models.attach_cache(self.cache)
        self.cache.allowance = lambda device: (
            residency.cache_allowance() if device == residency.device_type else None
        )
        return models

    @cached_property
    def executor(self) -> Executor:
        return Executor(self.cache, self.files, self.device, self.models, self.limits)

    def validate(self, prompt: Any, targets: Iterable[str] | None = None) -> Validation:
        return validate(prompt, self.registry, self.files, targets, self.limits)

    def run(
        self,
        prompt: Any,
        *,
        targets: Iterable[str] | None = None,
        prompt_id: str | None = None,
        on_event: Listener | None = None,
        workflow: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Validate and run `prompt`; raise `InvalidGraphError` with every issue if it is not valid."""
        validation = self.validate(prompt, targets)
        if validation.graph is None:
            raise InvalidGraphError(validation.issues)
        return self.executor.run(validation.graph, prompt_id=prompt_id, on_event=on_event, workflow=workflow)

    def interrupt(self) -> None:
        self.executor.interrupt()
