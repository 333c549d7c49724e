"""ControlNets, for `ControlNetLoader`: finding them, telling which family each is for, loading them,
and their handle (a CONTROL_NET).

Where they are found, in this order: the built-in tiny ones (`tiny_controlnets`), then in
`models/controlnet/` (ComfyUI's folder) every diffusers folder (config.json +
diffusion_pytorch_model.safetensors, as `huggingface-cli download lllyasviel/control_v11f1p_sd15_depth
--local-dir models/controlnet/control_v11f1p_sd15_depth` leaves it; one or two levels deep), then every
single file there in any of the layouts `controlnet_layout` reads.

A loaded ControlNet lives in the model manager like a checkpoint's parts (`ModelManager.load_external`,
under the name `controlnet/NAME`): kept on the device between runs, counted against the memory budget,
offloaded, freed by `/free`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .common import ModelError
from .controlnet_layout import (
    config_beside,
    config_from_weights,
    family_of_config,
    family_of_shapes,
    layout_of,
    to_diffusers,
)
from .families import Family
from .model_folders import files_fingerprint, scan_models

if TYPE_CHECKING:
    from .manager import ModelManager

CONTROLNET_FOLDER = "controlnet"  # inside the models folder
SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")
CONFIG_NAME = "config.json"
SourceKind = Literal["tiny", "folder", "single_file"]


@dataclass(frozen=True)
class ControlNetInfo:
    """What validation knows of a ControlNet: the family it is for, its control image's channels."""

    family: Family
    conditioning_channels: int = 3


@dataclass(frozen=True)
class ControlNetSource:
    """A ControlNet the user can pick by name."""

    name: str
    kind: SourceKind
    path: Path | None = None

    def info(self) -> ControlNetInfo:
        """The family it is for, from its config, its tensor names and shapes, or the built-in table
        (ModelError when it is no ControlNet depthgraph runs)."""
        from .checkpoint_read import tensor_shapes
        from .tiny_controlnets import TINY_CONTROLNETS

        if self.kind == "tiny":
            return ControlNetInfo(TINY_CONTROLNETS[self.name])
        assert self.path is not None
        if self.kind == "folder":
            config = _read_config(self.path)
            return ControlNetInfo(family_of_config(config), int(config.get("conditioning_channels", 3)))
        beside = config_beside(self.path)
        if beside is not None:
            layout_of(tensor_shapes(self.path), self.path)  # still refuse a file that is no ControlNet
            return ControlNetInfo(family_of_config(beside), int(beside.get("conditioning_channels", 3)))
        return ControlNetInfo(*family_of_shapes(tensor_shapes(self.path), self.path))

    def describe(self) -> str:
        from .tiny_controlnets import TINY_DESCRIPTION

        try:
            title = self.info().family.title
        except ModelError as error:
            return f"{self.name}  (cannot be used: {error})"
        if self.kind == "tiny":
            return f"{self.name}  (ControlNet for {title}; {TINY_DESCRIPTION})"
        where = "diffusers folder" if self.kind == "folder" else "single file"
        return f"{self.name}  (ControlNet for {title}; {where} {self.path})"

    def fingerprint(self) -> str:
        """Changes when the ControlNet on disk is replaced, so loader results are not reused."""
        if self.path is None:
            return self.kind
        if self.kind == "folder":
            files = sorted(self.path.iterdir())
        else:  # with the config beside it, which decides the architecture
            files = [self.path, *(self.path.with_suffix(s) for s in (".json", ".yaml", ".yml"))]
        return files_fingerprint(self.kind, self.path, files)


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_NAME
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path} cannot be read: {error}") from None
    if not isinstance(config, dict) or config.get("_class_name") != "ControlNetModel":
        found = config.get("_class_name") if isinstance(config, dict) else type(config).__name__
        raise ModelError(
            f"{path} is not a diffusers ControlNet config (its _class_name is {found!r}, not "
            "'ControlNetModel')"
        )
    return config


