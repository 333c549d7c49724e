"""Depth inpainting: a noise mask limits what the sampler changes, with depth from the whole image."""

from __future__ import annotations

import pytest
import torch
from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.models.manager import ModelHandle, ModelManager
from depthgraph.nodes.depth import estimate_depth
from depthgraph.nodes.image import image_size_for_model
from depthgraph.nodes.latent import noise_latent, set_latent_noise_mask
from depthgraph.nodes.latent_value import Latent
from depthgraph.nodes.mask import feather_mask, image_composite_masked
from depthgraph.nodes.sampling import sample
from depthgraph.nodes.text import encode_text
from depthgraph.nodes.vae import decode_latents, encode_image

SIZE = 64  # pixels; 8×8 latents


@pytest.fixture(scope="module")
def model() -> ModelHandle:
    return ModelHandle(ModelManager(), "tiny-random")


@pytest.fixture
def context(files: FileStore, warnings: list[str]) -> NodeContext:
    return NodeContext("p", "12", "SetLatentNoiseMask", files, warned=warnings.append)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, SIZE, SIZE, 3, generator=generator)


def run(model: ModelHandle, image: torch.Tensor, latent: Latent) -> torch.Tensor:
    """Depth from the whole image, three steps at strength 1.0, guidance 5."""
    (depth,) = estimate_depth(model, image, "diffusers")
    text = encode_text(model, "a pumpkin")
    return sample(model, text, encode_text(model, ""), depth, latent, 5.0)


def noised(model: ModelHandle, image: torch.Tensor) -> Latent:
    latent: Latent = noise_latent(model, encode_image(model, image), 7, 1.0, 3, "ddim")[0]
    return latent


def masked(latent: Latent, mask: torch.Tensor, context: NodeContext) -> Latent:
    result: Latent = set_latent_noise_mask.function(samples=latent, mask=mask, context=context)[0]
    return result


def test_with_a_mask_of_zeros_the_output_latents_are_the_input_latents_and_the_user_is_warned(
    model: ModelHandle, image: torch.Tensor, context: NodeContext, warnings: list[str]
) -> None:
    latent = noised(model, image)
    result = run(model, image, masked(latent, torch.zeros(1, SIZE, SIZE), context))
    assert torch.equal(result, latent.require_noising().init)
    (warning,) = warnings
    assert "all zeros" in warning and "nothing will be regenerated" in warning


def test_with_a_full_mask_the_result_equals_plain_depth_to_image(
    model: ModelHandle, image: torch.Tensor, context: NodeContext, warnings: list[str]
) -> None:
    plain = run(model, image, noised(model, image))
    full = run(model, image, masked(noised(model, image), torch.ones(1, SIZE, SIZE), context))
    assert torch.equal(full, plain)
    assert warnings == []


def test_outside_the_mask_the_latents_are_exactly_the_originals(
    model: ModelHandle, image: torch.Tensor, context: NodeContext
) -> None:
    mask = torch.zeros(1, SIZE, SIZE)
    mask[:, :, SIZE // 2 :] = 1.0  # regenerate the right half
    latent = noised(model, image)
    result = run(model, image, masked(latent, mask, context))
    half = result.shape[-1] // 2
    init = latent.require_noising().init
    assert torch.equal(result[..., : half - 1], init[..., : half - 1])  # clear of the seam
    assert (result[..., half + 1 :] - init[..., half + 1 :]).abs().mean() > 0.1


def test_pasted_back_through_a_feathered_mask_the_pixels_outside_it_are_the_originals(
    model: ModelHandle, image: torch.Tensor, context: NodeContext
) -> None:
    mask = torch.zeros(1, SIZE, SIZE)
    mask[:, 16:48, 32:] = 1.0
    latent = noised(model, image)
    decoded = decode_latents(model, run(model, image, masked(latent, mask, context)))
    # The VAE decoder's attention lets a change inside reach every pixel a little; pasting back
    # through the feathered mask restores the original exactly wherever the feather is 0.
    feathered = feather_mask.function(mask=mask, radius=4)[0]
    pasted = image_composite_masked.function(
        destination=image, source=decoded, x=0, y=0, resize_source=False, context=context, mask=feathered
    )[0]
    outside = feathered[0] == 0
    assert outside.sum() > SIZE * SIZE // 2
    assert torch.equal(pasted[0][outside], image[0][outside])
    inside = mask[0] == 1
    assert torch.allclose(pasted[0][inside & (feathered[0] == 1)], decoded[0][inside & (feathered[0] == 1)])


def test_a_mask_made_for_another_picture_is_refused_with_the_fix(
    model: ModelHandle, image: torch.Tensor, context: NodeContext
) -> None:
    with pytest.raises(
        ValueError, match=r"the mask is 64×40 but .* is 64×64; pass the mask through the same"
    ):
        masked(noised(model, image), torch.ones(1, 40, 64), context)


def test_a_mask_at_another_resolution_of_the_same_shape_is_scaled(
    model: ModelHandle, image: torch.Tensor, context: NodeContext
) -> None:
    latent = masked(noised(model, image), torch.ones(1, 128, 128), context)
    assert latent.noise_mask is not None and latent.noise_mask.shape == (1, 1, SIZE, SIZE)


def test_size_for_model_crops_the_mask_with_its_image() -> None:
    picture = torch.rand(1, 50, 70, 3)
    mask = torch.zeros(1, 50, 70)
    mask[:, :, 3] = 1.0  # a line the centre crop to 64 columns keeps, at column 0
    sized, sized_mask = image_size_for_model.function(image=picture, multiple=8, method="crop", mask=mask)
    assert sized.shape == (1, 48, 64, 3) and sized_mask.shape == (1, 48, 64)
    assert torch.equal(sized_mask[0, :, 0], torch.ones(48)) and sized_mask[0, :, 1:].sum() == 0


def test_size_for_model_without_a_mask_gives_an_empty_one() -> None:
    sized, sized_mask = image_size_for_model.function(
        image=torch.rand(1, 20, 20, 3), multiple=8, method="pad"
    )
    assert sized.shape == (1, 24, 24, 3) and torch.equal(sized_mask, torch.zeros(1, 24, 24))
