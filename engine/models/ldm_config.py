"""The architecture of a single-file checkpoint: from the LDM yaml beside it, or its family's own.

A1111 and ComfyUI users keep a checkpoint's original config beside it under the same name
(`512-depth-ema.ckpt` with `512-depth-ema.yaml`, a copy of Stability's `v2-midas-inference.yaml`;
`v2-1_768-ema-pruned.yaml`, a copy of `v2-inference-v.yaml`). When it is there it decides the family
(its `model.target` and text encoder), the UNet's channels, attention heads and context width, the
VAE's channels and latent scale factor, how many text layers are used (`layer: penultimate` or
`last`), SD2-depth's depth stage, the training noise schedule and the parameterization (`eps` or
`v`). The UNet and VAE configs come from diffusers' own readers of those yaml files; the rest is read
here. A yaml that describes a kind of model depthgraph does not run (an inpainting model, an upscaler,
an SDXL refiner) is refused with what it is. Without a yaml, the family told from the file's tensors
(`engine.models.families`) gives the architecture (`engine.models.family_configs`); a file read without
either is read as SD2-depth (`engine.models.sd2_depth`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .common import DEPTH_UNET_CHANNELS, ModelError
from .families import ModelInfo, UnsupportedModelError
from .family_configs import CLIP_L, default_configs
from .sd2_depth import SCHEDULER, SD2_DEPTH
from .single_file import ModelConfigs

YAML_SUFFIXES = (".yaml", ".yml")
MAX_YAML_BYTES = 1 << 20  # a model config is a few kB; anything this large is not one
DEPTH_TARGET = "LatentDepth2ImageDiffusion"
TEXT_TO_IMAGE_TARGET = "LatentDiffusion"  # SD 1.x and 2.x (ldm)
SDXL_TARGET = "DiffusionEngine"  # SDXL (sgm)
# What other LDM targets are, for the refusal's message.
OTHER_TARGETS = {
    "LatentInpaintDiffusion": "an inpainting model",
    "LatentUpscaleDiffusion": "an upscaler",
    "ImageEmbeddingConditionedLatentDiffusion": "an unCLIP model",
}
KNOWN_CONFIGS = (
    "v1-inference.yaml (SD 1.x), v2-inference.yaml / v2-inference-v.yaml (SD 2.x), sd_xl_base.yaml "
    "(SDXL) or v2-midas-inference.yaml (SD2-depth)"
)
TEXT_ENCODERS = {"FrozenCLIPEmbedder": "sd1", "FrozenOpenCLIPEmbedder": "sd2"}
SDXL_CONTEXT = 2048  # the base model's; the refiner's UNet reads 1280-wide context
SUPPORTED_DEPTH_STAGE = "dpt_hybrid"  # what 512-depth-ema ships and the MiDaS converter reads
OPEN_CLIP_TEXT_LAYERS = {"ViT-H-14": 24}  # layers of the text tower SD2 uses
PARAMETERIZATIONS = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}
# LDM's beta schedules as diffusers names them ("linear" there is linear in sqrt(beta)).
BETA_SCHEDULES = {"linear": "scaled_linear", "cosine": "squaredcos_cap_v2"}


@dataclass(frozen=True)
class Architecture:
    """How a single file is read: the components' configs and the scheduler's training schedule."""

    configs: ModelConfigs
    scheduler: Mapping[str, Any]
    yaml: Path | None = None  # the config read; None: the family's defaults
    family: str = "sd2-depth"


SD2_DEPTH_ARCHITECTURE = Architecture(SD2_DEPTH, SCHEDULER)


def yaml_beside(checkpoint: Path) -> Path | None:
    """`NAME.yaml` (or `.yml`) next to `NAME.ckpt` / `NAME.safetensors`, as A1111 keeps it."""
    for suffix in YAML_SUFFIXES:
        candidate = checkpoint.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def architecture_of(checkpoint: Path, detected: ModelInfo | None = None) -> Architecture:
    """The architecture of `checkpoint`: from the yaml beside it, else that of the family `detected`
    from its tensors, else SD2-depth's. A yaml for another family than its tensors is refused."""
    path = yaml_beside(checkpoint)
    if path is None:
        if detected is None:
            return SD2_DEPTH_ARCHITECTURE
        return default_architecture(detected)
    architecture = architecture_from_yaml(read_yaml(path), path)
    if detected is not None and detected.family.key != architecture.family:
        raise ModelError(
            f"{path} describes a {architecture.family} model, but {checkpoint.name} holds "
            f"{detected.family.title} weights; remove the yaml or replace it with the model's own config"
        )
    return architecture


