"""The models a user can pick (`ModelSource`): the built-in tiny ones and those in the models folder
(diffusers-layout folders, single-file checkpoints), each told its family before anything loads
(`ModelSource.info`, read once until the model on disk changes), and which components each has."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .common import SINGLE_FILE_SUFFIXES, ModelError
from .families import SD2_DEPTH, ModelInfo, UnsupportedModelError, folder_info
from .tiny import TINY_MODEL
from .tiny_families import TINY_INFOS

ModelKind = Literal["tiny", "diffusers", "single_file"]
TINY_MODELS = (TINY_MODEL, *TINY_INFOS)
TINY_DEPTH_INFO = ModelInfo(SD2_DEPTH, "epsilon", True, "built in")
_INFOS: dict[str, ModelInfo] = {}  # by fingerprint: a model on disk is read once until it changes


@dataclass(frozen=True)
class ModelSource:
    """A model the user can pick by name."""

    name: str
    kind: ModelKind
    path: Path | None = None

    def describe(self) -> str:
        if self.kind == "tiny":
            return f"{self.name}  (built-in test model with random weights: its images are noise)"
        return self.where()

    def where(self) -> str:
        """`name  (diffusers folder ...)`: what the model is on disk."""
        if self.kind == "single_file":
            from .ldm_config import yaml_beside

            assert self.path is not None
            config = yaml_beside(self.path)
            beside = f", read with {config.name}" if config is not None else ""
            return f"{self.name}  (single-file checkpoint {self.path}{beside})"
        return f"{self.name}  (diffusers folder {self.path})"

    def info(self) -> ModelInfo:
        """Its family, prediction type and bundled estimator, read from configs or tensor names (not
        weights), once until the model on disk changes. An unreadable model raises ModelError; one of a
        kind depthgraph does not run, `UnsupportedModelError`."""
        if self.kind == "tiny":
            return TINY_INFOS.get(self.name, TINY_DEPTH_INFO)
        key = self.fingerprint()
        found = _INFOS.get(key)
        if found is None:
            assert self.path is not None
            found = folder_info(self.path) if self.kind == "diffusers" else single_file_info(self.path)
            if len(_INFOS) > 256:
                _INFOS.clear()
            _INFOS[key] = found
        return found

    def fingerprint(self) -> str:
        """Changes when the model on disk is replaced, so loader results are not reused."""
        if self.path is None:
            return self.kind
        stat = (self.path if self.kind == "single_file" else self.path / "model_index.json").stat()
        signature = f"{self.kind}:{self.path.resolve()}:{stat.st_mtime_ns}:{stat.st_size}"
        if self.kind == "single_file":  # the yaml beside it decides the architecture too
            from .ldm_config import yaml_beside

            config = yaml_beside(self.path)
            if config is not None:
                signature += f":{config.name}:{config.stat().st_mtime_ns}"
        return signature


def _is_diffusers_folder(path: Path) -> bool:
    return (path / "model_index.json").is_file()


def single_file_info(path: Path) -> ModelInfo:
    """A single file's family: the yaml beside it decides, else its tensor names and shapes."""
    from .checkpoint_read import global_step, tensor_shapes
    from .families import DEPTH_MODEL_PREFIX, FAMILIES, checkpoint_info
    from .ldm_config import architecture_of, yaml_beside

    config = yaml_beside(path)
    if config is None:
        return checkpoint_info(tensor_shapes(path), global_step(path), path)
    architecture = architecture_of(path)
    family = FAMILIES[architecture.family]
    prediction = str(architecture.scheduler.get("prediction_type", "epsilon"))
    estimator = family.takes_depth
    if estimator:  # a depth file pruned of its MiDaS weights has none; an unreadable one: loading says
        with contextlib.suppress(ModelError):
            estimator = any(key.startswith(DEPTH_MODEL_PREFIX) for key in tensor_shapes(path))
    return ModelInfo(family, prediction, estimator, config.name)


def find_models(models_dir: Path) -> list[ModelSource]:
    """The built-in tiny models (`tiny-random` first), then every diffusers-layout folder in
    `models_dir` (one or two levels deep, so both `models/sd2-depth` and
    `models/stabilityai/stable-diffusion-2-depth` are found), then every single-file checkpoint
    (`512-depth-ema.ckpt` / `.safetensors`) in it."""
    sources = [ModelSource(name, "tiny") for name in TINY_MODELS]
    if not models_dir.is_dir():
        return sources
    files = []
    for path in sorted(models_dir.iterdir()):
        if path.is_file() and path.suffix in SINGLE_FILE_SUFFIXES:
            files.append(ModelSource(path.name, "single_file", path))
        if not path.is_dir():
            continue
        if _is_diffusers_folder(path):
            sources.append(ModelSource(path.name, "diffusers", path))
            continue
        for inner in sorted(path.iterdir()):
            if inner.is_dir() and _is_diffusers_folder(inner):
                sources.append(ModelSource(f"{path.name}/{inner.name}", "diffusers", inner))
    return sources + files


def model_names(models_dir: Path) -> list[str]:
    return [source.name for source in find_models(models_dir)]


def model_not_found_message(name: str, models_dir: Path) -> str:
    """What to say when no model in `models_dir` is called `name`: where it looked, what to do, and
    the models that are there (the one wording for validation and for loading)."""
    available = ", ".join(repr(choice) for choice in model_names(models_dir))
    return (
        f"model {name!r} was not found: searched {models_dir.resolve()} for a folder {name!r} with "
        f"model_index.json (diffusers layout) or a checkpoint file {name!r}. Place it there, pass "
        "--models-dir, or run `depthgraph models fetch` on a machine with internet. "
        f"Available: {available}"
    )


# What every model has: loaded without asking its family first (a folder whose family cannot be told
# still says what is wrong with the part asked for).
FAMILY_NEUTRAL = frozenset({"unet", "vae", "text_encoder", "tokenizer", "scheduler"})


def no_depth_estimator_message(name: str, info: ModelInfo) -> str:
    """Why model `name` gives no DEPTH_MODEL, and what to link instead (validation and loading)."""
    if info.family.takes_depth:
        what = f"{name} is an SD2-depth checkpoint pruned of its MiDaS depth estimator"
    else:
        what = f"{name} is {info.family.title}, which bundles no depth estimator (only SD2-depth files do)"
    return (
        f"{what}: load a depth estimator with a DepthModelLoader node and link its DEPTH_MODEL here "
        "instead of this loader's"
    )


def check_component(source: ModelSource, component: str) -> None:
    """Refuse a component model `source` does not have, saying why (before reading anything)."""
    try:
        info = source.info()
    except UnsupportedModelError:
        raise
    except ModelError:
        return  # its family cannot be told: loading the part says what is wrong
    if component in info.components():
        return
    if component in ("depth_estimator", "feature_extractor"):
        raise ModelError(no_depth_estimator_message(source.name, info))
    raise ModelError(f"{source.name} is {info.family.title}, which has no {component}")
