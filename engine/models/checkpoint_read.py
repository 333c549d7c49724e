"""Reading a checkpoint file's tensors without running anything in it, with errors that say what
happened.

The format is told by the first bytes, not the name (a renamed file is still read): safetensors (an
8-byte header length, then JSON), a torch zip archive (`PK`), or an old-format torch pickle (before
PyTorch 1.6, `torch.save` wrote a bare pickle stream). Torch files are read with
`weights_only=True`: only tensors, containers and plain values are rebuilt, plus numpy scalars and
dtypes (LDM training checkpoints keep `global_step` as one), so a file whose pickle would import
and call anything is refused before anything runs, naming what it asked for.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .common import ModelError

StateDict = dict[str, Any]
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTOCOL = 0x80
MAX_SAFETENSORS_HEADER = 100 * 2**20  # the header lists tensors; beyond this it is not a header


def checkpoint_format(path: Path) -> str:
    """'safetensors', 'torch' (a zip archive), 'legacy' (a bare pickle) or 'unknown'."""
    with path.open("rb") as handle:
        head = handle.read(9)
    if head.startswith(ZIP_MAGIC):
        return "torch"
    if len(head) == 9:
        (length,) = struct.unpack("<Q", head[:8])
        if 2 <= length <= MAX_SAFETENSORS_HEADER and head[8:9] == b"{":
            return "safetensors"
    if head[:1] == bytes([PICKLE_PROTOCOL]):
        return "legacy"
    return "unknown"


def read_state_dict(path: Path) -> StateDict:
    """All tensors of a checkpoint (`state_dict` unwrapped), or a ModelError that says what is wrong
    with the file and what to do."""
    return _read(path)[0]


def _read(path: Path) -> tuple[StateDict, Mapping[str, Any]]:
    """The tensors and the top level of the file (where LDM training keeps `global_step`)."""
    try:
        kind = checkpoint_format(path)
    except FileNotFoundError:
        raise ModelError(f"checkpoint {path} does not exist") from None
    except IsADirectoryError:
        raise ModelError(f"{path} is a folder, not a checkpoint file") from None
    except OSError as error:
        raise ModelError(f"checkpoint {path} cannot be read: {error.strerror or error}") from None
    if kind == "unknown":
        raise ModelError(
            f"{path} is neither a safetensors file nor a PyTorch checkpoint (its first bytes are "
            "not one); it may be truncated or be another kind of file. Download it again."
        )
    try:
        loaded = _load_safetensors(path) if kind == "safetensors" else _load_torch(path, kind)
    except ModelError:
        raise
    except Exception as error:
        raise ModelError(
            f"cannot read checkpoint {path}: {type(error).__name__}: {_first_line(error)}. The "
            f"{kind} file is incomplete or damaged (truncated by a failed download?); download it again."
        ) from None
    top = loaded if isinstance(loaded, Mapping) else {}
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ModelError(f"checkpoint {path} holds a {type(loaded).__name__}, not a dictionary of tensors")
    return dict(loaded), top


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Each tensor's name and shape, as cheaply as the format allows: a safetensors header alone,
    a torch archive mapped (not read) into memory. The same errors as `read_state_dict`."""
    try:
        safetensors = checkpoint_format(path) == "safetensors"
    except OSError:
        safetensors = False  # read_state_dict names the problem
    if safetensors:
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as handle:
                return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
        except Exception as error:
            raise ModelError(
                f"cannot read checkpoint {path}: {type(error).__name__}: {_first_line(error)}. The "
                "safetensors file is incomplete or damaged (truncated by a failed download?); "
                "download it again."
            ) from None
    return {key: tuple(getattr(value, "shape", ())) for key, value in read_state_dict(path).items()}


def global_step(path: Path) -> Any:
    """The training step a torch checkpoint was saved at (its top-level `global_step`), or None
    (safetensors files, and torch files saved without one)."""
    if checkpoint_format(path) == "safetensors":
        return None
    step = _read(path)[1].get("global_step")
    try:
        return None if step is None else int(step)
    except (TypeError, ValueError):  # not a number: not a step
        return None


def _load_safetensors(path: Path) -> StateDict:
    from safetensors.torch import load_file

    return dict(load_file(str(path)))


def _load_torch(path: Path, kind: str) -> Any:
    import torch

    try:
        with torch.serialization.safe_globals(_data_globals()):
            # Zip archives are mapped, not read into memory; old-format files cannot be.
            return torch.load(path, map_location="cpu", weights_only=True, mmap=kind == "torch")
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):
            raise
        asked = ", ".join(_unsafe_globals(path, kind)) or _asked_in(str(error))
        raise ModelError(
            f"{path} contains Python objects, not only tensors ({asked}): refused, nothing in it was run. "
            "If you trust where it came from, convert it to .safetensors once and use that file: "
            'python -c "import sys, torch, safetensors.torch as st; '
            "d = torch.load(sys.argv[1], weights_only=False); "
            "st.save_file({k: v.contiguous() for k, v in d.get('state_dict', d).items() "
            'if isinstance(v, torch.Tensor)}, sys.argv[2])" '
            f"{path.name} {path.with_suffix('.safetensors').name}"
        ) from None


def _data_globals() -> list[Any]:
    """Plain-data types torch's safe loader does not know by default, under each name a pickle may
    use for them (numpy 2 moved `numpy.core` to `numpy._core`)."""
    import numpy

    scalar = numpy.dtype("int64").type(0).__reduce__()[0]  # numpy's scalar rebuilder, wherever it lives
    allowed: list[Any] = []  # (type, the name a pickle gives it)
    for package in ("numpy.core", "numpy._core"):
        allowed.append((scalar, f"{package}.multiarray.scalar"))
    allowed.append((numpy.dtype, "numpy.dtype"))
    for name in ("int64", "int32", "float64", "float32", "bool"):
        kind = type(numpy.dtype(name))
        allowed.append((kind, f"numpy.dtypes.{kind.__name__}"))
    return allowed


def _unsafe_globals(path: Path, kind: str) -> list[str]:
    """What a zip checkpoint's pickle imports beyond what may be loaded (read, never run)."""
    if kind != "torch":
        return []
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:
        return []
    safe = {name for _, name in _data_globals()}
    return [name for name in names if name not in safe][:5]


def _asked_in(message: str) -> str:
    """The global torch's safe loader stopped at, from its message ('unsupported GLOBAL x.y')."""
    marker = "GLOBAL "
    if marker in message:
        return message.split(marker, 1)[1].split()[0]
    return "objects torch's safe loader does not rebuild"


def _first_line(error: Exception) -> str:
    """The first sentence of a library's message (torch's go on for lines)."""
    lines = str(error).strip().splitlines()
    return lines[0].split(". ")[0][:300] if lines else ""