def default_architecture(info: ModelInfo) -> Architecture:
    """A family's architecture and schedule without a yaml (SD2-depth's is `SD2_DEPTH_ARCHITECTURE`)."""
    if info.family.key == "sd2-depth" and info.prediction_type == "epsilon":
        return SD2_DEPTH_ARCHITECTURE
    configs, schedule = default_configs(info.family.key, info.prediction_type)
    return Architecture(configs, schedule, None, info.family.key)


def read_yaml(path: Path) -> Mapping[str, Any]:
    import yaml

    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise ModelError(f"{path} is over {MAX_YAML_BYTES} bytes: not a model config; remove it")
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ModelError(
            f"the model config {path} cannot be read ({_reason(error)}); fix it, or remove it to read "
            "the checkpoint as SD2-depth"
        ) from None
    if not isinstance(document, Mapping):
        raise ModelError(f"{path} is not a model config (no `model:` section); remove it or replace it")
    return document


def _reason(error: Exception) -> str:
    """One line: a YAML error's problem and where it is, or the error itself."""
    problem, mark = getattr(error, "problem", None), getattr(error, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return f"{type(error).__name__}: {error}".splitlines()[0]


def architecture_from_yaml(document: Mapping[str, Any], path: Path) -> Architecture:
    """The architecture an LDM config describes, or a ModelError saying why it cannot be read."""
    from diffusers.loaders.single_file_utils import (
        create_unet_diffusers_config_from_ldm,
        create_vae_diffusers_config_from_ldm,
    )

    params = _section(document, ("model", "params"), path)
    family = _family(document, params, path)
    if family == "sd2-depth":
        _check_depth_model(params, path)
    elif family != "sdxl":
        _check_plain_unet(params, path)
    prediction = _sdxl_prediction(params) if family == "sdxl" else _parameterization(params, path)
    base, schedule = default_configs(family, prediction)
    try:
        unet = create_unet_diffusers_config_from_ldm(document, {})
        vae = create_vae_diffusers_config_from_ldm(document, {})
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
        raise ModelError(
            f"{path}: its unet_config or first_stage_config is incomplete ({type(error).__name__}: "
            f"{error}); compare it with Stability's {KNOWN_CONFIGS}"
        ) from None
    configs = replace(
        base,
        unet={**base.unet, **_without_defaults(unet)},
        # sample_size is diffusers' default tile size; the file does not say it.
        vae={**base.vae, **_without_defaults(vae), "sample_size": base.vae["sample_size"]},
    )
    if family in ("sd2", "sd2-depth"):
        text = {**base.text_encoder, "num_hidden_layers": _text_layers(params, path)}
        configs = replace(configs, text_encoder=text)
    elif family == "sd1":
        configs = replace(configs, text_encoder={**CLIP_L, "num_hidden_layers": _clip_layers(params, path)})
    if family != "sdxl":
        schedule = _schedule(params, path, schedule)
    return Architecture(configs, schedule, path, family)


def _section(document: Mapping[str, Any], keys: tuple[str, ...], path: Path) -> Mapping[str, Any]:
    value: Any = document
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    if not isinstance(value, Mapping):
        raise ModelError(f"{path} has no `{'.'.join(keys)}` section: it is not an LDM model config")
    return value


def _target_name(section: Any) -> str:
    target = section.get("target") if isinstance(section, Mapping) else None
    return str(target).rsplit(".", 1)[-1] if target else ""


def _family(document: Mapping[str, Any], params: Mapping[str, Any], path: Path) -> str:
    """Which family the config describes (by its `model.target` and text encoder), or the refusal."""
    target = _target_name(document.get("model"))
    if target == DEPTH_TARGET:
        return "sd2-depth"
    if target == TEXT_TO_IMAGE_TARGET:
        encoder = _target_name(params.get("cond_stage_config"))
        if encoder not in TEXT_ENCODERS:
            raise UnsupportedModelError(
                f"{path}: its text encoder is {encoder or 'not named'}; SD 1.x uses FrozenCLIPEmbedder and "
                "SD 2.x FrozenOpenCLIPEmbedder"
            )
        return TEXT_ENCODERS[encoder]
    if target == SDXL_TARGET:
        network = _section(params, ("network_config", "params"), path)
        if network.get("context_dim") != SDXL_CONTEXT:
            raise UnsupportedModelError(
                f"{path} describes an SDXL refiner (context_dim {network.get('context_dim')}); depthgraph "
                f"runs the SDXL base model (context_dim {SDXL_CONTEXT}, sd_xl_base.yaml)"
            )
        return "sdxl"
    what = OTHER_TARGETS.get(target, f"a {target or 'model without a target'}")
    raise UnsupportedModelError(
        f"{path} describes {what} ({target or 'no model.target'}), which depthgraph does not run; it reads "
        f"{KNOWN_CONFIGS}. Remove or replace the yaml if the checkpoint is one of those."
    )


def _check_plain_unet(params: Mapping[str, Any], path: Path) -> None:
    unet = _section(params, ("unet_config", "params"), path)
    channels = unet.get("in_channels")
    if channels != 4:
        raise UnsupportedModelError(
            f"{path}: its UNet takes {channels} input channels; a text-to-image model takes 4 (for the "
            "5-channel depth model, its config is v2-midas-inference.yaml)"
        )


def _check_depth_model(params: Mapping[str, Any], path: Path) -> None:
    unet = _section(params, ("unet_config", "params"), path)
    channels = unet.get("in_channels")
    if channels != DEPTH_UNET_CHANNELS:
        raise ModelError(
            f"{path}: its UNet takes {channels} input channels, the depth model takes "
            f"{DEPTH_UNET_CHANNELS} (4 latent + 1 depth); this config is not for a depth model"
        )
    depth_stage = _section(params, ("depth_stage_config",), path)
    kind = (depth_stage.get("params") or {}).get("model_type", SUPPORTED_DEPTH_STAGE)
    if kind != SUPPORTED_DEPTH_STAGE:
        raise ModelError(
            f"{path}: its depth stage is MiDaS {kind!r}; only {SUPPORTED_DEPTH_STAGE!r} (the one "
            "512-depth-ema ships) can be read"
        )


def _text_layers(params: Mapping[str, Any], path: Path) -> int:
    stage = params.get("cond_stage_config") or {}
    options = stage.get("params") or {} if isinstance(stage, Mapping) else {}
    if _target_name(stage) not in ("", "FrozenOpenCLIPEmbedder"):
        raise ModelError(
            f"{path}: its text encoder is {_target_name(stage)}; SD2-depth's is FrozenOpenCLIPEmbedder"
        )
    arch = options.get("arch", "ViT-H-14")
    if arch not in OPEN_CLIP_TEXT_LAYERS:
        raise ModelError(f"{path}: text encoder arch {arch!r} is not known; SD2-depth uses 'ViT-H-14'")
    layer = options.get("layer", "last")
    if layer not in ("last", "penultimate"):
        raise ModelError(f"{path}: text encoder layer {layer!r}; expected 'penultimate' or 'last'")
    return OPEN_CLIP_TEXT_LAYERS[arch] - (1 if layer == "penultimate" else 0)


def _clip_layers(params: Mapping[str, Any], path: Path) -> int:
    options = (params.get("cond_stage_config") or {}).get("params") or {}
    layer = options.get("layer", "last") if isinstance(options, Mapping) else "last"
    if layer != "last":
        raise ModelError(f"{path}: text encoder layer {layer!r}; SD 1.x configs are read with layer 'last'")
    return int(CLIP_L["num_hidden_layers"])


def _parameterization(params: Mapping[str, Any], path: Path) -> str:
    parameterization = params.get("parameterization", "eps")
    if parameterization not in PARAMETERIZATIONS:
        raise ModelError(f"{path}: parameterization {parameterization!r}; expected one of eps, v")
    return PARAMETERIZATIONS[parameterization]


def _sdxl_prediction(params: Mapping[str, Any]) -> str:
    """sgm names v-prediction by its denoiser's scaling (`VScaling`; `EpsScaling` for epsilon)."""
    denoiser = params.get("denoiser_config") or {}
    scaling = (denoiser.get("params") or {}).get("scaling_config") if isinstance(denoiser, Mapping) else None
    return "v_prediction" if _target_name(scaling).startswith("VScaling") else "epsilon"


def _schedule(params: Mapping[str, Any], path: Path, base: Mapping[str, Any]) -> dict[str, Any]:
    schedule = dict(base)
    parameterization = params.get("parameterization", "eps")
    if parameterization not in PARAMETERIZATIONS:
        raise ModelError(f"{path}: parameterization {parameterization!r}; expected one of eps, v")
    beta_schedule = params.get("beta_schedule", "linear")
    if beta_schedule not in BETA_SCHEDULES:
        raise ModelError(f"{path}: beta_schedule {beta_schedule!r}; expected linear or cosine")
    try:
        schedule.update(
            prediction_type=PARAMETERIZATIONS[parameterization],
            beta_schedule=BETA_SCHEDULES[beta_schedule],
            beta_start=float(params.get("linear_start", SCHEDULER["beta_start"])),
            beta_end=float(params.get("linear_end", SCHEDULER["beta_end"])),
            num_train_timesteps=int(params.get("timesteps", SCHEDULER["num_train_timesteps"])),
        )
    except (TypeError, ValueError) as error:
        raise ModelError(f"{path}: its noise schedule cannot be read ({error})") from None
    return schedule


def _without_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """diffusers' derived config, less the keys it leaves at None (SD2-depth's values stand)."""
    return {key: value for key, value in config.items() if value is not None}
