"""The model manager: the only code that loads weights.

It finds Stable Diffusion 2 depth models in the models folder (diffusers layout: a folder with
`model_index.json`, as `stabilityai/stable-diffusion-2-depth` downloads), offers the embedded
`tiny-random` model everywhere, and loads each component only when a node first asks for it (a graph
that only estimates depth never loads the UNet). Loaded components stay resident on the device
between runs, on the device or, under a memory budget, in host memory (`residency`). Device and
dtype policy: CUDA float16 (bfloat16 if asked), MPS float16, CPU float32; the depth estimator runs
in float32 except on CUDA, where it has the weights' dtype and runs under autocast (its norms in
float32), as diffusers does. The UNet and the VAE are prepared for speed as the acceleration
settings say (`acceleration`); a VAE that produces NaN in half precision is kept in float32 from
then on (`upcast_vae`).

torch, diffusers and transformers are imported only when something is loaded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .acceleration import Acceleration, Plan, prepare_unet, prepare_vae
from .common import DEPTH_UNET_CHANNELS, SINGLE_FILE_SUFFIXES, ModelError
from .residency import DeviceCache, Residency
from .tiny import TINY_MODEL, build_tiny
from .unet_runner import UNetRunner

ModelKind = Literal["tiny", "diffusers", "single_file"]
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "depth_estimator", "feature_extractor")
WEIGHTED = frozenset({"unet", "vae", "text_encoder", "depth_estimator"})
DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclass(frozen=True)
class ModelSource:
    """A model the user can pick by name."""

    name: str
    kind: ModelKind
    path: Path | None = None

    def describe(self) -> str:
        if self.kind == "tiny":
            return f"{self.name}  (built-in test model with random weights: its images are noise)"
        if self.kind == "single_file":
            from .ldm_config import yaml_beside

            assert self.path is not None
            config = yaml_beside(self.path)
            beside = f", read with {config.name}" if config is not None else ""
            return f"{self.name}  (single-file checkpoint {self.path}{beside})"
        return f"{self.name}  (diffusers folder {self.path})"

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


def find_models(models_dir: Path) -> list[ModelSource]:
    """`tiny-random`, then every diffusers-layout folder in `models_dir` (one or two levels deep,
    so both `models/sd2-depth` and `models/stabilityai/stable-diffusion-2-depth` are found), then
    every single-file checkpoint (`512-depth-ema.ckpt` / `.safetensors`) in it."""
    sources = [ModelSource(TINY_MODEL, "tiny")]
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


def resolve_dtype(device: str, preference: str = "auto") -> Any:
    """The torch dtype for weights on `device`: CUDA/MPS float16, CPU float32, unless told."""
    import torch

    if preference not in DTYPES:
        raise ModelError(f"unknown dtype {preference!r}; choose one of {', '.join(DTYPES)}")
    if preference != "auto":
        return getattr(torch, preference)
    return torch.float16 if device in ("cuda", "mps") else torch.float32


@dataclass
class ModelManager:
    """Finds models and loads their components lazily onto one device; keeps them resident."""

    models_dir: Path = Path("models")
    device: str = "cpu"
    dtype_preference: str = "auto"
    _loaded: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # The architecture single-file checkpoints are read into (SD2-depth's unless a test says otherwise).
    single_file_configs: Any = None
    acceleration: Acceleration = field(default_factory=Acceleration)
    _runners: dict[str, UNetRunner] = field(default_factory=dict, repr=False)
    _upcast: set[str] = field(default_factory=set, repr=False)  # models whose VAE runs in float32
    reads: int = 0  # components read from disk or built (a warm engine reads none for a new prompt)

    def __post_init__(self) -> None:
        self.plan: Plan = self.acceleration.resolve(self.device)
        self.residency = Residency(self.device, self.plan.vram_budget, self.plan.offload)

    def attach_cache(self, cache: DeviceCache) -> None:
        """Count the result cache's bytes on the device against the same budget as the weights."""
        self.residency.cache = cache

    @property
    def dtype(self) -> Any:
        return resolve_dtype(self.device, self.dtype_preference)

    def sources(self) -> list[ModelSource]:
        return find_models(self.models_dir)

    def find(self, name: str) -> ModelSource:
        for source in self.sources():
            if source.name == name:
                return source
        raise ModelError(model_not_found_message(name, self.models_dir))

    def load(self, name: str, component: str) -> Any:
        """One component of a model, loaded on first use, kept in memory and on the device when used."""
        if component not in COMPONENTS:
            raise ModelError(f"unknown model component {component!r}; one of {', '.join(COMPONENTS)}")
        key = (name, component)
        with self._lock:
            if key not in self._loaded:
                source = self.find(name)
                if source.kind == "single_file" and component in WEIGHTED:
                    # One read of the file converts all four weighted parts; all stay in memory.
                    self.reads += 1
                    for part, module in self._read_single_file(source).items():
                        self._loaded[(name, part)] = self._prepare(part, module)
                else:
                    self.reads += 1
                    self._loaded[key] = self._prepare(component, self._read(source, component))
            value = self._loaded[key]
            if component in WEIGHTED:
                self.residency.bring(key, value)
            return value

    def runner(self, name: str) -> UNetRunner:
        """The UNet of model `name` as the sampling loop calls it (through CUDA graphs if planned);
        one per model, so recorded graphs outlive a run."""
        unet = self.load(name, "unet")
        runner = self._runners.get(name)
        if runner is None or runner.unet is not unet:
            runner = self._runners[name] = UNetRunner(unet, self.plan.cuda_graphs)
        return runner

    def vae_upcast(self, name: str) -> bool:
        return name in self._upcast

    def upcast_vae(self, name: str) -> Any:
        """Keep model `name`'s VAE in float32 from now on (after it produced NaN in half precision)."""
        import torch

        vae = self.load(name, "vae")
        with self._lock:
            self.residency.forget((name, "vae"))
            vae.to(dtype=torch.float32)
            self._upcast.add(name)
        return self.load(name, "vae")  # counted again on the device, at its new size

    def loaded(self) -> list[tuple[str, str]]:
        """(model, component) pairs now resident."""
        return sorted(self._loaded)

    def unload(self, name: str | None = None) -> None:
        """Drop resident components (of one model, or all), freeing their memory."""
        with self._lock:
            for key in [key for key in self._loaded if name is None or key[0] == name]:
                del self._loaded[key]
                self.residency.forget(key)
                self._runners.pop(key[0], None)
                self._upcast.discard(key[0])
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()

    def _architecture(self, source: ModelSource) -> Any:
        """How a single file is read: the yaml beside it, else SD2-depth (`ldm_config`)."""
        from .ldm_config import Architecture, architecture_of

        assert source.path is not None
        architecture = architecture_of(source.path)
        if self.single_file_configs is not None:  # a test's own architecture
            return Architecture(self.single_file_configs, architecture.scheduler, architecture.yaml)
        return architecture

    def _read_single_file(self, source: ModelSource) -> dict[str, Any]:
        from .single_file import load_single_file

        assert source.path is not None
        return load_single_file(source.path, self._architecture(source).configs)

    def _read(self, source: ModelSource, component: str) -> Any:
        if source.kind == "tiny":
            return build_tiny(component)
        assert source.path is not None
        if source.kind == "single_file":
            from diffusers import PNDMScheduler

            from .sd2_depth import find_tokenizer

            if component == "tokenizer":
                return find_tokenizer(source.path.parent)
            if component == "scheduler":
                return PNDMScheduler.from_config(dict(self._architecture(source).scheduler))
            return build_tiny(component)  # the image processor: SD2-depth's DPT one, same as tiny's
        return load_diffusers_component(source.path, component, self.dtype)

    def _prepare(self, component: str, value: Any) -> Any:
        """A freshly read component in its dtype, ready for inference (placed by `load`)."""
        if component not in WEIGHTED:
            return value
        import torch

        dtype = self.dtype
        if component == "depth_estimator" and self.device != "cuda":
            dtype = torch.float32  # autocast keeps its norms safe on CUDA only
        if value.dtype != dtype:  # (asking for the dtype it already has makes diffusers warn)
            value = value.to(dtype=dtype)
        value.eval()
        value.requires_grad_(False)
        if component == "unet":
            value = prepare_unet(value, self.plan)
        elif component == "vae":
            value = prepare_vae(value, self.plan)
        return value


