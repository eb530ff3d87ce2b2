"""Aggregation tests: markers, memory guard, and a 2-slice chain proven for aggregation.

``bigmem`` tests need many GB of free memory (aggregation keys and proofs: 7-20 GB); those needing 16 GB or more
also need DSPERSE_BIGMEM=1. All are skipped at collection (before their module fixtures start)
unless ``MemAvailable`` covers their need plus 2 GB, so a shared machine never runs out of memory.
``slow`` tests take minutes.
"""
from __future__ import annotations

import os

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "bigmem(gb): needs this many GB of free memory; skipped when not available")
    config.addinivalue_line("markers", "slow: takes minutes (aggregation circuits are 2^21+ rows)")


def mem_available_gb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024**2
    return 0.0


def bigmem_skip_reason(need: float) -> str | None:
    if need >= 16 and os.environ.get("DSPERSE_BIGMEM") != "1":
        # a real k=21 aggregation peaks near 20 GB: on a 24 GB CI box an OOM would take the whole suite down
        return f"needs {need:.0f} GB: opt in with DSPERSE_BIGMEM=1 (and the free memory)"
    have = mem_available_gb()
    if have < need + 2:
        return f"needs {need:.0f} GB free memory (+2 GB margin), {have:.1f} GB available"
    return None


def pytest_collection_modifyitems(config, items):
    """Skip at collection, so the expensive module fixtures (a k=21 SRS, aggregation keys) never start."""
    for item in items:
        m = item.get_closest_marker("bigmem")
        if m is not None:
            why = bigmem_skip_reason(float(m.args[0]) if m.args else 8.0)
            if why:
                item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(scope="session")
def prove_for_aggregation():
    """prove(model, x, work) -> (run, srs): the model as ONE slice, proved for aggregation (Poseidon transcript,
    the k=21 SRS's secret), as ``prove(aggregate=True)`` proves its slices."""
    import dsperse
    from dsperse.circuits import srs as srs_mod
    from dsperse.circuits.build import CircuitConfig

    def prove(model, x, work):
        plan = dsperse.slice(model, work / "slices", max_slices=1)
        srs = srs_mod.dev_srs(21)
        cfg = CircuitConfig(proof_type="for-aggr")
        circuits = dsperse.compile(plan, srs=srs.path, config=cfg)
        return dsperse.prove(plan, x, work / "run", circuits=circuits, config=cfg, progress=False), srs

    return prove
