"""Aggregation tests: markers, memory guard, and a 2-slice chain proven for aggregation.

``bigmem`` tests need many GB of free memory (aggregation keys and proofs: 7-20 GB); they are skipped
unless ``MemAvailable`` covers their need plus 2 GB, so a shared machine never runs out of memory.
``slow`` tests take minutes.
"""
from __future__ import annotations

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


@pytest.fixture(autouse=True)
def _memory_guard(request):
    m = request.node.get_closest_marker("bigmem")
    if m is not None:
        need = float(m.args[0]) if m.args else 8.0
        have = mem_available_gb()
        if have < need + 2:
            pytest.skip(f"needs {need:.0f} GB free memory (+2 GB margin), {have:.1f} GB available")