def check_depth_model(path: Path) -> None:
    """Refuse a folder whose UNet is not the 5-channel depth UNet, before loading any weights."""
    config_path = path / "unet" / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise ModelError(
            f"{path} has no unet/config.json; is it a complete diffusers model folder?"
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"{config_path} cannot be read: {error}") from None
    channels = config.get("in_channels")
    if channels != DEPTH_UNET_CHANNELS:
        raise ModelError(
            f"{path} is not a depth model: its UNet takes {channels} channels, the depth model takes "
            f"{DEPTH_UNET_CHANNELS} (4 latent + 1 depth). Use stable-diffusion-2-depth."
        )


def load_diffusers_component(path: Path, component: str, dtype: Any) -> Any:
    """Load one component from a diffusers-layout folder, with a clear error for a bad file."""
    if component == "unet":
        check_depth_model(path)
    folder = path / component
    if not folder.is_dir():
        raise ModelError(f"{path} has no {component}/ folder; the depth model needs one")
    try:
        return _from_pretrained(path, component, dtype)
    except ModelError:
        raise
    except Exception as error:  # corrupt, truncated or mismatched files
        files = ", ".join(sorted(item.name for item in folder.iterdir())) or "no files"
        raise ModelError(
            f"cannot load {component} from {folder} ({files}): {type(error).__name__}: {error}. "
            "The files may be truncated or corrupt, or belong to another architecture; "
            "download them again (`depthgraph models fetch`)."
        ) from error


