"""Downloading a Stable Diffusion model of any family depthgraph runs, in diffusers layout (on a machine
with internet)."""

from __future__ import annotations

import shutil
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
    """Download `repo` into `models_dir/<repo name>` and return that folder.

    The download goes to a hidden folder beside it, renamed when it is complete and checked to be a
    model depthgraph runs, so a failed or refused download leaves nothing the loader would list (it is
    removed). An existing folder of that name is never written into."""
    from huggingface_hub import snapshot_download

    from .common import ModelError
    from .importing import inspect_folder

    target = models_dir / repo.rsplit("/", 1)[-1]
    if target.exists():
        raise ModelError(f"{target} already exists; remove it first to download {repo} again")
    partial = models_dir / f".fetching-{target.name}"
    models_dir.mkdir(parents=True, exist_ok=True)
    try:
        snapshot_download(
            repo_id=repo,
            revision=revision,
            local_dir=partial,
            allow_patterns=PATTERNS,
            ignore_patterns=IGNORED,
        )
        try:
            inspect_folder(partial)
        except ModelError as error:
            problem = str(error).replace(str(partial), repo)
            raise ModelError(
                f"{repo} was downloaded but cannot be used, so it was removed: {problem}"
            ) from None
        partial.rename(target)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return target
