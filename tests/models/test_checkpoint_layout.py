"""The single-file loader on the real `512-depth-ema.ckpt` layout: every tensor name and shape of
Stability's file (`tests/fixtures/sd2-depth-ckpt-keys.tsv`) must land on a parameter of the full-size
SD2-depth modules, and every parameter must get one. Modules and tensors live on the meta device:
shapes only, no memory, no weights.

Each file tensor is traced: whatever the converters make of it (a slice, a transpose, a copy) still
names the file tensors it came from, so the test knows exactly which ones the loader used.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from depthgraph.engine.models.sd2_depth import SD2_DEPTH
from depthgraph.engine.models.single_file import (
    DEPTH_PREFIX,
    EMA_PREFIX,
    TEXT_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    component_weights,
    convert_component,
    ema_name,
    empty_component,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sd2-depth-ckpt-keys.tsv"
PARTS = {  # component -> the prefix of its tensors in the file
    "unet": UNET_PREFIX,
    "vae": VAE_PREFIX,
    "text_encoder": TEXT_PREFIX,
    "depth_estimator": DEPTH_PREFIX,
}
TENSORS_PER_PART = {"unet": 686, "vae": 248, "text_encoder": 294, "depth_estimator": 368}
# LDM's noise schedule, registered as buffers of LatentDiffusion; diffusers' scheduler computes its own.
SCHEDULE_BUFFERS = {
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
}
LAST_TEXT_BLOCK = [  # SD2 encodes with the penultimate block of OpenCLIP's 24; the last is never run
    f"{TEXT_PREFIX}transformer.resblocks.23.{name}"
    for name in (
        "ln_1.weight",
        "ln_1.bias",
        "attn.in_proj_weight",
        "attn.in_proj_bias",
        "attn.out_proj.weight",
        "attn.out_proj.bias",
        "ln_2.weight",
        "ln_2.bias",
        "mlp.c_fc.weight",
        "mlp.c_fc.bias",
        "mlp.c_proj.weight",
        "mlp.c_proj.bias",
    )
]
UNUSED_BY_DESIGN = {
    *SCHEDULE_BUFFERS,
    *LAST_TEXT_BLOCK,
    f"{TEXT_PREFIX}text_projection",  # CLIP's image-text projection: SD2 conditions on hidden states
    f"{TEXT_PREFIX}logit_scale",  # CLIP's contrastive temperature
    f"{DEPTH_PREFIX}pretrained.model.head.weight",  # timm ViT's ImageNet classifier, not run by MiDaS
    f"{DEPTH_PREFIX}pretrained.model.head.bias",
}


class Traced(torch.Tensor):
    """A tensor that remembers which file tensors it was made from, through any torch operation."""

    sources: frozenset[str] = frozenset()

    @classmethod
    def __torch_function__(
        cls, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        result = super().__torch_function__(func, types, args, kwargs or {})
        sources = frozenset().union(
            *(leaf.sources for leaf in _leaves((args, kwargs)) if isinstance(leaf, Traced))
        )
        for leaf in _leaves(result):
            if isinstance(leaf, Traced):
                leaf.sources = leaf.sources | sources
        return result


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    else:
        yield value


def read_layout() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The fixture: tensor name -> (shape, dtype), in the file's order."""
    layout = {}
    for line in FIXTURE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape, dtype = line.split("\t")
        layout[name] = (tuple(ast.literal_eval(shape)), getattr(torch, dtype))
    return layout


