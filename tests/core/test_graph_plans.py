"""Graph plans within a target circuit size: tiling, the slice graph, every edge and column linked (issue 10)."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import dsperse
from dsperse.circuits import build as circuits_mod
from dsperse.slicing import sizing
from dsperse.util import storage
from dsperse.artifacts import Run, SliceProof
from dsperse.errors import AggregationError, LinkError, SlicingError
from dsperse.linking.links import links
from dsperse.slicing.model import load_model
from dsperse.proving.tasks import ProveTask, generate_witness, prove_slice, read_proof, witness_output_tensors
from dsperse.slicing.chain import _node_cost, reference_model_output, reference_tensors
from dsperse.slicing.tiling import tile_model


def _ort(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("spatial", [True, False], ids=["rows+channels", "channels"])
@pytest.mark.parametrize("name", ["cnn_tiled", "lenet_cifar", "mlp_gemm_wide", "resblock", "transformer", "transformer_wide", "residual"])
def test_tiling_every_tileable_op_keeps_the_function(zoo_model, name, spatial):
    """With a tiny budget every Conv/Gemm/MatMul with weights is tiled to single rows and channels (padded Convs
    and pooled ones included); onnxruntime gives the same output."""
    lm = load_model(zoo_model(name))
    shapes = {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim) for vi in lm.proto.graph.value_info}
    tiled, groups = tile_model(lm.proto, 1, lambda n: _node_cost(n, shapes) + 1, spatial=spatial)
    assert groups, f"{name}: nothing was tiled"
    assert all(len(g.tiles) >= 2 for g in groups)
    assert any(g.spatial for g in groups) == (spatial and name != "mlp_gemm_wide")  # Conv rows, sequence rows
    x = np.random.default_rng(0).standard_normal(lm.input_shape).astype(np.float32)
    np.testing.assert_allclose(_ort(tiled, x), _ort(lm.proto, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "k"), [("cnn_tiled", 15), ("lenet_cifar", 16), ("lenet_cifar", 15), ("mlp_gemm_wide", 15), ("resblock", 15), ("transformer_wide", 15)]
)
def test_tiled_plan_chained_equals_whole_model(zoo_model, tmp_path, name, k):
    path = zoo_model(name)
    plan = dsperse.slice(path, tmp_path / "p", max_logrows=k)
    assert all(s.cost <= sizing.row_budget(k) for s in plan.slices), plan.describe()
    x = np.random.default_rng(1).standard_normal(plan.input_shape).astype(np.float32)
    got = reference_tensors(plan, x)[plan.output_name]
    np.testing.assert_allclose(got, reference_model_output(path, x), rtol=1e-5, atol=1e-5)
    assert plan.consumes_model_input(0) and sum(plan.consumes_model_input(i) for i in range(len(plan.slices))) == 1
    assert plan.produces_model_output(len(plan.slices) - 1)


def test_lenet_plan_is_a_graph_of_tiles(zoo_model, tmp_path):
    """At k=16 each Conv (393 k and 240 k rows as one slice) is cut into bands of output rows over all channels.

    The bands of one Conv are byte-identical slice files (one circuit, one set of keys), and their input
    windows, with the kernel's halo, are cut by the slice upstream, which reads the model input.
    """
    plan = dsperse.slice(zoo_model("lenet_cifar"), tmp_path / "p", max_logrows=16)
    assert not plan.is_chain and plan.max_logrows == 16
    assert all(s.cost <= sizing.row_budget(16) for s in plan.slices)
    for op in ("/0/Conv", "/3/Conv"):
        tiles = [s for s in plan.slices if s.tile.startswith(f"Conv {op} rows")]
        assert len(tiles) >= 3
        assert len({s.path.read_bytes() for s in tiles}) == 1 and len({s.circuit_group for s in tiles}) == 1
        assert len({s.inputs for s in tiles}) == len(tiles)  # every band reads its own window
    first = [s for s in plan.slices if s.tile.startswith("Conv /0/Conv")]
    assert plan.consumes_model_input(0) and set(plan.slices[0].op_types) == {"Identity", "Slice"}
    for t in first:
        assert [e.producer for e in plan.edges if e.consumer == t.index] == [0]
    assert len({s.circuit_group for s in plan.slices}) <= 6 < len(plan.slices)
    text = plan.describe()
    assert "a graph" in text and "rows 0:2 (1 of 7)" in text and f"{len(plan.slices)} slices" in text
    assert f"distinct circuits {len({s.circuit_group for s in plan.slices})}" in text
    assert dsperse.SlicePlan.load(plan.root).edges == plan.edges  # the graph survives plan.json


def test_transformer_linears_are_tiled_by_sequence_rows(zoo_model, tmp_path):
    """At k=15 the feed-forward MatMuls of a 16-token block are cut into bands of tokens: one circuit per MatMul."""
    plan = dsperse.slice(zoo_model("transformer_wide"), tmp_path / "p", max_logrows=15)
    for op in ("/ff/ff.0/MatMul", "/ff/ff.2/MatMul"):
        bands = [s for s in plan.slices if s.tile.startswith(f"MatMul {op} rows")]
        assert len(bands) >= 2 and len({s.circuit_group for s in bands}) == 1


def test_chain_is_the_special_case(mlp_plan):
    assert mlp_plan.is_chain
    assert [(e.producer, e.consumer) for e in mlp_plan.edges] == [(0, 1), (1, 2)]


def _onnx_file(path: Path, node, inputs: dict, output: tuple, weights: dict) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(output[0], TensorProto.FLOAT, output[1])],
        [numpy_helper.from_array(np.full(s, 0.01, np.float32), n) for n, s in weights.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def test_planner_refuses_an_op_that_cannot_fit_and_names_it(tmp_path):
    """One output channel (one row high) of an 11x11 Conv over 16 channels is 52,800 rows: over k=15, no finer tile."""
    from onnx import helper

    conv = helper.make_node("Conv", ["x", "W"], ["y"], name="big", kernel_shape=[11, 11], strides=[1, 1], pads=[0] * 4, dilations=[1, 1])
    path = _onnx_file(tmp_path / "conv.onnx", conv, {"x": [1, 16, 11, 32]}, ("y", [1, 2, 1, 22]), {"W": (2, 16, 11, 11)})
    with pytest.raises(SlicingError, match=r"Conv 'big'.*one output channel alone needs [\d,]+ rows \(k=16\).*raise max_logrows to 16"):
        dsperse.slice(path, tmp_path / "p", max_logrows=15)


def test_planner_refuses_an_input_too_big_to_publish(tmp_path):
    from onnx import helper

    gemm = helper.make_node("Gemm", ["x", "W"], ["y"], name="wide")
    path = _onnx_file(tmp_path / "wide.onnx", gemm, {"x": [1, 40_000]}, ("y", [1, 2]), {"W": (40_000, 2)})
    with pytest.raises(SlicingError, match=r"the model input \(40,000 elements\) alone needs [\d,]+ rows"):
        dsperse.slice(path, tmp_path / "p", max_logrows=15)


def test_bad_targets_are_refused(zoo_model, tmp_path):
    with pytest.raises(SlicingError, match="max_logrows must be between"):
        dsperse.slice(zoo_model("mlp"), tmp_path / "a", max_logrows=12)
    with pytest.raises(SlicingError, match="below the smallest circuit"):
        dsperse.slice(zoo_model("mlp"), tmp_path / "b", max_memory="10MB")
    with pytest.raises(SlicingError, match="cannot read a memory size"):
        dsperse.slice(zoo_model("mlp"), tmp_path / "c", max_memory="lots")


def test_memory_budget_maps_to_the_largest_k_whose_peak_fits():
    assert sizing.logrows_for_memory("4GB") == 17
    assert sizing.logrows_for_memory("8GB") == 18
    assert sizing.logrows_for_memory(sizing.peak_bytes(16)) == 16
    assert sizing.parse_bytes("512MiB") == 512 * 1024**2


# -- real proofs ---------------------------------------------------------------------------------------


def _swap_proof(run: Run, index: int, path: Path, tmp_path: Path) -> Run:
    dest = tmp_path / f"proof_{index}.json"
    shutil.copy(path, dest)
    proofs = [SliceProof(index, dest, storage.sha256_file(dest), 0.0) if p.slice_index == index else p for p in run.proofs]
    receipt = dataclasses.replace(run.receipt, proof_hashes=tuple(p.sha256 for p in proofs))
    return dataclasses.replace(run, proofs=proofs, receipt=receipt)


def _reprove_on_other_input(run: Run, index: int, tmp_path: Path, which: int = -1) -> Path:
    """A valid proof of slice ``index`` on inputs whose element ``which`` of its first input was changed."""
    plan, c = run.plan, run.circuits[index]
    values = {}
    for s, w in zip(plan.slices, run.witnesses):
        values.update(zip(s.outputs, witness_output_tensors(w.path)))
    feeds = [list(values[t]) for t in plan.slices[index].inputs]
    feeds[0][which] = feeds[0][which - 1] if feeds[0][which] != feeds[0][which - 1] else "01" + "00" * 31
    w = generate_witness(c, feeds, tmp_path / "w_forged.json")
    out = tmp_path / "forged.json"
    prove_slice(ProveTask.for_slice(c, w.path, out))
    return out


@pytest.mark.slow
def test_graph_run_verifies_against_onnxruntime(graph_run):
    plan = graph_run.plan
    assert not plan.is_chain and len(plan.edges) > len(plan.slices) - 1
    assert {c.logrows for c in graph_run.circuits} == {15}
    tiles = [c for s, c in zip(plan.slices, graph_run.circuits) if s.tile.startswith("Conv")]
    assert len(tiles) >= 2 and len({c.key_id for c in tiles}) == 1  # spatial tiles: one circuit, one setup
    assert dsperse.verify(graph_run, reference=True, job_id="graph-1")
    assert len(links(graph_run.circuits, plan.edges)) == len(plan.edges)


@pytest.mark.slow
def test_graph_swapped_intermediate_on_a_merge_slice_is_rejected(graph_run, tmp_path):
    """The last slice reads several tiles; a valid proof of it on another tile value breaks that edge's link."""
    last = len(graph_run.plan.slices) - 1
    forged = _reprove_on_other_input(graph_run, last, tmp_path)
    with pytest.raises(LinkError, match=f"and slice {last}"):
        dsperse.verify(_swap_proof(graph_run, last, forged, tmp_path))


