"""What every model module shares: the error they raise and the facts that make a depth model."""

SINGLE_FILE_SUFFIXES = (".ckpt", ".safetensors")  # checkpoint files, as A1111 and ComfyUI keep them
DEPTH_UNET_CHANNELS = 5  # 4 latent channels + 1 depth channel


class ModelError(Exception):
    """A model that cannot be found or loaded; the message says what to do."""
