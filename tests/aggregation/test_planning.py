"""Planning is pure arithmetic over measured figures: check the rules, the tree shapes and the refusals."""
from __future__ import annotations

import pytest

from dsperse.aggregation import planning as pl
from dsperse.errors import AggregationError

GiB = 1024**3


def test_logrows_grow_with_log2_of_proof_count():
    assert [pl.logrows_for(n) for n in (1, 2, 3, 4, 5, 8, 9)] == [21, 22, 23, 23, 24, 24, 25]
    assert pl.capacity(21) == 1 and pl.capacity(23) == 4 and pl.capacity(20) == 0
    with pytest.raises(AggregationError):
        pl.logrows_for(0)


def test_estimates_reuse_measurements_and_extrapolate_by_doubling():
    one = pl.estimate(1)
    assert one.logrows == 21
    assert one.prove.measured and one.prove.peak_bytes == pytest.approx(19.7e9)
    assert one.setup.peak_bytes == pytest.approx(11e9) and one.pk_bytes == pytest.approx(8.9e9)
    two = pl.estimate(2)
    assert two.setup.measured and two.setup.peak_bytes == pytest.approx(22e9)
    assert not two.prove.measured and two.prove.peak_bytes == pytest.approx(2 * 19.7e9)
    assert two.prove.seconds > one.prove.seconds
    assert two.mock.measured and two.mock.peak_bytes == pytest.approx(7e9)
    assert pl.srs_bytes(21) == pytest.approx(268e6, rel=0.01)
    assert "extrapolated" in two.describe() and "k=22" in two.describe()


def test_fan_in_from_node_memory():
    assert pl.max_fan_in(8 * GiB) == 0
    assert pl.max_fan_in(24 * GiB) == 1  # this machine: one proof per step (19.7 GB of 21.9 usable)
    assert pl.max_fan_in(64e9) == 2
    assert pl.max_fan_in(128e9) == 4


def test_single_step_when_the_node_holds_every_proof():
    p = pl.plan(2, 64e9)
    assert not p.recursive and p.root.inputs == (0, 1) and p.root.transcript == "evm"
    assert p.exposed_boundaries == () and p.root.logrows == 22
    assert "fan-in 2" in p.describe()


def test_tree_when_one_step_is_too_big():
    p = pl.plan(5, 64e9)
    assert p.fan_in == 2 and p.recursive
    assert p.groups == ((0, 1), (2, 3), (4,))
    assert [len(lvl) for lvl in p.levels] == [3, 2, 1]
    assert p.tree == [[[0, 1], [2, 3], [4]], [[0, 1], [2]], [[0, 1]]]  # what receipt.layout reads
    assert all(n.transcript == "poseidon" for lvl in p.levels[:-1] for n in lvl) and p.root.transcript == "evm"
    assert p.exposed_boundaries == (1, 3)
    assert p.critical_path_seconds < p.total_seconds
    assert any("accumulator" in n for n in p.notes)


def test_max_fan_caps_steps():
    p = pl.plan(4, 128e9, max_fan=2)
    assert p.fan_in == 2 and [len(lvl) for lvl in p.levels] == [2, 1]


def test_refuses_when_no_node_holds_one_proof():
    with pytest.raises(AggregationError, match=r"needs ~19.7 GB.*largest node has 8.0 GB"):
        pl.plan(1, 8e9)


def test_refuses_a_tree_that_cannot_shrink():
    with pytest.raises(AggregationError, match="only one proof per step"):
        pl.plan(3, 24 * GiB)
    assert pl.plan(1, 24 * GiB).root.logrows == 21


def test_refuses_without_memory():
    with pytest.raises(AggregationError, match="no node memory"):
        pl.plan(2, [])


def test_boundary_visibilities():
    assert pl.boundary_visibilities(3, []) == [("public", "polycommit"), ("polycommit", "polycommit"), ("polycommit", "public")]
    assert pl.boundary_visibilities(3, [0]) == [("public", "hashed"), ("hashed", "polycommit"), ("polycommit", "public")]
    assert pl.boundary_visibilities(1, []) == [("public", "public")]
    with pytest.raises(AggregationError):
        pl.boundary_visibilities(3, [2])


def test_cli_aggregate_plan_shows_the_tree_or_the_refusal(capsys, mlp_plan):
    from dsperse.cli import main

    assert main(["aggregate-plan", "3", "--aggregation-memory-gb", "64"]) == 0
    out = capsys.readouterr().out
    assert "3 slice proof(s) on nodes with 64.0 GB" in out and "level 1: 1 step(s)" in out
    assert main(["aggregate-plan", str(mlp_plan.root), "--aggregation-memory-gb", "16"]) == 2  # a plan dir: its slice count
    assert "needs ~19.7 GB for even one proof" in capsys.readouterr().err
