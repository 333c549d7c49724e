"""Finding and loading Stable Diffusion 2 depth models (see `engine.models.manager`)."""
