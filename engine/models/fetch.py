"""Downloading a depth model in diffusers layout (on a machine with internet)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_REPO = "stabilityai/stable-diffusion-2-depth"
# The diffusers layout in safetensors only: no pickled .bin/.ckpt files, no single-file checkpoint.
PATTERNS = [
    "model_index.json",
    "*/config.json",
    "*/*.safetensors",
    "tokenizer/*",
    "scheduler/*",
    "feature_extractor/*",
]
IGNORED = ["*.ckpt", "*.bin", "*.msgpack", "*.onnx", "*fp16*", "*.md"]


def fetch_model(models_dir: Path, repo: str = DEFAULT_REPO, revision: str | None = None) -> Path:
    """Download `repo` into `models_dir/<repo name>` and return that folder."""
    from huggingface_hub import snapshot_download

    target = models_dir / repo.rsplit("/", 1)[-1]
    target.mkdir(parents=True, exist_ok=True)
    snapshot_download(
        repo_id=repo,
        revision=revision,
        local_dir=target,
        allow_patterns=PATTERNS,
        ignore_patterns=IGNORED,
    )
    return target
