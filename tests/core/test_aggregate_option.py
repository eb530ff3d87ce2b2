"""prove(aggregate=True) plans before any work and refuses a plan no node can hold."""
from __future__ import annotations

import pytest

import dsperse
from dsperse.circuits.build import CircuitConfig
from dsperse.errors import AggregationError, CircuitError


def test_aggregate_refuses_before_any_work_when_no_node_fits(mlp_plan, mlp_input, tmp_path):
    with pytest.raises(AggregationError, match="GB"):
        dsperse.prove(mlp_plan, mlp_input, tmp_path, aggregate=True, config={"aggregation": {"memory_gb": 8}})
    assert not any(tmp_path.iterdir())  # nothing was compiled, witnessed or proven


def test_aggregate_with_explicit_circuits_is_refused(mlp_plan, mlp_input, tmp_path):
    with pytest.raises(dsperse.DsperseError, match="drop circuits"):
        dsperse.prove(mlp_plan, mlp_input, tmp_path, aggregate=True, circuits=[])


def test_per_slice_visibilities_must_cover_every_slice():
    cfg = CircuitConfig(per_slice=(("public", "polycommit"), ("polycommit", "public")))
    assert cfg.visibilities(1, 2) == ("polycommit", "public")
    with pytest.raises(CircuitError, match="3"):
        cfg.visibilities(0, 3)
