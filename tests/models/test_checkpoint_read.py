"""Checkpoint files are read without running anything in them, and each kind of bad file is named
for what it is, with what to do."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy
import pytest
import torch
from depthgraph.engine.models.checkpoint_read import checkpoint_format, read_state_dict
from depthgraph.engine.models.common import ModelError
from safetensors.torch import save_file

WEIGHTS = {"model.diffusion_model.out.2.bias": torch.arange(4.0)}


class Payload:
    """Pickles to a call of os.system that would leave a file behind."""

    def __init__(self, witness: Path) -> None:
        self.witness = witness

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.witness}",))


def test_a_pickle_that_would_run_code_is_refused_naming_what_it_asked_for(tmp_path: Path) -> None:
    witness = tmp_path / "it-ran"
    unsafe = tmp_path / "512-depth-ema.ckpt"
    torch.save({"state_dict": WEIGHTS, "callback": Payload(witness)}, unsafe)
    with pytest.raises(ModelError) as refused:
        read_state_dict(unsafe)
    message = str(refused.value)
    assert "contains Python objects, not only tensors" in message
    assert "system" in message, "the refused global is named"
    assert "nothing in it was run" in message and ".safetensors" in message
    assert "truncated" not in message and "download it again" not in message
    assert not witness.exists()


def test_an_old_format_torch_file_is_read_safely(tmp_path: Path) -> None:
    old = tmp_path / "old.ckpt"
    torch.save({"state_dict": WEIGHTS}, old, _use_new_zipfile_serialization=False)
    assert checkpoint_format(old) == "legacy"
    assert torch.equal(read_state_dict(old)["model.diffusion_model.out.2.bias"], torch.arange(4.0))


def test_an_old_format_file_that_would_run_code_is_refused_too(tmp_path: Path) -> None:
    witness = tmp_path / "it-ran"
    old = tmp_path / "old.ckpt"
    torch.save({"state_dict": WEIGHTS, "x": Payload(witness)}, old, _use_new_zipfile_serialization=False)
    with pytest.raises(ModelError, match="contains Python objects, not only tensors"):
        read_state_dict(old)
    assert not witness.exists()


def test_a_training_checkpoint_with_numpy_counters_is_read(tmp_path: Path) -> None:
    trained = tmp_path / "finetune.ckpt"
    torch.save({"state_dict": WEIGHTS, "global_step": numpy.int64(1200), "epoch": numpy.float32(3)}, trained)
    assert list(read_state_dict(trained)) == list(WEIGHTS)


def test_the_format_is_told_by_the_bytes_not_the_name(tmp_path: Path) -> None:
    renamed = tmp_path / "really-safetensors.ckpt"
    save_file(WEIGHTS, str(renamed))
    assert checkpoint_format(renamed) == "safetensors"
    assert list(read_state_dict(renamed)) == list(WEIGHTS)


@pytest.mark.parametrize("kind", ["ckpt", "safetensors"])
def test_a_truncated_file_is_called_incomplete_with_download_it_again(tmp_path: Path, kind: str) -> None:
    whole = tmp_path / f"whole.{kind}"
    big = {"x": torch.zeros(10_000)}
    if kind == "ckpt":
        torch.save({"state_dict": big}, whole)
    else:
        save_file(big, str(whole))
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ModelError, match=r"cut\.\w+.*incomplete or damaged.*download it again"):
        read_state_dict(cut)


def test_other_files_are_named_for_what_they_are(tmp_path: Path) -> None:
    page = tmp_path / "model.ckpt"
    page.write_text("<html>404 Not Found</html>")
    with pytest.raises(ModelError, match="neither a safetensors file nor a PyTorch checkpoint"):
        read_state_dict(page)
    with pytest.raises(ModelError, match="does not exist"):
        read_state_dict(tmp_path / "missing.ckpt")
    with pytest.raises(ModelError, match="is a folder"):
        read_state_dict(tmp_path)
    listing = tmp_path / "list.ckpt"
    torch.save([torch.zeros(1)], listing)
    with pytest.raises(ModelError, match="holds a list, not a dictionary of tensors"):
        read_state_dict(listing)