def find_controlnets(models_dir: Path) -> list[ControlNetSource]:
    """The tiny ControlNets, then the folders and files in `models_dir/controlnet/`."""
    from .tiny_controlnets import TINY_CONTROLNETS

    sources = [ControlNetSource(name, "tiny") for name in TINY_CONTROLNETS]
    found = scan_models(models_dir / CONTROLNET_FOLDER, SUFFIXES, lambda path: (path / CONFIG_NAME).is_file())
    return sources + [ControlNetSource(name, kind, path) for name, kind, path in found]


def controlnet_names(models_dir: Path) -> list[str]:
    return [source.name for source in find_controlnets(models_dir)]


def controlnet_not_found_message(name: str, models_dir: Path) -> str:
    available = ", ".join(repr(choice) for choice in controlnet_names(models_dir))
    return (
        f"ControlNet {name!r} was not found: searched {(models_dir / CONTROLNET_FOLDER).resolve()} for a "
        f"diffusers folder {name!r} (config.json + diffusion_pytorch_model.safetensors) or a weights file "
        f"{name!r}. Available: {available}"
    )


def find_controlnet(name: str, models_dir: Path) -> ControlNetSource:
    for source in find_controlnets(models_dir):
        if source.name == name:
            return source
    raise ModelError(controlnet_not_found_message(name, models_dir))


def read_controlnet(source: ControlNetSource) -> Any:
    """The `ControlNetModel` of a source, in float32 (the manager casts it to the run's dtype)."""
    from .tiny_controlnets import build_tiny_controlnet

    if source.kind == "tiny":
        return build_tiny_controlnet(source.name)
    assert source.path is not None
    if source.kind == "folder":
        return _from_folder(source.path)
    return _from_single_file(source.path)


def _from_folder(folder: Path) -> Any:
    import torch
    from diffusers import ControlNetModel

    _read_config(folder)
    try:
        return ControlNetModel.from_pretrained(folder, torch_dtype=torch.float32)
    except Exception as error:  # corrupt, truncated or mismatched files
        files = ", ".join(sorted(item.name for item in folder.iterdir())) or "no files"
        raise ModelError(
            f"cannot load the ControlNet in {folder} ({files}): {type(error).__name__}: {error}. A folder "
            "holds config.json and diffusion_pytorch_model.safetensors as the Hugging Face repository has "
            "them; the files may be truncated or corrupt: download them again."
        ) from None


def _from_single_file(path: Path) -> Any:
    import torch
    from diffusers import ControlNetModel

    from .checkpoint_read import read_state_dict

    state = read_state_dict(path)
    weights = to_diffusers(state, layout_of(state, path))
    beside = config_beside(path)
    config = beside or config_from_weights(weights)
    if beside is not None and "conditioning_embedding_out_channels" not in beside:
        # An original yaml does not say (the original code fixes them at 16, 32, 96, 256): the tensors do.
        embedding = config_from_weights(weights)["conditioning_embedding_out_channels"]
        config = {**beside, "conditioning_embedding_out_channels": embedding}
    config = {key: value for key, value in config.items() if not key.startswith("_")}
    try:
        model = ControlNetModel.from_config(config)
        expected = set(model.state_dict())
        missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
        if missing or unexpected:
            raise ValueError(
                f"{len(missing)} weights missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                f"(e.g. {unexpected[:3]})"
            )
        model.load_state_dict(weights)
    except Exception as error:
        raise ModelError(
            f"cannot load the ControlNet {path}: {type(error).__name__}: {error}. Its tensors do not fit "
            "the architecture read from "
            + ("the config beside it" if beside is not None else "its shapes")
            + "; a config.json of the same ControlNet saved beside it as "
            f"{path.with_suffix('.json').name} decides the architecture"
        ) from None
    return model.to(torch.float32).eval()


@dataclass(frozen=True)
class ControlNetHandle:
    """What ControlNetLoader outputs as CONTROL_NET: a ControlNet and the manager that keeps it."""

    manager: ModelManager = field(compare=False, repr=False)
    source: ControlNetSource

    @property
    def key(self) -> str:
        """Its name among the manager's models (apart from checkpoints of the same name)."""
        return f"{CONTROLNET_FOLDER}/{self.source.name}"

    def get(self) -> Any:
        """The loaded `ControlNetModel` (read on first use, then kept)."""
        return self.manager.load_external(self.key, "controlnet", lambda: read_controlnet(self.source))
