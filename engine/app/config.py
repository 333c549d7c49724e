"""Settings: folders, device and cache budgets, from a YAML file and then the command line.

The file is `--config PATH`, else `$DEPTHGRAPH_CONFIG`, else `depthgraph.yaml` in the current folder
if there is one. Relative paths in it are relative to the file; without one, the folders are inside
the home folder (`home_folder`: `$DEPTHGRAPH_HOME`, else the checkout). Example::

    models_dir: /data/sd-models
    output_dir: renders
    device: cuda
    dtype: float16
    max_grid_cells: 64
    custom_nodes_dirs: [custom_nodes, ~/depthgraph-nodes]
    cache_budget: {cpu: 8GiB, cuda: 6GiB}
    acceleration:            # speed and memory on the GPU (see engine/models/acceleration.py)
      compile: auto          # auto (on for CUDA), on, off
      compile_mode: default  # or max-autotune-no-cudagraphs (slower to compile, faster to run)
      cuda_graphs: auto
      channels_last: auto
      fuse_qkv: auto
      vae_tiling: auto       # auto: tiles above 768 px; on: 512 px tiles; off
      low_memory: false      # only the component in use on the GPU, VAE tiled, no compiling
      vram_budget: 10GiB     # weights + cached results on the GPU; omit for no limit
    frontend: depthgraph     # the editor at /: depthgraph's own, or comfyui (needs depthgraph[comfyui])
    allow_origins: [http://localhost:5173]  # web pages besides the server's own that may use it
    allow_hosts: [studio.lan]                 # host names besides IP addresses and localhost
    max_output_pixels: 67108864               # budgets: each refusal names its setting
    max_prompt_bytes: 64MiB
    cluster:                 # where `serve` and `batch` run prompts (see engine/cluster)
      executor: local        # local (this process) or ray (Ray actors, one per GPU)
      ray_address: local     # local starts Ray here; auto or ray://host:10001 joins a running cluster
      workers: 2             # how many engine workers (default: one per GPU in the cluster, else 1)
      max_attempts: 3        # runs of a prompt whose worker died before it is marked failed
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from ..core.cache import DEFAULT_BUDGETS
from ..core.files import FileStore
from ..models.acceleration import Acceleration, AccelerationError, acceleration_from_mapping
from ..models.devices import DEVICE_CHOICES
from ..models.manager import DTYPES
from .origins import check_allowed_origin

DEFAULT_CONFIG_NAME = "depthgraph.yaml"
CONFIG_ENV = "DEPTHGRAPH_CONFIG"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the checkout (or the installed package) holding engine/
HOME_ENV = "DEPTHGRAPH_HOME"
# The editors `serve` can put at /: depthgraph's own (web/), or ComfyUI's official front end from the
# comfyui-frontend-package wheel (server_frontend.py), with depthgraph's at /depthgraph/ beside it.
FRONTENDS = ("depthgraph", "comfyui")


def home_folder() -> Path:
    """Where the default folders live: `$DEPTHGRAPH_HOME`; else the checkout depthgraph runs from (the
    folder with its pyproject.toml, as the README's set-up makes it); else ~/depthgraph for an installed
    package. Never the current folder, so a server started anywhere finds the same queue and files."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser().resolve()
    if (PACKAGE_ROOT / "pyproject.toml").is_file():
        return PACKAGE_ROOT
    return Path.home() / "depthgraph"


class ConfigError(ValueError):
    """A config file or setting that cannot be used; the message names it."""


EXECUTORS = ("local", "ray")


@dataclass
class Cluster:
    """How prompts are executed: in this process, or on Ray actors (`engine.cluster`)."""

    executor: str = "local"
    ray_address: str = "local"
    workers: int | None = None  # None: one per GPU in the cluster, or 1 without GPUs
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}, not {self.executor!r}")
        if self.workers is not None and (isinstance(self.workers, bool) or not 0 < self.workers <= 1024):
            raise ConfigError(f"workers must be a whole number from 1 to 1024, not {self.workers!r}")
        if isinstance(self.max_attempts, bool) or not 0 < self.max_attempts <= 100:
            raise ConfigError(f"max_attempts must be a whole number from 1 to 100, not {self.max_attempts!r}")
        if not isinstance(self.ray_address, str) or not self.ray_address:
            raise ConfigError("ray_address is 'local', 'auto' or a cluster address such as ray://head:10001")


