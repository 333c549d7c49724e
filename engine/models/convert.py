"""`depthgraph models convert`: a single-file checkpoint written as a diffusers-layout folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import ModelError
from .sd2_depth import SD2_DEPTH, depth_image_processor, find_tokenizer
from .single_file import DepthModelConfigs


def convert_checkpoint(path: Path, target: Path, configs: DepthModelConfigs | None = None) -> Path:
    """Write a single-file depth checkpoint as a diffusers-layout folder (safetensors weights), read
    as the yaml beside it says (or as SD2-depth), its scheduler config written with the schedule the
    model was trained with. The folder appears only when complete."""
    import shutil

    from diffusers import PNDMScheduler, StableDiffusionDepth2ImgPipeline

    from .ldm_config import architecture_of
    from .single_file import load_single_file

    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ModelError(f"{target} is not empty; give a new folder to write the converted model into")
    architecture = architecture_of(path)
    if configs is None:
        configs = architecture.configs if architecture.yaml is not None else SD2_DEPTH
    components = load_single_file(path, configs)
    components["tokenizer"] = find_tokenizer(path.parent).to_transformers()  # diffusers saves its files
    components["scheduler"] = PNDMScheduler.from_config(dict(architecture.scheduler))
    components["feature_extractor"] = depth_image_processor()  # its 384×384 DPT processor
    pipeline: Any = StableDiffusionDepth2ImgPipeline(**components)
    partial = target.with_name(f".converting-{target.name}")
    try:
        pipeline.save_pretrained(partial)
        if target.exists():
            target.rmdir()
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target
