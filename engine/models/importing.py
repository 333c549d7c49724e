"""Bringing a model the user already has into the models folder: `depthgraph models import PATH`.

What it is decides where it goes. A Stable Diffusion model of any family depthgraph runs (a diffusers
folder with `model_index.json`, as a hub download or `models convert` writes it, or a single-file
checkpoint `.ckpt` / `.safetensors` with its `NAME.yaml` if one is beside it, as A1111 keeps them)
goes into the models folder; a ControlNet (a diffusers ControlNet folder, or a file in any layout
`controlnet_layout` reads, with its `NAME.json` / `NAME.yaml`) into `controlnet/`; a depth estimator
(a Hugging Face folder or an original MiDaS / Depth Anything file) into `depth/`. Each is checked
first, then copied (or linked). A copy is written under a hidden temporary name and renamed when
complete, so an interrupted import never leaves a half model that the loader would list. The report
says what was found and which input picks it.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .common import SINGLE_FILE_SUFFIXES, ModelError
from .families import ModelInfo

# What each part of a single file is called in the report, by its LDM prefix.
PARTS = {
    "model.diffusion_model.": "UNet",
    "model_ema.": "UNet EMA",
    "first_stage_model.": "VAE",
    "cond_stage_model.": "text encoder",
    "depth_model.": "MiDaS depth",
}
FOLDER_PARTS = (  # an SD2-depth folder's (other families have theirs: `ModelInfo.components`)
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
    picked_by: str = "ckpt_name"  # the loader input that picks it


def import_model(source: Path, models_dir: Path, name: str | None = None, link: bool = False) -> ImportReport:
    """Check `source` and copy (or symlink) it where its loader finds it, as `name` (its own name by
    default)."""
    source = source.expanduser()
    if not source.exists():
        raise ModelError(f"{source} does not exist; give a model folder or a .ckpt/.safetensors file")
    if source.is_dir():
        folder, findings, picked_by = inspect_any_folder(source)
        target_name = name or source.name
    elif source.suffix in (*SINGLE_FILE_SUFFIXES, ".pth", ".pt"):
        folder, findings, picked_by = inspect_any_file(source)
        target_name = name or source.name
        if Path(target_name).suffix != source.suffix:
            target_name += source.suffix  # the loaders list files by their suffix
    else:
        raise ModelError(
            f"{source} is neither a model folder nor a checkpoint file "
            f"({', '.join((*SINGLE_FILE_SUFFIXES, '.pth', '.pt'))})"
        )
    _check_name(target_name)
    place = models_dir / folder if folder else models_dir
    place.mkdir(parents=True, exist_ok=True)
    target = place / target_name
    if target.exists() or target.is_symlink():
        raise ModelError(
            f"{target} already exists; remove it first, or import under another name with --name"
        )
    companions = _companions(source, target, picked_by)
    for path, destination in [(source, target), *companions]:
        _place(path.resolve(), destination, link)
    findings += [f"its config is kept beside it as {destination.name}" for _, destination in companions]
    return ImportReport(target.name, target, link, findings, picked_by)


def inspect_any_folder(folder: Path) -> tuple[str, list[str], str]:
    """Where a folder goes (a subfolder of the models folder, or ""), what it holds and what picks it."""
    from .controlnets import CONTROLNET_FOLDER, ControlNetSource
    from .depth_estimators import DEPTH_FOLDER, EstimatorSource

    if (folder / "model_index.json").is_file():
        return "", inspect_folder(folder), "ckpt_name"
    config = folder / "config.json"
    if not config.is_file():
        raise ModelError(
            f"{folder} has neither model_index.json (a diffusers model) nor config.json (a ControlNet or "
            "a depth estimator): it is no model folder (for a single file, give the file itself)"
        )
    if _class_name(config) == "ControlNetModel":
        info = ControlNetSource(folder.name, "folder", folder).info()
        return CONTROLNET_FOLDER, [f"a diffusers ControlNet for {info.family.title}"], "control_net_name"
    family = EstimatorSource(folder.name, "folder", folder).family()
    return DEPTH_FOLDER, [f"a Hugging Face {family.title} depth estimator"], "depth_model_name"


def _class_name(config: Path) -> object:
    try:
        document = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{config} cannot be read: {error}") from None
    return document.get("_class_name") if isinstance(document, dict) else None


def inspect_folder(folder: Path) -> list[str]:
    """Why `folder` is no model depthgraph runs (ModelError), or what it holds."""
    from .families import folder_info

    if not (folder / "model_index.json").is_file():
        raise ModelError(
            f"{folder} has no model_index.json: it is not a diffusers model folder (for a single file, "
            "give the .ckpt or .safetensors file itself)"
        )
    info = folder_info(folder)
    needed = info.components()
    missing = [part for part in needed if not (folder / part).is_dir()]
    if missing:
        raise ModelError(f"{folder} has no {', '.join(missing)} folder(s); the model needs every part")
    return [f"a diffusers model folder: {info.summary()} ({', '.join(needed)})"]


def inspect_any_file(path: Path) -> tuple[str, list[str], str]:
    """Where a single file goes, what it holds and what picks it: a checkpoint, else a ControlNet,
    else a depth estimator; a file that is none of them is refused saying what each check found."""
    from .checkpoint_read import tensor_shapes
    from .controlnet_layout import layout_of
    from .controlnets import CONTROLNET_FOLDER, ControlNetSource
    from .depth_estimators import DEPTH_FOLDER
    from .depth_single_file import family_of_file

    shapes = tensor_shapes(path)
    if any(key.startswith("model.diffusion_model.") for key in shapes) and not any(
        key.startswith("control_model.") for key in shapes
    ):
        return "", inspect_checkpoint(path), "ckpt_name"
    try:
        layout_of(shapes, path)
    except ModelError as not_controlnet:
        try:
            family = family_of_file(path)
        except ModelError:
            raise ModelError(
                f"{path} is no Stable Diffusion checkpoint (it has no model.diffusion_model. tensors), "
                f"no ControlNet and no depth estimator depthgraph reads: {not_controlnet}"
            ) from None
        found = f"a {family.title} depth estimator ({len(shapes):,} tensors)"
        return DEPTH_FOLDER, [found], "depth_model_name"
    info = ControlNetSource(path.name, "single_file", path).info()
    found = f"a ControlNet for {info.family.title} ({len(shapes):,} tensors)"
    return CONTROLNET_FOLDER, [found], "control_net_name"


def inspect_checkpoint(path: Path) -> list[str]:
    """Why the file is no checkpoint depthgraph runs (ModelError), or what it holds (by its tensors'
    names and shapes only: nothing is converted)."""
    import torch

    from .checkpoint_read import tensor_shapes
    from .ldm_config import architecture_of
    from .single_file import check_depth_checkpoint
    from .sources import single_file_info

    shapes = tensor_shapes(path)
    info: ModelInfo = single_file_info(path)  # a refiner, an inpainting UNet, another kind's yaml: refused
    if info.family.takes_depth:
        meta = {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}
        check_depth_checkpoint(meta, path)
    architecture = architecture_of(path, info)
    counts = Counter(_part_of(key) for key in shapes)
    parts = ", ".join(f"{part} {counts[part]}" for part in [*PARTS.values(), "other"] if counts[part])
    kind = "an SD2-depth" if info.family.takes_depth else f"a {info.family.title}"
    findings = [f"{kind} single-file checkpoint: {len(shapes):,} tensors ({parts})", info.summary()]
    if counts["UNet EMA"]:
        findings.append("it carries EMA weights: those are used")
    if architecture.yaml is not None:
        prediction = architecture.scheduler["prediction_type"]
        layers = architecture.configs.text_encoder["num_hidden_layers"]
        findings.append(f"its config {architecture.yaml.name}: {prediction} prediction, {layers} text layers")
    return findings


def _part_of(key: str) -> str:
    return next((part for prefix, part in PARTS.items() if key.startswith(prefix)), "other")


def _companions(source: Path, target: Path, picked_by: str) -> list[tuple[Path, Path]]:
    """The config beside a single file (a checkpoint's LDM yaml; a ControlNet's NAME.json or
    NAME.yaml), under the target's stem."""
    if source.is_dir():
        return []
    from .ldm_config import yaml_beside

    if picked_by == "control_net_name":
        found = [source.with_suffix(suffix) for suffix in (".json", ".yaml", ".yml")]
        config = next((path for path in found if path.is_file()), None)
    elif picked_by == "ckpt_name":
        config = yaml_beside(source)
    else:
        config = None
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