@dataclass
class Settings:
    # Folders, by default inside the home folder (see `home_folder`) whatever the current folder is.
    models_dir: Path = field(default_factory=lambda: home_folder() / "models")
    input_dir: Path = field(default_factory=lambda: home_folder() / "input")
    output_dir: Path = field(default_factory=lambda: home_folder() / "output")
    temp_dir: Path = field(default_factory=lambda: home_folder() / "temp")
    data_dir: Path = field(default_factory=lambda: home_folder() / "data")  # the queue and history
    graphs_dir: Path = PACKAGE_ROOT / "graphs"  # the example graphs the editor's menu lists
    max_upload_bytes: int = 50 * 2**20
    custom_nodes_dirs: list[Path] = field(default_factory=lambda: [home_folder() / "custom_nodes"])
    device: str = "auto"
    max_image_pixels: int = 64 * 2**20  # input images above this are refused (64 megapixels)
    max_grid_cells: int = 64  # a comparison grid may run and draw at most this many cells
    dtype: str = "auto"  # weights: auto = float16 on CUDA/MPS, float32 on CPU; or float32, float16, bfloat16
    cache_budget: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_BUDGETS))
    acceleration: Acceleration = field(default_factory=Acceleration)
    cluster: Cluster = field(default_factory=Cluster)
    # Who may talk to the server (see server_security.py): browser origins besides the server's own
    # ("*" is any page on the web: dangerous), and host names besides IP addresses and localhost.
    allow_origins: list[str] = field(default_factory=list)
    allow_hosts: list[str] = field(default_factory=list)
    frontend: str = "depthgraph"  # the editor served at /: one of FRONTENDS
    # Budgets, each checked before the work it bounds starts; every message names its setting.
    max_output_pixels: int = (
        64 * 2**20
    )  # width × height × batch of any image, mask, depth or latent a node makes
    max_prompt_bytes: int = 64 * 2**20  # the JSON body of POST /prompt and /workflow/convert
    max_prompt_nodes: int = 200_000
    max_json_depth: int = 64  # nesting of lists and objects in a request body
    max_id_length: int = 256  # characters of a client_id or prompt_id
    max_upload_parts: int = 16  # parts of one multipart upload
    max_userdata_bytes: int = 32 * 2**20  # one file the front end stores (a workflow, the settings)
    max_text_chunk_bytes: int = 16 * 2**20  # a PNG's text chunks (graphs), decompressed, in all
    max_socket_backlog_bytes: int = (
        8 * 2**20
    )  # events waiting for one WebSocket client; past it, it is disconnected

    def compile_cache_dir(self) -> Path:
        """Where compiled kernels are kept between processes (inside the data folder)."""
        return self.acceleration.cache_dir or self.data_dir / "compile-cache"

    @classmethod
    def under(cls, folder: Path, **changes: Any) -> Settings:
        """Every folder (input, output, temp, models, data, custom_nodes) inside one workspace
        folder, with `changes` on top: how tests, benchmarks and scripts get a self-contained engine."""
        settings = cls(
            models_dir=folder / "models",
            input_dir=folder / "input",
            output_dir=folder / "output",
            temp_dir=folder / "temp",
            data_dir=folder / "data",
            custom_nodes_dirs=[folder / "custom_nodes"],
        )
        return replace(settings, **changes)

    def file_store(self) -> FileStore:
        return FileStore(
            self.input_dir,
            self.output_dir,
            self.temp_dir,
            models_dir=self.models_dir,
            max_image_pixels=self.max_image_pixels,
        )


def allowed(key: str, values: list[str]) -> list[str]:
    """`allow_origins` as the origin policy compares them (ValueError for one that is not an origin),
    or `allow_hosts` as host names."""
    if key == "allow_origins":
        return [check_allowed_origin(value) for value in values]
    return [value.strip().lower().rstrip(".") for value in values]


