"""Slicing: chained slices reproduce the whole model; cuts never split a skip connection."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import dsperse
from dsperse.errors import SlicingError
from dsperse.slicing.model import load_model
from dsperse.slicing.chain import analyse, reference_model_output, reference_outputs


@pytest.mark.parametrize("name", ["mlp", "cnn", "residual", "transformer"])
@pytest.mark.parametrize("strategy", ["layers", "balanced"])
def test_chained_slices_reproduce_whole_model(zoo_model, tmp_path, name, strategy):
    path = zoo_model(name)
    plan = dsperse.slice(path, tmp_path, max_slices=4, strategy=strategy)
    assert len(plan.slices) >= 2
    x = np.random.default_rng(1).standard_normal(plan.input_shape).astype(np.float32)
    chained = reference_outputs(plan, x)[-1]
    whole = reference_model_output(path, x)
    np.testing.assert_allclose(chained, whole, rtol=1e-6, atol=1e-6)
    for s in plan.slices:  # every slice is a standalone, valid model with one input and one output
        m = onnx.load(str(s.path))
        onnx.checker.check_model(m)
        inits = {i.name for i in m.graph.initializer}
        assert [i.name for i in m.graph.input if i.name not in inits] == list(s.inputs)
        assert [o.name for o in m.graph.output] == list(s.outputs)
        assert len(s.inputs) == len(s.outputs) == 1
    assert dsperse.SlicePlan.load(tmp_path).slices == plan.slices


def test_skip_connection_is_never_cut(zoo_model):
    info = analyse(load_model(zoo_model("residual")))
    ops = [n.op_type for n in info.nodes]
    add = ops.index("Add")
    # the block forks at Relu(stem) and merges at Add: inside it two tensors are live
    fork = ops.index("Relu")
    assert not [c for c in info.valid_cuts if fork + 1 < c <= add]  # cutting right after the fork is fine
    assert all(len([info.crossing[c]]) == 1 for c in info.valid_cuts)


def test_explicit_cut_inside_skip_is_refused(zoo_model, tmp_path):
    info = analyse(load_model(zoo_model("residual")))
    inside = next(j for j in range(1, len(info.nodes)) if j not in info.valid_cuts)
    with pytest.raises(SlicingError, match="skip connection"):
        dsperse.slice(zoo_model("residual"), tmp_path, cuts=[inside])


def test_layers_strategy_keeps_activation_with_its_layer(zoo_model, tmp_path):
    plan = dsperse.slice(zoo_model("mlp"), tmp_path, strategy="layers")
    assert [s.op_types for s in plan.slices] == [("Gemm", "Relu"), ("Gemm", "Relu"), ("Gemm",)]


def test_balanced_minimises_largest_slice(zoo_model, tmp_path):
    info = analyse(load_model(zoo_model("cnn")))
    plan = dsperse.slice(zoo_model("cnn"), tmp_path, max_slices=2, strategy="balanced")
    best = min(
        max(sum(info.node_costs[:c]), sum(info.node_costs[c:])) for c in info.valid_cuts
    )
    assert max(s.cost for s in plan.slices) == best


def test_flatten_and_reshape_slice_cleanly(zoo_model, tmp_path):
    # cnn has Flatten and residual a Reshape whose shape is a constant: both may sit at a cut
    for name in ("cnn", "residual"):
        plan = dsperse.slice(zoo_model(name), tmp_path / name, max_slices=10, strategy="balanced")
        ops = [op for s in plan.slices for op in s.op_types]
        assert "Flatten" in ops or "Reshape" in ops


def test_max_slices_must_be_positive(zoo_model, tmp_path):
    with pytest.raises(SlicingError, match="max_slices"):
        dsperse.slice(zoo_model("mlp"), tmp_path, max_slices=0)


def test_ezkl_row_estimate_balances_on_real_rows(zoo_model, tmp_path):
    from dsperse import proofsystem

    plan = dsperse.slice(zoo_model("cnn"), tmp_path, max_slices=3, estimate="ezkl")
    assert len(plan.slices) == 3
    rows = []
    for s in plan.slices:
        out = tmp_path / f"s{s.index}.json"
        proofsystem.get().gen_settings(s.path, out, param_visibility="fixed")
        rows.append(__import__("json").loads(out.read_text())["num_rows"])
    costs = [s.cost for s in plan.slices]
    # a slice's cost sums its pieces' rows, each with some fixed overhead: an upper bound that tracks the real rows
    assert all(r <= c <= 3 * r for r, c in zip(rows, costs)), (rows, costs)
    assert costs != [s.cost for s in dsperse.slice(zoo_model("cnn"), tmp_path / "h", max_slices=3).slices]
