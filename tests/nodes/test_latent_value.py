"""A LATENT is a typed `Latent`: its parts are there as wholes, a missing one is refused with the node to
link, and noising and sampling build their scheduler in one place, `Schedule.build`."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest
import torch
from depthgraph.engine.core.sizing import measure
from depthgraph.engine.models.manager import ModelHandle, ModelManager
from depthgraph.nodes import latent_value
from depthgraph.nodes.latent import noise_latent, repeat_latent_batch
from depthgraph.nodes.latent_value import Latent, Noising, Posterior, Schedule, as_latent
from depthgraph.nodes.output_sizes import latent_dims
from depthgraph.nodes.sampling import sample
from depthgraph.nodes.schedulers import SCHEDULERS, denoising_timesteps, make_scheduler
from depthgraph.nodes.text import encode_text
from depthgraph.nodes.vae import encode_image


@pytest.fixture(scope="module")
def model() -> ModelHandle:
    return ModelHandle(ModelManager(), "tiny-random")


@pytest.fixture(scope="module")
def encoded(model: ModelHandle) -> Latent:
    return encode_image(model, torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(0)))


def noised(model: ModelHandle, latent: Latent, steps: int = 3) -> Latent:
    result: Latent = noise_latent(model, latent, 7, 0.8, steps, "ddim")[0]
    return result


def test_encoded_latents_are_the_posterior_mean_scaled_with_the_posterior_kept() -> None:
    parameters = torch.randn(1, 8, 4, 4)
    latent = Latent.encoded(parameters, 0.5)
    assert torch.equal(latent.samples, parameters[:, :4] * 0.5)
    assert latent.posterior is not None and latent.posterior.parameters is parameters
    assert not latent.is_noised and latent.noise_mask is None
    assert (latent.batch, latent.image_size) == (1, (32, 32))


def test_samples_that_are_not_a_batch_of_planes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"latent samples are a tensor \[batch, channels, height, width\]"):
        Latent(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match="got list"):
        Latent([1, 2])  # type: ignore[arg-type]


def test_a_latent_cannot_be_changed_only_replaced(encoded: Latent) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        encoded.samples = torch.zeros(1, 4, 4, 4)  # type: ignore[misc]
    with pytest.raises(TypeError):
        encoded["samples"] = torch.zeros(1, 4, 4, 4)  # type: ignore[index]


def test_noising_a_latent_without_a_posterior_says_to_link_vae_encode(model: ModelHandle) -> None:
    message = "this latent has no VAE posterior to noise; link it from a VAEEncode node"
    with pytest.raises(ValueError, match=message):
        Latent(torch.zeros(1, 4, 4, 4)).require_posterior()
    with pytest.raises(ValueError, match=message):  # noised once: its posterior is used up
        noise_latent(model, noised(model, encode_image(model, torch.rand(1, 32, 32, 3))), 0, 1.0, 2, "ddim")


def test_sampling_a_latent_without_a_schedule_says_to_link_noise_latent(
    model: ModelHandle, encoded: Latent
) -> None:
    text = encode_text(model, "")
    message = "this latent has no noise schedule; link it from a NoiseLatent node"
    with pytest.raises(ValueError, match=message):
        sample(model, text, text, torch.rand(1, 1, 24, 24), encoded, 1.0)


def test_repeating_noised_latents_says_to_repeat_before_noising(model: ModelHandle, encoded: Latent) -> None:
    message = "these latents are already noised; repeat them before the Noise Latent node, so each copy"
    with pytest.raises(ValueError, match=message):
        repeat_latent_batch(noised(model, encoded), 2)


def test_repeating_copies_each_latent_with_its_posterior_and_mask_in_a_row(encoded: Latent) -> None:
    mask = torch.stack([torch.zeros(1, 32, 32), torch.ones(1, 32, 32)])
    repeated = encoded.with_noise_mask(mask).repeated(3)
    assert repeated.samples.shape == (6, 4, 4, 4)
    assert torch.equal(repeated.samples[2], encoded.samples[0]) and torch.equal(
        repeated.samples[3], encoded.samples[1]
    )
    assert repeated.posterior is not None and repeated.posterior.parameters.shape == (6, 8, 4, 4)
    assert repeated.posterior.scaling_factor == encoded.require_posterior().scaling_factor
    assert repeated.noise_mask is not None and repeated.noise_mask[:3].sum() == 0
    assert bool((repeated.noise_mask[3:] == 1).all())
    assert encoded.noise_mask is None and encoded.batch == 2  # the original is as it was


def test_noising_keeps_the_mask_and_the_schedule_and_drops_the_posterior(
    model: ModelHandle, encoded: Latent
) -> None:
    mask = torch.ones(2, 1, 32, 32)
    latent = noised(model, encoded.with_noise_mask(mask))
    noising = latent.require_noising()
    assert latent.is_noised and latent.posterior is None and latent.noise_mask is mask
    assert noising.schedule == Schedule("ddim", 3, 0.8)
    assert noising.init.shape == noising.noise.shape == latent.samples.shape


def test_the_sampler_continues_the_generator_where_noising_left_it(
    model: ModelHandle, encoded: Latent
) -> None:
    noising = noised(model, encoded).require_noising()
    generator = torch.Generator().manual_seed(7)
    Posterior(encoded.require_posterior().parameters, 1.0).sample(generator)
    torch.randn(noising.noise.shape, generator=generator)
    assert torch.equal(noising.generator().get_state(), generator.get_state())


@pytest.mark.parametrize("name", SCHEDULERS)
@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0])
def test_a_schedule_builds_the_scheduler_and_timesteps_as_the_nodes_did_before(
    model: ModelHandle, name: str, strength: float
) -> None:
    config = model.get("scheduler").config
    scheduler, timesteps = Schedule(name, 10, strength).build(config, "cpu")
    reference = make_scheduler(name, config)
    assert type(scheduler) is type(reference)
    assert torch.equal(timesteps, denoising_timesteps(reference, 10, strength, "cpu"))
    assert torch.equal(scheduler.timesteps, reference.timesteps)


def test_noising_and_sampling_each_build_the_scheduler_once_through_the_schedule(
    model: ModelHandle, encoded: Latent, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []

    def counting(name: str, config: Any) -> Any:
        built.append(name)
        return make_scheduler(name, config)

    monkeypatch.setattr(latent_value, "make_scheduler", counting)
    latent = noised(model, encoded, steps=2)
    assert built == ["ddim"]
    text = encode_text(model, "")
    sample(model, text, text, torch.rand(1, 1, 24, 24), latent, 1.0)
    assert built == ["ddim", "ddim"]


def test_node_packs_read_samples_and_noise_mask_by_key_as_in_comfyui(encoded: Latent) -> None:
    mask = torch.ones(2, 1, 32, 32)
    latent = encoded.with_noise_mask(mask)
    assert latent["samples"] is encoded.samples and latent["noise_mask"] is mask
    assert "noise_mask" in latent and "noise_mask" not in encoded and "samples" in encoded
    assert encoded.get("noise_mask") is None and latent.get("noise_mask") is mask
    assert encoded.get("batch_index", 0) == 0 and "posterior" not in encoded
    with pytest.raises(KeyError):
        encoded["noise_mask"]
    with pytest.raises(KeyError, match="reads only 'samples' and 'noise_mask' by key"):
        encoded["posterior"]


def test_a_comfyui_style_dict_from_a_node_pack_is_taken_as_a_latent() -> None:
    samples = torch.zeros(1, 4, 4, 4)
    latent = as_latent({"samples": samples, "noise_mask": torch.ones(1, 32, 32)})
    assert latent.samples is samples and not latent.is_noised
    assert latent.noise_mask is not None and latent.noise_mask.shape == (1, 1, 32, 32)
    assert latent_dims({"samples": samples}) == latent_dims(latent) == (1, 32, 32)
    with pytest.raises(ValueError, match="no VAE posterior"):
        latent.require_posterior()
    with pytest.raises(
        TypeError, match=r'a LATENT input got Tensor; it takes a Latent .* or a dict with "samples"'
    ):
        as_latent(samples)  # type: ignore[arg-type]


def test_a_noised_latent_is_measured_whole_and_survives_pickling(model: ModelHandle, encoded: Latent) -> None:
    """What the result cache counts, and what a Ray worker would ship."""
    latent = noised(model, encoded.with_noise_mask(torch.ones(2, 1, 32, 32)))
    noising = latent.require_noising()
    assert isinstance(noising, Noising) and latent.noise_mask is not None
    tensors = (latent.samples, noising.init, noising.noise, noising.generator_state, latent.noise_mask)
    assert measure((latent,))["cpu"] >= sum(tensor.untyped_storage().nbytes() for tensor in tensors)

    again = pickle.loads(pickle.dumps(latent))
    assert torch.equal(again.samples, latent.samples) and torch.equal(again.noise_mask, latent.noise_mask)
    assert again.require_noising().schedule == noising.schedule
    assert torch.equal(again.require_noising().generator_state, noising.generator_state)
