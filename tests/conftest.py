"""Session fixtures shared by every test area: tiny zoo models and one real proven 3-slice run.

Keys and the dev SRS live in the persistent cache ($DSPERSE_CACHE or ~/.cache/dsperse), so they are
made once per machine, never per test.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import dsperse
from dsperse.circuits import srs as srs_mod
from dsperse.tools import zoo


@pytest.fixture(scope="session", autouse=True)
def ledger_dir(tmp_path_factory) -> Iterator[Path]:
    """Every prove/verify appends to the proof ledger (dsperse.tools.ledger): keep the tests' rows out of the user's
    cache by pointing $DSPERSE_LEDGER (inherited by CLI subprocesses) at a session temp dir."""
    path = tmp_path_factory.mktemp("ledger")
    old = os.environ.get("DSPERSE_LEDGER")
    os.environ["DSPERSE_LEDGER"] = str(path)
    yield path
    if old is None:
        os.environ.pop("DSPERSE_LEDGER", None)
    else:
        os.environ["DSPERSE_LEDGER"] = old


@pytest.fixture(scope="session")
def toolchain() -> None:
    """Skip (with the reason) when anvil/cast/solc-js are not installed; .ci/run installs them."""
    from dsperse.chain.toolchain import missing_reason

    if (why := missing_reason()) is not None:
        pytest.skip(f"EVM toolchain not installed ({why})")


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return srs_mod.cache_dir()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def zoo_model(models_dir):
    """zoo_model(name) -> path of a seeded ONNX export (made once per session)."""

    def make(name: str, seed: int = 0) -> Path:
        path = models_dir / f"{name}-{seed}.onnx"
        if not path.exists():
            zoo.export(name, path, seed)
        return path

    return make


@pytest.fixture(scope="session")
def mlp_input() -> np.ndarray:
    return np.random.default_rng(42).standard_normal((1, 4)).astype(np.float32)


@pytest.fixture(scope="session")
def mlp_plan(zoo_model, tmp_path_factory) -> dsperse.SlicePlan:
    return dsperse.slice(zoo_model("mlp"), tmp_path_factory.mktemp("mlp-slices"), max_slices=3, strategy="layers")


@pytest.fixture(scope="session")
def mlp_circuits(mlp_plan, mlp_input, cache_dir):
    return dsperse.compile(mlp_plan, cache=cache_dir, calibration_input=mlp_input)


@pytest.fixture(scope="session")
def mlp_run(mlp_plan, mlp_circuits, mlp_input, tmp_path_factory) -> dsperse.Run:
    """A real, honest 3-slice run of the zoo MLP (EZKL proofs at k=15). Treat as read-only."""
    return dsperse.prove(mlp_plan, mlp_input, tmp_path_factory.mktemp("mlp-run"), circuits=mlp_circuits, job_id="job-1", progress=False)


@pytest.fixture(scope="session")
def graph_plan(zoo_model, tmp_path_factory) -> dsperse.SlicePlan:
    """The zoo's cnn_tiled planned at max_logrows=15: a source slice, Conv tiles, a merge (a graph, not a chain)."""
    return dsperse.slice(zoo_model("cnn_tiled"), tmp_path_factory.mktemp("cnn-tiled-slices"), max_logrows=15)


@pytest.fixture(scope="session")
def graph_run(graph_plan, cache_dir, tmp_path_factory) -> dsperse.Run:
    """A real proven run of the tiled graph plan (k=15). Treat as read-only."""
    x = np.random.default_rng(3).standard_normal(graph_plan.input_shape).astype(np.float32)
    return dsperse.prove(graph_plan, x, tmp_path_factory.mktemp("graph-run"), config={"paths": {"cache": cache_dir}},
                         job_id="graph-1", progress=False)  # fmt: skip


@pytest.fixture(scope="session")
def wide_run(zoo_model, cache_dir, tmp_path_factory) -> dsperse.Run:
    """A 3-slice chain at k=15 whose boundaries hold 33,000 elements: two commitment columns on each side.

    Rows over 2^15 are folded into more columns (``fold_rows``), which is how a boundary outgrows one column.
    """
    plan = dsperse.slice(zoo_model("wide_boundary"), tmp_path_factory.mktemp("wide-slices"), cuts=[3, 4])
    config = dsperse.CircuitConfig(logrows=15, fold_rows=True)
    circuits = dsperse.compile(plan, cache=cache_dir, config=config)
    x = np.array([[0.5, -1.0, 0.25, 2.0]], np.float32)
    return dsperse.prove(plan, x, tmp_path_factory.mktemp("wide-run"), circuits=circuits, config=config, job_id="wide-1",
                         progress=False)  # fmt: skip