def traced_tensor(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> Traced:
    tensor = torch.empty(shape, device="meta", dtype=dtype).as_subclass(Traced)
    tensor.sources = frozenset({name})
    return tensor


def traced_state(layout: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> dict[str, Traced]:
    return {name: traced_tensor(name, shape, dtype) for name, (shape, dtype) in layout.items()}


def with_ema(layout: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> dict[str, Traced]:
    """The file as a training run with `use_ema: True` saves it: LitEma's copy of every UNet parameter
    beside it, and LitEma's own two buffers."""
    state = traced_state(layout)
    for name, (shape, dtype) in layout.items():
        if name.startswith(UNET_PREFIX):
            state[ema_name(name)] = traced_tensor(ema_name(name), shape, dtype)
    state[f"{EMA_PREFIX}decay"] = traced_tensor(f"{EMA_PREFIX}decay", (), torch.float32)
    state[f"{EMA_PREFIX}num_updates"] = traced_tensor(f"{EMA_PREFIX}num_updates", (), torch.int32)
    return state


@pytest.fixture(scope="module")
def layout() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    return read_layout()


@pytest.fixture(scope="module")
def modules() -> dict[str, Any]:
    with torch.device("meta"):  # shapes only, no memory
        return {part: empty_component(part, SD2_DEPTH) for part in PARTS}


def sources_of(weights: dict[str, Any]) -> set[str]:
    return set().union(*(value.sources for value in weights.values()))


def assert_fits(weights: dict[str, Any], module: Any) -> None:
    """Every weight is a parameter or buffer of the module at its exact shape, and none is left out."""
    expected = {name: tuple(value.shape) for name, value in module.state_dict().items()}
    assert sorted(set(weights) - set(expected)) == [], "names the module does not have"
    assert sorted(set(expected) - set(weights)) == [], "parameters the file does not fill"
    wrong = {name: (tuple(value.shape), expected[name]) for name, value in weights.items()}
    assert {name: shapes for name, shapes in wrong.items() if shapes[0] != shapes[1]} == {}


def test_the_fixture_holds_the_tensors_of_512_depth_ema(
    layout: dict[str, tuple[tuple[int, ...], torch.dtype]],
) -> None:
    """The counts its header states: 1,608 tensors in four models and the noise schedule."""
    assert len(layout) == 1608
    for part, prefix in PARTS.items():
        assert sum(name.startswith(prefix) for name in layout) == TENSORS_PER_PART[part], part
    assert {name for name in layout if not name.startswith(tuple(PARTS.values()))} == SCHEDULE_BUFFERS
    assert not any(name.startswith(EMA_PREFIX) for name in layout)  # the released file has EMA merged
    assert layout[f"{UNET_PREFIX}input_blocks.0.0.weight"][0] == (320, 5, 3, 3)  # 4 latent + 1 depth


@pytest.mark.parametrize("part", list(PARTS))
def test_every_tensor_the_loader_takes_lands_on_a_parameter_of_its_shape(
    layout: dict[str, tuple[tuple[int, ...], torch.dtype]], modules: dict[str, Any], part: str
) -> None:
    weights = component_weights(traced_state(layout), part, SD2_DEPTH)
    assert_fits(weights, modules[part])
    assert {name for name in sources_of(weights) if not name.startswith(PARTS[part])} == set()


def test_only_the_tensors_sd2_depth_never_runs_are_left_over(
    layout: dict[str, tuple[tuple[int, ...], torch.dtype]],
) -> None:
    state = traced_state(layout)
    used = {part: sources_of(component_weights(state, part, SD2_DEPTH)) for part in PARTS}
    assert set(layout) - set().union(*used.values()) == UNUSED_BY_DESIGN
    unused = {
        part: sum(name.startswith(prefix) for name in UNUSED_BY_DESIGN) for part, prefix in PARTS.items()
    }
    assert {part: len(names) for part, names in used.items()} == {
        part: TENSORS_PER_PART[part] - unused[part] for part in PARTS
    }
    assert unused == {"unet": 0, "vae": 0, "text_encoder": 14, "depth_estimator": 2}


def test_a_model_that_encodes_with_the_last_text_block_takes_that_block_too(
    layout: dict[str, tuple[tuple[int, ...], torch.dtype]],
) -> None:
    """A yaml with `layer: last` gives the text encoder all 24 blocks; diffusers' helper would drop
    block 23 by name (SD2's penultimate choice), so the loader must not leave that to it."""
    from dataclasses import replace

    configs = replace(SD2_DEPTH, text_encoder={**SD2_DEPTH.text_encoder, "num_hidden_layers": 24})
    with torch.device("meta"):
        module = empty_component("text_encoder", configs)
    weights = component_weights(traced_state(layout), "text_encoder", configs)
    assert_fits(weights, module)
    text = {name for name in layout if name.startswith(TEXT_PREFIX)}
    assert text - sources_of(weights) == {f"{TEXT_PREFIX}text_projection", f"{TEXT_PREFIX}logit_scale"}


def test_a_file_with_an_ema_copy_fills_the_unet_from_the_ema(
    layout: dict[str, tuple[tuple[int, ...], torch.dtype]], modules: dict[str, Any]
) -> None:
    weights = component_weights(with_ema(layout), "unet", SD2_DEPTH)
    assert_fits(weights, modules["unet"])
    unet_names = {name for name in layout if name.startswith(UNET_PREFIX)}
    assert sources_of(weights) == {ema_name(name) for name in unet_names}
    assert (
        ema_name(f"{UNET_PREFIX}input_blocks.0.0.weight") == "model_ema.diffusion_modelinput_blocks00weight"
    )


def test_loading_the_ema_unet_says_so_once(
    layout: dict[str, tuple[tuple[int, ...], torch.dtype]], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="depthgraph.models"), torch.device("meta"):
        convert_component(with_ema(layout), "unet", SD2_DEPTH, Path("fine-tune.ckpt"))
        convert_component(traced_state(layout), "unet", SD2_DEPTH, Path("512-depth-ema.ckpt"))
    messages = [record.getMessage() for record in caplog.records if record.name == "depthgraph.models"]
    assert messages == [
        "fine-tune.ckpt: the UNet's EMA weights are used (686 tensors under model_ema.*), "
        "not its training weights"
    ]