@pytest.mark.slow
def test_graph_band_proofs_swapped_between_bands_are_rejected(graph_run, tmp_path):
    """Two bands share one circuit, so each one's proof verifies in the other's place; the links do not."""
    plan = graph_run.plan
    a, b = [s.index for s in plan.slices if s.tile.startswith("Conv")][:2]
    assert graph_run.circuits[a].key_id == graph_run.circuits[b].key_id
    swapped = _swap_proof(graph_run, a, graph_run.proofs[b].path, tmp_path)
    swapped = _swap_proof(swapped, b, graph_run.proofs[a].path, tmp_path)
    with pytest.raises(LinkError, match=f"slice {a}|slice {b}"):
        dsperse.verify(swapped)


@pytest.mark.slow
def test_multi_column_middle_slice_links_honestly(wide_run):
    """Slice 1's input and output both span two columns; every column is linked and the run verifies."""
    lay = wide_run.circuits[1].layout
    assert [(t.role, t.columns, t.offset) for t in lay] == [("input", 2, 0), ("output", 2, 128)]
    ls = links(wide_run.circuits, wide_run.plan.edges)
    assert [(ln.producer_offset, ln.consumer_offset, ln.length) for ln in ls] == [(0, 0, 128), (128, 0, 128)]
    # the witness's own commitment lists agree with the layout derived from settings
    w = json.loads(Path(wide_run.witnesses[1].path).read_text())
    assert [len(t) for t in w["processed_inputs"]["polycommit"]] == [2]
    assert [len(t) for t in w["processed_outputs"]["polycommit"]] == [2]
    assert dsperse.verify(wide_run, reference=True)