def parse_bytes(value: Any, what: str = "size") -> int:
    """A byte count from a number or text such as "512MiB" or "4 GB"."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
        if match and match.group(2).lower() in _UNITS:
            return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    raise ConfigError(f"{what} {value!r} is not a size; write a byte count or e.g. 512MiB, 4GiB")


def load_settings(config_path: Path | None = None) -> Settings:
    """Settings from the config file (see the module docstring), or the defaults if there is none."""
    path = config_path
    if path is None and os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
    if path is None and Path(DEFAULT_CONFIG_NAME).is_file():
        path = Path(DEFAULT_CONFIG_NAME)
    settings = Settings()
    if path is None:
        return settings
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path} cannot be read: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if data is None:
        return settings
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping of setting: value")
    _apply(settings, data, path)
    return settings


def _apply(settings: Settings, data: Mapping[str, Any], path: Path) -> None:
    known = {f.name for f in fields(Settings)}
    base = path.parent
    for key, value in data.items():
        if key not in known:
            raise ConfigError(
                f"config file {path}: unknown setting {key!r}; known settings: {', '.join(sorted(known))}"
            )
        if key.endswith("_dir"):
            if not isinstance(value, str):
                raise ConfigError(f"config file {path}: {key} must be a folder path")
            setattr(settings, key, base / Path(value).expanduser())
        elif key == "custom_nodes_dirs":
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ConfigError(f"config file {path}: custom_nodes_dirs must be a list of folder paths")
            settings.custom_nodes_dirs = [base / Path(item).expanduser() for item in value]
        elif key == "device":
            if value not in DEVICE_CHOICES:
                raise ConfigError(f"config file {path}: device must be one of {', '.join(DEVICE_CHOICES)}")
            settings.device = value
        elif key.endswith("_bytes"):
            setattr(settings, key, parse_bytes(value, key))
        elif key.startswith("max_"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"config file {path}: {key} must be a positive whole number")
            setattr(settings, key, value)
        elif key in ("allow_origins", "allow_hosts"):
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ConfigError(f"config file {path}: {key} must be a list of text")
            try:
                setattr(settings, key, allowed(key, value))
            except ValueError as error:
                raise ConfigError(f"config file {path}: {error}") from None
        elif key == "frontend":
            if value not in FRONTENDS:
                raise ConfigError(f"config file {path}: frontend must be one of {', '.join(FRONTENDS)}")
            settings.frontend = value
        elif key == "dtype":
            if value not in DTYPES:
                raise ConfigError(f"config file {path}: dtype must be one of {', '.join(DTYPES)}")
            settings.dtype = value
        elif key == "cache_budget":
            if not isinstance(value, Mapping):
                raise ConfigError(f"config file {path}: cache_budget maps a device type to a size")
            for device, size in value.items():
                settings.cache_budget[str(device)] = parse_bytes(size, f"cache_budget.{device}")
        elif key == "acceleration":
            settings.acceleration = _acceleration(value, path)
        elif key == "cluster":
            settings.cluster = _cluster(value, path)


def _cluster(value: Any, path: Path) -> Cluster:
    if not isinstance(value, Mapping):
        raise ConfigError(f"config file {path}: cluster maps a setting to a value (executor, workers ...)")
    known = {f.name for f in fields(Cluster)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown cluster setting {unknown[0]!r}; known: {', '.join(sorted(known))}"
        )
    try:
        return Cluster(**value)
    except ConfigError as error:
        raise ConfigError(f"config file {path}: cluster: {error}") from None


def _acceleration(value: Any, path: Path) -> Acceleration:
    if not isinstance(value, Mapping):
        raise ConfigError(f"config file {path}: acceleration maps a setting to a value (see the docs)")
    data = dict(value)
    if data.get("vram_budget") is not None:
        data["vram_budget"] = parse_bytes(data["vram_budget"], "acceleration.vram_budget")
    try:
        return acceleration_from_mapping(data)
    except (AccelerationError, TypeError) as error:
        raise ConfigError(f"config file {path}: {error}") from None
