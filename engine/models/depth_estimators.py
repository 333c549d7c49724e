"""Depth estimators on their own, for `DepthModelLoader`: finding them, loading them, and what their
handle (a DEPTH_MODEL) gives `DepthEstimate`.

Where they are found, in this order: the built-in tiny ones (`tiny_depth`), then in `models/depth/`
every folder in the Hugging Face layout (config.json + model.safetensors + preprocessor_config.json,
as `huggingface-cli download Intel/dpt-large --local-dir models/depth/dpt-large` leaves it; one or two
levels deep, so `models/depth/depth-anything/Depth-Anything-V2-Small-hf` is found too), then every
single weights file there (`depth_single_file`: `.safetensors`, `.pth`, `.pt`).

A loaded estimator lives in the model manager like a checkpoint's parts (`ModelManager.load_external`,
under the name `depth/NAME`): resident on the device between runs, counted against the memory
budget, offloaded first, freed by `/free`. It runs in float32, except on CUDA, where it has the
weights' dtype and runs under autocast, as SD2-depth's own estimator does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .common import ModelError
from .depth_families import DPT_HYBRID, Family, family_of_config, predicts_metres
from .depth_single_file import SUFFIXES, family_of_file, load_depth_file
from .model_folders import files_fingerprint, scan_models
from .tiny_depth import TINY_DESCRIPTION, TINY_ESTIMATORS, build_tiny_estimator, build_tiny_processor

if TYPE_CHECKING:
    import torch

    from .manager import ModelManager

DEPTH_FOLDER = "depth"  # inside the models folder
EstimatorKind = Literal["tiny", "folder", "single_file"]


@dataclass(frozen=True)
class EstimatorSource:
    """A depth estimator the user can pick by name."""

    name: str
    kind: EstimatorKind
    path: Path | None = None

    def family(self) -> Family:
        """Its family, from its config.json, its tensor names or the built-in table (ModelError if
        it is none depthgraph runs)."""
        if self.kind == "tiny":
            return TINY_ESTIMATORS[self.name][0]
        assert self.path is not None
        if self.kind == "single_file":
            return family_of_file(self.path)
        return family_of_config(_read_config(self.path), str(self.path / "config.json"))

    def describe(self) -> str:
        try:
            title = self.family().title
        except ModelError as error:
            return f"{self.name}  (cannot be used: {error})"
        if self.kind == "tiny":
            return f"{self.name}  ({title}; {TINY_DESCRIPTION})"
        where = "Hugging Face folder" if self.kind == "folder" else "single file"
        return f"{self.name}  ({title}; {where} {self.path})"

    def fingerprint(self) -> str:
        """Changes when the estimator on disk is replaced, so loader results are not reused."""
        if self.path is None:
            return self.kind
        files = [self.path] if self.kind == "single_file" else sorted(self.path.iterdir())
        return files_fingerprint(self.kind, self.path, files)


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"{path} cannot be read: {error}") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path} is not a JSON object; it is not a transformers model config")
    return config


def _is_estimator_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def find_depth_estimators(models_dir: Path) -> list[EstimatorSource]:
    """The tiny estimators, then the folders and files in `models_dir/depth/` (see the module doc)."""
    sources = [EstimatorSource(name, "tiny") for name in TINY_ESTIMATORS]
    found = scan_models(models_dir / DEPTH_FOLDER, SUFFIXES, _is_estimator_folder)
    return sources + [EstimatorSource(name, kind, path) for name, kind, path in found]


def depth_estimator_names(models_dir: Path) -> list[str]:
    return [source.name for source in find_depth_estimators(models_dir)]


def estimator_not_found_message(name: str, models_dir: Path) -> str:
    """What to say when no estimator is called `name`: where it looked and what there is."""
    available = ", ".join(repr(choice) for choice in depth_estimator_names(models_dir))
    return (
        f"depth estimator {name!r} was not found: searched {(models_dir / DEPTH_FOLDER).resolve()} for a "
        f"folder {name!r} with config.json (Hugging Face layout) or a weights file {name!r}. "
        f"Available: {available}"
    )


def find_depth_estimator(name: str, models_dir: Path) -> EstimatorSource:
    for source in find_depth_estimators(models_dir):
        if source.name == name:
            return source
    raise ModelError(estimator_not_found_message(name, models_dir))


def read_estimator(source: EstimatorSource, component: str) -> Any:
    """The model ("depth_estimator") or its image processor ("feature_extractor"), from disk or built."""
    from .depth_processing import build_processor, processor_from_folder

    if source.kind == "tiny":
        return (
            build_tiny_estimator(source.name)
            if component == "depth_estimator"
            else build_tiny_processor(source.name)
        )
    assert source.path is not None
    family = source.family()
    if source.kind == "single_file":
        return load_depth_file(source.path)[1] if component == "depth_estimator" else build_processor(family)
    if component == "feature_extractor":
        return processor_from_folder(source.path, family)
    return _from_folder(source.path, family)


def _from_folder(folder: Path, family: Family) -> Any:
    import torch

    try:
        return family.model_type().from_pretrained(folder, dtype=torch.float32)
    except Exception as error:  # corrupt, truncated or mismatched files
        files = ", ".join(sorted(item.name for item in folder.iterdir())) or "no files"
        raise ModelError(
            f"cannot load the {family.title} depth estimator from {folder} ({files}): "
            f"{type(error).__name__}: {error}. A folder holds config.json, the weights "
            "(model.safetensors) and preprocessor_config.json as the Hugging Face repository has them; "
            "the files may be truncated or corrupt: download them again."
        ) from None


@dataclass(frozen=True)
class DepthEstimatorHandle:
    """What DepthModelLoader outputs as DEPTH_MODEL: an estimator and the manager that keeps it."""

    manager: ModelManager = field(compare=False, repr=False)
    source: EstimatorSource

    @property
    def key(self) -> str:
        """Its name among the manager's models (apart from checkpoints of the same name)."""
        return f"{DEPTH_FOLDER}/{self.source.name}"

    def get(self, component: str) -> Any:
        if component not in ("depth_estimator", "feature_extractor"):
            raise ModelError(f"a depth estimator has no {component}")
        return self.manager.load_external(self.key, component, lambda: read_estimator(self.source, component))

    @property
    def family(self) -> Family:
        return self.source.family()

    @property
    def dtype(self) -> Any:
        return self.manager.dtype


def estimate_depth(
    depth_model: Any, pictures: Sequence[Any], keep_aspect_ratio: bool = False
) -> torch.Tensor:
    """DEPTH [B, 1, h, w] float32 on the estimator's device (relative inverse depth, larger = nearer;
    metric models' metres inverted to 1/m) for Pillow images, from either kind of DEPTH_MODEL: a
    DepthModelLoader handle, or a checkpoint's (whose estimator is SD2-depth's DPT-hybrid)."""
    from .depth_processing import predict, to_inverse_depth

    family = depth_model.family if isinstance(depth_model, DepthEstimatorHandle) else DPT_HYBRID
    processor = depth_model.get("feature_extractor")
    estimator = depth_model.get("depth_estimator")
    predicted = predict(
        family,
        estimator,
        processor,
        pictures,
        keep_aspect_ratio=keep_aspect_ratio,
        autocast_dtype=depth_model.dtype,
    )
    return to_inverse_depth(predicted, predicts_metres(family, estimator.config))
