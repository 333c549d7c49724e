"""A local Ray cluster for the tests that run prompts on Ray workers, started once per session.

The workers are named actors that outlive each test's server: a test's backend attaches to them, as
a restarted server does, and clears their caches first, so each test starts cold without paying for
new worker processes. The workers run the built-in nodes and the test node pack.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from depthgraph.engine.app.config import Cluster, Settings
from depthgraph.engine.core.files import FileStore

ROOT = Path(__file__).resolve().parents[1]
TEST_PACK = "tests.engine.node_pack"


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    import ray

    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    ray.init(
        num_cpus=4,  # logical slots: two workers of one CPU each, and room for a third in some tests
        include_dashboard=False,
        namespace="depthgraph",
        logging_level="ERROR",
        log_to_driver=False,
        # Workers import the test node pack from this checkout.
        runtime_env={"env_vars": {"PYTHONPATH": python_path}},
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def worker_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("workers")
    return Settings.under(folder, device="cpu", cluster=Cluster("ray", workers=2, max_attempts=3))


MakeBackend = Callable[..., Any]


@pytest.fixture
def ray_backend(ray_session: Any, worker_settings: Settings) -> Iterator[MakeBackend]:
    """Make a backend on the session's workers for a file store (caches cleared); closed after the test."""
    from depthgraph.engine.cluster.ray_backend import RayBackend

    made: list[RayBackend] = []

    def make(files: FileStore, clean: bool = True, **cluster: Any) -> RayBackend:
        settings = replace(worker_settings, cluster=replace(worker_settings.cluster, **cluster))
        backend = RayBackend(settings, files, node_modules=[TEST_PACK])
        if clean:
            backend.free(cache=True, models=False)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