@pytest.mark.slow
def test_multi_column_boundary_with_last_element_tampered_is_rejected(wide_run, tmp_path):
    """Slice 1 re-proven with the LAST of its 33,000 input elements changed: column 0 still matches, column 1 not.

    A check of the first 64 bytes (the old link) would accept this proof.
    """
    forged = _reprove_on_other_input(wide_run, 1, tmp_path, which=-1)
    raw0 = read_proof(wide_run.proofs[0].path).proof
    raw1 = read_proof(forged).proof
    assert raw0[0:64] == raw1[0:64] and raw0[64:128] != raw1[64:128]
    with pytest.raises(LinkError, match="column 1 of 2"):
        dsperse.verify(_swap_proof(wide_run, 1, forged, tmp_path))


@pytest.mark.slow
def test_compile_once_prove_reuses_recorded_settings(graph_plan, graph_run, cache_dir, monkeypatch):
    """After compile, prove() of the plan finds circuits.json: no calibration, no gen_settings, no setup."""
    from dsperse.proofsystem.ezkl import EzklProofSystem

    def refuse(*a, **k):
        raise AssertionError("gen_settings ran again")

    monkeypatch.setattr(EzklProofSystem, "gen_settings", refuse)
    monkeypatch.setattr(EzklProofSystem, "calibrate_settings", refuse)
    again = circuits_mod.compile_plan(graph_plan, cache=cache_dir)
    assert [c.key_id for c in again] == [c.key_id for c in graph_run.circuits]
    assert all(c.reused for c in again)


@pytest.mark.slow
def test_aggregation_refuses_a_graph_plan_before_any_work(graph_plan, monkeypatch):
    from dsperse.proofsystem.ezkl import EzklProofSystem

    monkeypatch.setattr(EzklProofSystem, "gen_settings", lambda *a, **k: (_ for _ in ()).throw(AssertionError("work started")))
    with pytest.raises(AggregationError, match="graph plan"):
        dsperse.prove(graph_plan, np.zeros(graph_plan.input_shape, np.float32), aggregate=True, progress=False)
