"""What node tests share: a list that collects a node's warnings (the folders are in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def warnings() -> list[str]:
    """Pass `warned=warnings.append` to a NodeContext to see what a node warned about."""
    return []
