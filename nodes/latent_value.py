"""What a LATENT socket carries: latents and, as whole parts, what noising and sampling need.

VAEEncode makes a `Latent` with the encoder's `Posterior`; NoiseLatent samples it and noises the
result, keeping how (`Noising`: the clean latents, the noise, the `Schedule` and the generator's
state); DepthSampler follows that schedule and gives plain latents back. A node asks for the part it
needs (`require_posterior`, `require_noising`) and gets, if it is missing, a message naming the node
to link. The socket type stays "LATENT", so graphs and the editor do not see the class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from depthgraph.nodes.heavy import torch
from depthgraph.nodes.schedulers import denoising_timesteps, make_scheduler

LATENT_SCALE = 8  # SD2's VAE turns 8×8 pixels into one latent

NO_POSTERIOR = "this latent has no VAE posterior to noise; link it from a VAEEncode node"
NO_SCHEDULE = "this latent has no noise schedule; link it from a NoiseLatent node"
ALREADY_NOISED = (
    "these latents are already noised; repeat them before the Noise Latent node, so each copy gets its "
    "own noise"
)
COMFY_KEYS = ("samples", "noise_mask")  # what ComfyUI's LATENT dict holds, and Latent reads by key


@dataclass(frozen=True)
class Schedule:
    """Which scheduler denoises, in how many steps, and the strength that says where it starts."""

    scheduler: str
    steps: int
    strength: float

    def build(self, config: Mapping[str, Any], device: Any) -> tuple[Any, torch.Tensor]:
        """A fresh diffusers scheduler from the model's scheduler `config`, set up for the steps, and
        the timesteps that run at the strength, on `device`.

        Noising and sampling both build their scheduler here, so they follow the same timesteps. A
        scheduler keeps state while it steps, so each node builds its own rather than sharing one.
        """
        scheduler = make_scheduler(self.scheduler, config)
        return scheduler, denoising_timesteps(scheduler, self.steps, self.strength, device)


@dataclass(frozen=True, eq=False)
class Posterior:
    """The VAE encoder's diagonal Gaussian: its parameters [B, 8, h, w] (mean and log-variance, to be
    sampled with the seed later) and the VAE's scaling factor into latent space."""

    parameters: torch.Tensor
    scaling_factor: float

    def mean(self) -> torch.Tensor:
        """The mean scaled into latent space: the deterministic latents of the image."""
        return torch.chunk(self.parameters, 2, dim=1)[0] * self.scaling_factor

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        """One draw scaled into latent space, taking from `generator` what diffusers takes."""
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        drawn: torch.Tensor = DiagonalGaussianDistribution(self.parameters).sample(generator)
        return drawn * self.scaling_factor


@dataclass(frozen=True, eq=False)
class Noising:
    """How noised latents were made: the clean latents (the posterior's sample), the noise, the
    schedule they were noised for, and the CPU generator's state after drawing both, so the sampler's
    own draws (ancestral samplers) continue the same stream."""

    init: torch.Tensor
    noise: torch.Tensor
    schedule: Schedule
    generator_state: torch.Tensor

    def generator(self) -> torch.Generator:
        """A CPU generator that continues where noising left off."""
        generator = torch.Generator(device="cpu")
        generator.set_state(self.generator_state)
        return generator


@dataclass(frozen=True, eq=False)
class Latent:
    """Latents `samples` [B, 4, h, w] (an image of 8h × 8w) with the optional parts nodes add:

    - `posterior`: from VAEEncode, what NoiseLatent samples (dropped once noised, so latents are
      noised only once);
    - `noising`: from NoiseLatent, what DepthSampler follows;
    - `noise_mask` [B, 1, 8h, 8w]: from SetLatentNoiseMask, where the sampler may change the latents
      (1 = regenerate).

    For node packs written against ComfyUI, whose LATENT is a dict {"samples", "noise_mask"}, those
    two keys read as there: `latent["samples"]`, `latent.get("noise_mask")`, `"noise_mask" in latent`.
    That access is read only (a Latent is frozen: make a changed one with `dataclasses.replace` or the
    methods below), and no other key reads; `as_latent` takes such a dict back.
    """

    samples: torch.Tensor
    posterior: Posterior | None = None
    noising: Noising | None = None
    noise_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        shape = getattr(self.samples, "shape", None)
        if shape is None or len(shape) != 4:
            found = type(self.samples).__name__ if shape is None else f"a tensor of shape {list(shape)}"
            raise ValueError(f"latent samples are a tensor [batch, channels, height, width]; got {found}")

    @classmethod
    def encoded(cls, parameters: torch.Tensor, scaling_factor: float) -> Latent:
        """The latents of an encoded image: the posterior's mean, with the posterior to noise later."""
        posterior = Posterior(parameters, scaling_factor)
        return cls(posterior.mean(), posterior=posterior)

    @property
    def batch(self) -> int:
        return int(self.samples.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the image these latents stand for."""
        return int(self.samples.shape[-2]) * LATENT_SCALE, int(self.samples.shape[-1]) * LATENT_SCALE

    @property
    def is_noised(self) -> bool:
        return self.noising is not None

    def require_posterior(self) -> Posterior:
        """The encoder's posterior, or the error that says to link a VAEEncode node."""
        if self.posterior is None:
            raise ValueError(NO_POSTERIOR)
        return self.posterior

    def require_noising(self) -> Noising:
        """How these latents were noised, or the error that says to link a NoiseLatent node."""
        if self.noising is None:
            raise ValueError(NO_SCHEDULE)
        return self.noising

    def noised(self, samples: torch.Tensor, noising: Noising) -> Latent:
        """The noised latents `samples`, made as `noising` says; the posterior is used up."""
        return replace(self, samples=samples, posterior=None, noising=noising)

    def with_noise_mask(self, mask: torch.Tensor) -> Latent:
        """The same latents with the noise mask [B, 1, H, W] (already fitted to them)."""
        return replace(self, noise_mask=mask)

    def repeated(self, amount: int) -> Latent:
        """Each latent of the batch `amount` times in a row, with its posterior and mask; refused once
        noised, as each copy must get its own noise."""
        if self.is_noised:
            raise ValueError(ALREADY_NOISED)

        def repeat(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.repeat_interleave(amount, dim=0)

        posterior = self.posterior
        if posterior is not None:
            posterior = replace(posterior, parameters=repeat(posterior.parameters))
        mask = None if self.noise_mask is None else repeat(self.noise_mask)
        return replace(self, samples=repeat(self.samples), posterior=posterior, noise_mask=mask)

    # Read-only dict access for ComfyUI-style node packs (see the class docstring).

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in COMFY_KEYS:
            raise KeyError(f"{key!r}: a Latent reads only {' and '.join(map(repr, COMFY_KEYS))} by key")
        value: torch.Tensor | None = getattr(self, key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self else default

    def __contains__(self, key: object) -> bool:
        return key in COMFY_KEYS and getattr(self, str(key)) is not None


def as_latent(value: Latent | Mapping[str, Any]) -> Latent:
    """A LATENT input as a `Latent`: itself, or one read from a ComfyUI-style dict {"samples", and
    optionally "noise_mask"} that a node pack made."""
    if isinstance(value, Latent):
        return value
    if isinstance(value, Mapping) and "samples" in value:
        mask = value.get("noise_mask")
        if mask is not None and mask.dim() == 3:
            mask = mask[:, None]  # ComfyUI's masks may come without the channel
        return Latent(value["samples"], noise_mask=mask)
    raise TypeError(
        f"a LATENT input got {type(value).__name__}; it takes a Latent (depthgraph.nodes.latent_value) "
        'or a dict with "samples"'
    )
