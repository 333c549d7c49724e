"""`depthgraph models list | fetch | import | convert`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ...models.common import ModelError
from ...models.controlnets import CONTROLNET_FOLDER, find_controlnets
from ...models.convert import convert_checkpoint
from ...models.depth_estimators import DEPTH_FOLDER, find_depth_estimators
from ...models.fetch import fetch_model
from ...models.importing import import_model
from ...models.manager import ModelSource, find_models
from ..config import Settings
from ..overrides import (
    UsageError,
)
from .common import EXIT_FAILED, EXIT_OK


def models_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "list":
        for source in find_models(settings.models_dir):
            print(f"{source.describe()}: {_what_it_is(source)}")
        print(f"\ndepth estimators (DepthModelLoader; more in {settings.models_dir / DEPTH_FOLDER}):")
        for estimator in find_depth_estimators(settings.models_dir):
            print(estimator.describe())
        print(f"\nControlNets (ControlNetLoader; more in {settings.models_dir / CONTROLNET_FOLDER}):")
        for controlnet in find_controlnets(settings.models_dir):
            print(controlnet.describe())
        return EXIT_OK
    if args.action == "convert":
        if not args.checkpoint.is_file():
            raise UsageError(f"checkpoint {args.checkpoint} does not exist")
        try:
            folder = convert_checkpoint(args.checkpoint, args.folder)
        except ModelError as error:
            print(f"depthgraph: {error}", file=sys.stderr)
            return EXIT_FAILED
        print(f"{args.checkpoint} is now the diffusers folder {folder}")
        return EXIT_OK
    if args.action == "import" or (args.action == "fetch" and Path(args.repo).expanduser().exists()):
        return _import_model(args.path if args.action == "import" else Path(args.repo), args, settings)
    try:
        folder = fetch_model(settings.models_dir, args.repo, args.revision)
    except ModelError as error:
        print(f"depthgraph: {error}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # network, authentication, disk: all end the same way for the user
        print(f"depthgraph: could not download {args.repo}: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.repo} is in {folder}; pick it with ckpt_name={folder.name}")
    return EXIT_OK


def _what_it_is(source: ModelSource) -> str:
    """Its family and what it can do, and what that was told by (nothing is loaded)."""
    try:
        info = source.info()
    except ModelError as error:
        return f"cannot be used: {error}"
    told = "" if info.told_by in ("", "built in") else f" [told by {info.told_by}]"
    return info.summary() + told


def _import_model(path: Path, args: argparse.Namespace, settings: Settings) -> int:
    try:
        report = import_model(
            path, settings.models_dir, getattr(args, "name", None), getattr(args, "link", False)
        )
    except ModelError as error:
        print(f"depthgraph: {error}", file=sys.stderr)
        return EXIT_FAILED
    how = "linked as" if report.linked else "copied to"
    print(f"{path} {how} {report.target}")
    for finding in report.findings:
        print(f"  {finding}")
    print(f"pick it with {report.picked_by}={report.name}")
    return EXIT_OK