def _from_pretrained(path: Path, component: str, dtype: Any) -> Any:
    import torch

    if component == "unet":
        from diffusers import UNet2DConditionModel

        return UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype)
    if component == "vae":
        from diffusers import AutoencoderKL

        return AutoencoderKL.from_pretrained(path, subfolder="vae", torch_dtype=dtype)
    if component == "text_encoder":
        from transformers import CLIPTextModel

        return CLIPTextModel.from_pretrained(path, subfolder="text_encoder", torch_dtype=dtype)
    if component == "tokenizer":
        from transformers import CLIPTokenizer

        return CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")
    if component == "scheduler":
        from diffusers import PNDMScheduler

        return PNDMScheduler.from_pretrained(path, subfolder="scheduler")
    if component == "depth_estimator":
        from transformers import DPTForDepthEstimation

        return DPTForDepthEstimation.from_pretrained(
            path, subfolder="depth_estimator", torch_dtype=torch.float32
        )
    from .sd2_depth import depth_image_processor

    settings = json.loads((path / "feature_extractor" / "preprocessor_config.json").read_text())
    known = {"do_resize", "size", "keep_aspect_ratio", "ensure_multiple_of", "resample", "do_rescale"}
    known |= {"rescale_factor", "do_normalize", "image_mean", "image_std"}
    return depth_image_processor(**{key: value for key, value in settings.items() if key in known})


@dataclass(frozen=True)
class ModelHandle:
    """What a loader node outputs (as MODEL, CLIP, VAE and DEPTH_MODEL): a model's name and the
    manager that loads its components when a node first needs them."""

    manager: ModelManager = field(compare=False, repr=False)
    name: str

    def get(self, component: str) -> Any:
        return self.manager.load(self.name, component)

    def unet_runner(self) -> UNetRunner:
        return self.manager.runner(self.name)

    @property
    def device(self) -> str:
        return self.manager.device

    @property
    def dtype(self) -> Any:
        return self.manager.dtype

    def components(self, *names: str) -> Iterator[Any]:
        return (self.get(name) for name in names)
