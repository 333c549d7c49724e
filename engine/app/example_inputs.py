"""The example inputs the library graphs load (input/ in the checkout, shipped inside the package), and
their copy into a new input folder, so the library runs as it is on an installed package too."""

from __future__ import annotations

import shutil
from pathlib import Path

from .config import PACKAGE_ROOT

# pyproject.toml's package-data lists the same files; tests/test_packaging.py checks the wheel has them.
EXAMPLE_INPUTS = (
    "example.jpg",
    "example_mask.png",
    "chelsea.jpg",
    "sphere_depth.png",
    "motorcycle.jpg",
    "motorcycle_depth.png",
)
SHIPPED = PACKAGE_ROOT / "input"


def provide_example_inputs(input_dir: Path) -> list[str]:
    """Make `input_dir` with the example inputs in it if it does not exist yet; the names copied. A
    folder that exists is never touched, and the checkout's own input/ already holds them."""
    if input_dir.exists() or input_dir.resolve() == SHIPPED.resolve():
        return []
    input_dir.mkdir(parents=True)
    copied = []
    for name in EXAMPLE_INPUTS:
        if (SHIPPED / name).is_file():
            shutil.copy2(SHIPPED / name, input_dir / name)
            copied.append(name)
    return copied
