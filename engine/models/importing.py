"""Bringing a model the user already has into the models folder: `depthgraph models import PATH`.

A diffusers folder (`model_index.json`, as a hub download or `models convert` writes it) or a
single-file checkpoint (`.ckpt` / `.safetensors`, with its `NAME.yaml` if one is beside it, as
A1111 keeps them) is checked first, then copied (or linked) under the models folder. A copy is
written under a hidden temporary name and renamed when complete, so an interrupted import never
leaves a half model that the loader would list. The report says what was found.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .common import SINGLE_FILE_SUFFIXES, ModelError
from .manager import check_depth_model

# What each part of a single file is called in the report, by its LDM prefix.
PARTS = {
    "model.diffusion_model.": "UNet",
    "model_ema.": "UNet EMA",
    "first_stage_model.": "VAE",
    "cond_stage_model.": "text encoder",
    "depth_model.": "MiDaS depth",
}
FOLDER_PARTS = (
    "unet",
    "vae",
    "text_encoder",
    "tokenizer",
    "scheduler",
    "depth_estimator",
    "feature_extractor",
)


@dataclass
class ImportReport:
    """What was imported, where it is, and what it holds."""

    name: str
    target: Path
    linked: bool
    findings: list[str] = field(default_factory=list)


def import_model(source: Path, models_dir: Path, name: str | None = None, link: bool = False) -> ImportReport:
    """Check `source` and copy (or symlink) it into `models_dir` as `name` (its own name by default)."""
    source = source.expanduser()
    if not source.exists():
        raise ModelError(f"{source} does not exist; give a model folder or a .ckpt/.safetensors file")
    if source.is_dir():
        findings = inspect_folder(source)
        target_name = name or source.name
    elif source.suffix in SINGLE_FILE_SUFFIXES:
        findings = inspect_checkpoint(source)
        target_name = name or source.name
        if Path(target_name).suffix != source.suffix:
            target_name += source.suffix  # the loader lists checkpoints by their suffix
    else:
        raise ModelError(
            f"{source} is neither a model folder nor a checkpoint file ({', '.join(SINGLE_FILE_SUFFIXES)})"
        )
    _check_name(target_name)
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / target_name
    if target.exists() or target.is_symlink():
        raise ModelError(
            f"{target} already exists; remove it first, or import under another name with --name"
        )
    companions = _companions(source, target)
    for path, destination in [(source, target), *companions]:
        _place(path.resolve(), destination, link)
    findings += [f"its config is kept beside it as {destination.name}" for _, destination in companions]
    return ImportReport(target.name, target, link, findings)


def inspect_folder(folder: Path) -> list[str]:
    """Why `folder` is no depth model (ModelError), or what it holds."""
    if not (folder / "model_index.json").is_file():
        raise ModelError(
            f"{folder} has no model_index.json: it is not a diffusers model folder (for a single file, "
            "give the .ckpt or .safetensors file itself)"
        )
    check_depth_model(folder)
    missing = [part for part in FOLDER_PARTS if not (folder / part).is_dir()]
    if missing:
        raise ModelError(f"{folder} has no {', '.join(missing)} folder(s); the depth model needs every part")
    return [f"a diffusers depth model folder ({', '.join(FOLDER_PARTS)})"]


def inspect_checkpoint(path: Path) -> list[str]:
    """Why the file is no depth checkpoint (ModelError), or what it holds (by its tensors' names and
    shapes only: nothing is converted)."""
    import torch

    from .checkpoint_read import tensor_shapes
    from .ldm_config import architecture_of
    from .single_file import check_depth_checkpoint

    shapes = tensor_shapes(path)
    check_depth_checkpoint({key: torch.empty(shape, device="meta") for key, shape in shapes.items()}, path)
    architecture = architecture_of(path)  # a yaml beside it that is not for a depth model is refused
    counts = Counter(
        next((part for prefix, part in PARTS.items() if key.startswith(prefix)), "other") for key in shapes
    )
    parts = ", ".join(f"{part} {counts[part]}" for part in [*PARTS.values(), "other"] if counts[part])
    findings = [f"an SD2-depth single-file checkpoint: {len(shapes):,} tensors ({parts})"]
    if counts["UNet EMA"]:
        findings.append("it carries EMA weights: those are used")
    if architecture.yaml is not None:
        prediction = architecture.scheduler["prediction_type"]
        layers = architecture.configs.text_encoder["num_hidden_layers"]
        findings.append(f"its config {architecture.yaml.name}: {prediction} prediction, {layers} text layers")
    return findings


def _part_of(key: str) -> str:
    return next((part for prefix, part in PARTS.items() if key.startswith(prefix)), "other")


def _companions(source: Path, target: Path) -> list[tuple[Path, Path]]:
    """The LDM yaml beside a single file, under the target's stem."""
    if source.is_dir():
        return []
    from .ldm_config import yaml_beside

    config = yaml_beside(source)
    if config is None:
        return []
    destination = target.with_suffix(config.suffix)
    if destination.exists():
        raise ModelError(f"{destination} already exists; remove it first, or import under another name")
    return [(config, destination)]


def _place(source: Path, target: Path, link: bool) -> None:
    if link:
        target.symlink_to(source, target_is_directory=source.is_dir())
        return
    partial = target.with_name(f".importing-{target.name}")
    try:
        if source.is_dir():
            shutil.copytree(source, partial, symlinks=False)
        else:
            shutil.copyfile(source, partial)
        partial.replace(target)
    except OSError as error:
        raise ModelError(f"could not copy {source} to {target}: {error.strerror or error}") from None
    finally:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        elif partial.exists():
            partial.unlink()


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise ModelError(f"{name!r} cannot name a model: use a plain file or folder name")
