"""The model manager: the only code that loads weights.

It finds Stable Diffusion models in the models folder (diffusers layout: a folder with
`model_index.json`, as `stabilityai/stable-diffusion-2-depth` downloads; or a single-file checkpoint),
of every family in `families` (SD 1.x, SD 2.x, SDXL, SD2-depth), tells each one's family before any
weights load (`ModelSource.info`, what validation checks graphs with), offers the embedded tiny models
everywhere (`tiny-random` for SD2-depth, `tiny-sd15`, `tiny-sd21`, `tiny-sd21-v`, `tiny-sdxl`), and
loads each component only when a node first asks for it (a graph that only estimates depth never
loads the UNet). Loaded components stay resident on the device
between runs, on the device or, under a memory budget, in host memory (`residency`). Device and
dtype policy: CUDA float16 (bfloat16 if asked), MPS float16, CPU float32; the depth estimator runs
in float32 except on CUDA, where it has the weights' dtype and runs under autocast (its norms in
float32), as diffusers does. The UNet and the VAE are prepared for speed as the acceleration
settings say (`acceleration`); a VAE that produces NaN in half precision is kept in float32 from
then on (`upcast_vae`).

torch, diffusers and transformers are imported only when something is loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .acceleration import Acceleration, Plan, prepare_unet, prepare_vae
from .common import ModelError
from .diffusers_folder import check_depth_model, load_diffusers_component
from .families import ModelInfo, UnsupportedModelError
from .residency import DeviceCache, Residency
from .sources import (
    FAMILY_NEUTRAL,
    TINY_MODELS,
    ModelKind,
    ModelSource,
    check_component,
    find_models,
    model_names,
    model_not_found_message,
    no_depth_estimator_message,
)
from .tiny import TINY_MODEL, build_tiny
from .tiny_families import build_tiny_family
from .unet_runner import UNetRunner

__all__ = [  # where nodes, importing and older code find them
    "TINY_MODELS",
    "ModelKind",
    "ModelSource",
    "check_depth_model",
    "find_models",
    "load_diffusers_component",
    "model_names",
    "model_not_found_message",
    "no_depth_estimator_message",
]
COMPONENTS = (
    "unet",
    "vae",
    "text_encoder",
    "text_encoder_2",
    "tokenizer",
    "tokenizer_2",
    "scheduler",
    "depth_estimator",
    "feature_extractor",
)
WEIGHTED = frozenset({"unet", "vae", "text_encoder", "text_encoder_2", "depth_estimator", "controlnet"})
DTYPES = ("auto", "float32", "float16", "bfloat16")


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
    # The architecture single-file checkpoints are read into, as the file's family has it unless a test
    # says otherwise: one `ModelConfigs` for every file, or one per family key.
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

    def info(self, name: str) -> ModelInfo:
        """What model `name` is (family, prediction type, bundled estimator), before loading it."""
        return self.find(name).info()

    def load(self, name: str, component: str) -> Any:
        """One component of a model, loaded on first use, kept in memory and on the device when used."""
        if component not in COMPONENTS:
            raise ModelError(f"unknown model component {component!r}; one of {', '.join(COMPONENTS)}")
        key = (name, component)
        with self._lock:
            if key not in self._loaded:
                source = self.find(name)
                if component not in FAMILY_NEUTRAL:
                    check_component(source, component)
                if source.kind == "single_file" and component in WEIGHTED:
                    # One read of the file converts all its weighted parts; all stay in memory.
                    self.reads += 1
                    for part, module in self._read_single_file(source).items():
                        self._loaded[(name, part)] = self._prepare(name, part, module)
                    if key not in self._loaded:
                        check_component(source, component)  # a part the file turned out not to hold
                else:
                    self.reads += 1
                    self._loaded[key] = self._prepare(name, component, self._read(source, component))
            value = self._loaded[key]
            if component in WEIGHTED:
                self.residency.bring(key, value)
            return value

    def load_external(self, name: str, component: str, read: Callable[[], Any]) -> Any:
        """Like `load`, for a model this manager does not find itself (a depth estimator of
        `depth_estimators`): `read()` builds the component on first use; it is then kept, placed,
        counted and unloaded as the manager's own are."""
        key = (name, component)
        with self._lock:
            if key not in self._loaded:
                self.reads += 1
                self._loaded[key] = self._prepare(name, component, read())
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
        """How a single file is read: the yaml beside it, else its family's (`ldm_config`)."""
        from .ldm_config import Architecture, architecture_of

        assert source.path is not None
        try:
            info: ModelInfo | None = source.info()
        except UnsupportedModelError:
            raise
        except ModelError:
            info = None  # tensors unreadable: the yaml or SD2-depth's, and reading weights says why
        architecture = architecture_of(source.path, info)
        configs = self.single_file_configs
        if isinstance(configs, Mapping):  # a test's own architecture for each family
            configs = configs.get(architecture.family)
        if configs is not None:
            return Architecture(configs, architecture.scheduler, architecture.yaml, architecture.family)
        return architecture

    def _read_single_file(self, source: ModelSource) -> dict[str, Any]:
        from .single_file import load_single_file

        assert source.path is not None
        architecture = self._architecture(source)
        return load_single_file(source.path, architecture.configs, architecture.family)

    def _read(self, source: ModelSource, component: str) -> Any:
        if source.kind == "tiny":
            if source.name == TINY_MODEL:
                return build_tiny(component)
            return build_tiny_family(source.name, component)
        assert source.path is not None
        if source.kind == "single_file":
            from .diffusers_folder import scheduler_class
            from .sd2_depth import depth_image_processor, find_tokenizer

            if component in ("tokenizer", "tokenizer_2"):
                family = self._architecture(source).family
                # OpenAI's CLIP ViT-L pads with its end token; OpenCLIP with 0.
                pads_with_end = family == "sd1" or (family == "sdxl" and component == "tokenizer")
                return find_tokenizer(source.path.parent, pads_with_end)
            if component == "scheduler":
                schedule = dict(self._architecture(source).scheduler)
                return scheduler_class(schedule).from_config(schedule)
            return depth_image_processor()  # the feature extractor: SD2-depth's DPT one, same as tiny's
        return load_diffusers_component(source.path, component, self.dtype)

    def _prepare(self, name: str, component: str, value: Any) -> Any:
        """A freshly read component in its dtype, ready for inference (placed by `load`)."""
        if component not in WEIGHTED:
            return value
        import torch

        dtype = self.dtype
        if component == "depth_estimator" and self.device != "cuda":
            dtype = torch.float32  # autocast keeps its norms safe on CUDA only
        if component == "vae" and dtype == torch.float16 and getattr(value.config, "force_upcast", False):
            dtype = torch.float32  # SDXL's VAE overflows in float16 (diffusers upcasts it too)
            self._upcast.add(name)
        if value.dtype != dtype:  # (asking for the dtype it already has makes diffusers warn)
            value = value.to(dtype=dtype)
        value.eval()
        value.requires_grad_(False)
        if component == "unet":
            value = prepare_unet(value, self.plan)
        elif component == "vae":
            value = prepare_vae(value, self.plan)
        return value


@dataclass(frozen=True)
class ModelHandle:
    """What a loader node outputs (as MODEL, CLIP, VAE and DEPTH_MODEL): a model's name and the
    manager that loads its components when a node first needs them."""

    manager: ModelManager = field(compare=False, repr=False)
    name: str

    def get(self, component: str) -> Any:
        return self.manager.load(self.name, component)

    def info(self) -> ModelInfo:
        """The model's family, prediction type and bundled estimator (nothing is loaded)."""
        return self.manager.info(self.name)

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
