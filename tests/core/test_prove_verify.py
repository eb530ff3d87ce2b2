"""Real EZKL: a 3-slice model proves and verifies, and every tampering is rejected."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import dsperse
from dsperse.util import storage
from dsperse.artifacts import Run, SliceProof
from dsperse.errors import LinkError, VerificationError
from dsperse.linking.links import links
from dsperse.proving.tasks import ProveTask, generate_witness, prove_slice, read_proof, witness_outputs
from dsperse.slicing.chain import reference_model_output

pytestmark = pytest.mark.slow


def _with_proof(run: Run, index: int, path: Path, tmp_path: Path) -> Run:
    """A copy of ``run`` whose slice ``index`` proof is ``path`` (records updated as an attacker would)."""
    dest = tmp_path / f"proof_{index}.json"
    shutil.copy(path, dest)
    proofs = list(run.proofs)
    proofs[index] = SliceProof(index, dest, storage.sha256_file(dest), 0.0)
    receipt = dataclasses.replace(run.receipt, proof_hashes=tuple(p.sha256 for p in proofs))
    return dataclasses.replace(run, proofs=proofs, receipt=receipt)


def test_three_slices_prove_verify_and_match_onnxruntime(mlp_run, mlp_input, zoo_model):
    assert len(mlp_run.proofs) == 3
    assert dsperse.verify(mlp_run, job_id="job-1", expected_input=mlp_input, reference=True)
    want = reference_model_output(zoo_model("mlp"), mlp_input).flatten()
    # stated tolerance: scale-13 fixed point keeps the error far below 1e-2 on this model
    np.testing.assert_allclose(mlp_run.output, want, atol=1e-2)
    # the run directory reloads and verifies on its own
    assert dsperse.verify(Run.load(mlp_run.workdir), job_id="job-1")
    c = mlp_run.circuits
    assert len({k.logrows for k in c}) == 1 and len({str(k.srs) for k in c}) == 1
    assert [(k.input_visibility, k.output_visibility) for k in c] == [
        ("public", "polycommit"), ("polycommit", "polycommit"), ("polycommit", "public")]


def test_boundary_commitments_line_up(mlp_run):
    raw = [read_proof(p.path).proof for p in mlp_run.proofs]
    ls = links(mlp_run.circuits, mlp_run.plan.edges)
    assert [(ln.producer_offset, ln.consumer_offset, ln.length) for ln in ls] == [(0, 0, 64), (64, 0, 64)]
    for ln in ls:
        e = ln.edge
        assert raw[e.producer][ln.producer_offset : ln.producer_offset + 64] == raw[e.consumer][ln.consumer_offset : ln.consumer_offset + 64]
    assert raw[1][0:64] != raw[1][64:128]  # the middle slice commits to two different tensors


def test_flipped_proof_byte_is_rejected(mlp_run, tmp_path):
    proof = json.loads(mlp_run.proofs[1].path.read_text())
    raw = bytearray(bytes.fromhex(proof["hex_proof"][2:]))
    raw[200] ^= 0x01
    proof["hex_proof"] = "0x" + raw.hex()
    proof["proof"] = list(raw)
    bad = tmp_path / "flipped.json"
    bad.write_text(json.dumps(proof))
    with pytest.raises(VerificationError, match="slice 1: proof rejected") as info:
        dsperse.verify(_with_proof(mlp_run, 1, bad, tmp_path))
    assert info.value.slice_index == 1


def test_swapped_intermediate_breaks_the_link(mlp_run, tmp_path):
    """Slice 1 honestly proven, but on a different intermediate: it verifies alone, the link must fail."""
    c1 = mlp_run.circuits[1]
    felts = witness_outputs(mlp_run.witnesses[0].path)
    felts[0] = "01" + "00" * 31  # a different, well-formed field element (little-endian 1)
    w = generate_witness(c1, felts, tmp_path / "w1.json")
    p = prove_slice(ProveTask.for_slice(c1, w.path, tmp_path / "p1.json"))
    forged = _with_proof(mlp_run, 1, p.path, tmp_path)
    with pytest.raises(LinkError, match="slice 0 and slice 1") as info:
        dsperse.verify(forged)
    assert info.value.slice_index == 1


def test_proof_from_another_model_is_rejected(mlp_run, zoo_model, mlp_input, cache_dir, tmp_path):
    other = dsperse.slice(zoo_model("mlp_wide"), tmp_path / "other", max_slices=3, strategy="layers")
    assert [s.op_types for s in other.slices] == [s.op_types for s in mlp_run.plan.slices]
    circuits = dsperse.compile(other, cache=cache_dir, calibration_input=mlp_input)
    w = generate_witness(circuits[0], mlp_input.flatten().tolist(), tmp_path / "w0.json")
    p = prove_slice(ProveTask.for_slice(circuits[0], w.path, tmp_path / "p0.json"))
    assert dsperse.compile(other, cache=cache_dir, calibration_input=mlp_input)[0].key_id == circuits[0].key_id
    with pytest.raises(VerificationError, match="slice 0: proof rejected"):
        dsperse.verify(_with_proof(mlp_run, 0, p.path, tmp_path))
    # swapping the verifying key along with the proof changes the model id the receipt names
    swapped = dataclasses.replace(_with_proof(mlp_run, 0, p.path, tmp_path), circuits=[circuits[0], *mlp_run.circuits[1:]])
    with pytest.raises(VerificationError, match="another model"):
        dsperse.verify(swapped)


def test_edited_public_output_is_rejected(mlp_run, tmp_path):
    proof = json.loads(mlp_run.proofs[2].path.read_text())
    proof["instances"][0][0] = proof["instances"][0][1]  # claim another output value
    bad = tmp_path / "edited.json"
    bad.write_text(json.dumps(proof))
    with pytest.raises(VerificationError, match="slice 2: proof rejected"):
        dsperse.verify(_with_proof(mlp_run, 2, bad, tmp_path))
    # editing only the receipt is caught too
    edited = dataclasses.replace(mlp_run, receipt=dataclasses.replace(mlp_run.receipt, output=(9.0, 9.0, 9.0)))
    with pytest.raises(VerificationError, match="de-quantized output"):
        dsperse.verify(edited)
    felts = list(mlp_run.receipt.output_felts)
    felts[0] = felts[1]
    edited = dataclasses.replace(mlp_run, receipt=dataclasses.replace(mlp_run.receipt, output_felts=tuple(felts)))
    with pytest.raises(VerificationError, match="output is not the output"):
        dsperse.verify(edited)


def test_replay_for_another_job_or_input_is_rejected(mlp_run, mlp_input):
    with pytest.raises(VerificationError, match="not 'job-2'"):
        dsperse.verify(mlp_run, job_id="job-2")
    with pytest.raises(VerificationError, match="different input"):
        dsperse.verify(mlp_run, expected_input=mlp_input + 0.5)


def test_describe_with_circuits_sums_the_rows_it_shows(mlp_plan, mlp_circuits):
    """With circuits, every row and the footer are EZKL's counts (the footer once summed the planner's estimate)."""
    text = mlp_plan.describe(mlp_circuits)
    rows = [c.num_rows for c in mlp_circuits]
    assert f"total rows {sum(rows):,}; largest {max(rows):,}" in text
