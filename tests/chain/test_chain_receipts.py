"""ProofOfInference on a real anvil: honest receipts land, every forgery reverts with its reason."""
from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest
from eth_utils import keccak

import dsperse
from dsperse.chain.client import Submission, expected_hashes, felt_to_uint, submission_from_run
from dsperse.chain.toolchain import find_toolchain
from dsperse.chain.verifiers import slice_verifier
from dsperse.errors import TransactionRevertedError
from dsperse.proving.tasks import ProveTask, generate_witness, prove_slice, witness_outputs

pytestmark = pytest.mark.slow


def _proof(path: Path) -> tuple[str, tuple[int, ...]]:
    data = json.loads(Path(path).read_text())
    return data["hex_proof"], tuple(felt_to_uint(f) for col in data["instances"] for f in col)


def _replace(sub: Submission, index: int, proof: str | None = None, instances: tuple[int, ...] | None = None) -> Submission:
    proofs, insts = list(sub.proofs), list(sub.instances)
    if proof is not None:
        proofs[index] = proof
    if instances is not None:
        insts[index] = instances
    return dataclasses.replace(sub, proofs=tuple(proofs), instances=tuple(insts))


def _reverts(chain, sub: Submission, reason: str) -> None:
    with pytest.raises(TransactionRevertedError) as info:
        chain.submit_raw(sub)
    assert info.value.reason == reason


def test_commitment_offsets_in_slice_proofs(mlp_run):
    """The link bytes the contract compares: slice 0 out [0:64], middle in [0:64] / out [64:128], last in [0:64]."""
    p = [bytes.fromhex(_proof(r.path)[0][2:]) for r in mlp_run.proofs]
    assert p[0][0:64] == p[1][0:64]
    assert p[1][64:128] == p[2][0:64]
    assert p[1][0:64] != p[1][64:128]
    assert p[0][64:128] != p[1][0:64]  # slice 0 has a public input: only one commitment, at the front


def test_honest_submit_stores_the_runs_receipt(chain, model_id, honest, mlp_run):
    assert chain.model(model_id)["label"] == mlp_run.receipt.model_id
    assert honest.tx_hash and honest.gas_used > 0 and honest.block > 0
    rec = chain.receipt(mlp_run.receipt.job_id)
    assert rec is not None
    assert rec.model_id == mlp_run.receipt.model_id and rec.registry_model_id == model_id
    assert rec.receipt_id == honest.receipt_id
    assert rec.output == pytest.approx(mlp_run.receipt.output, abs=0)  # same field elements, same scale
    assert rec.output_scale == mlp_run.receipt.output_scale
    assert rec.prover == chain.address and rec.block == honest.block
    sub = submission_from_run(mlp_run)
    ih, oh = expected_hashes(sub, num_inputs=len(mlp_run.receipt.input_felts), num_outputs=len(mlp_run.receipt.output))
    assert (rec.input_hash, rec.output_hash) == (ih, oh)
    assert ih == "0x" + keccak(b"".join(felt_to_uint(f).to_bytes(32, "big") for f in mlp_run.receipt.input_felts)).hex()
    assert chain.receipt("job-never-submitted") is None


def test_cast_reads_the_same_receipt(chain, honest, mlp_run):
    """An independent client (foundry's cast) sees what web3 sees."""
    out = subprocess.run(
        [str(find_toolchain().cast), "call", chain.registry_address,
         "getReceipt(bytes32)(bytes32,bytes32,bytes32,int256[],address,uint256)", honest.receipt_id, "--rpc-url", chain.rpc_url],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split("\n")  # fmt: skip
    rec = chain.receipt(mlp_run.receipt.job_id)
    assert out[0] == "0x" + rec.registry_model_id
    assert out[1] == rec.input_hash and out[2] == rec.output_hash
    assert [int(v.split()[0]) for v in out[3].strip("[]").split(",")] == list(rec.output_ints)
    assert out[4].lower() == rec.prover.lower()
    assert int(out[5].split()[0]) == rec.block


def test_reused_job_id_is_rejected(chain, honest, mlp_run):
    with pytest.raises(TransactionRevertedError, match="job id already used"):
        chain.submit(mlp_run)


def test_flipped_proof_byte_is_rejected(chain, model_id, mlp_run):
    sub = submission_from_run(mlp_run, "flipped")
    b = bytearray.fromhex(sub.proofs[1][2:])
    b[300] ^= 0x01  # past both commitments: the link holds, the verifier must refuse
    _reverts(chain, _replace(sub, 1, proof="0x" + b.hex()), "slice proof rejected: 1")


def test_edited_output_value_is_rejected(chain, model_id, mlp_run):
    sub = submission_from_run(mlp_run, "edited-output")
    outs = list(sub.instances[2])
    outs[0] = outs[1]
    _reverts(chain, _replace(sub, 2, instances=tuple(outs)), "slice proof rejected: 2")


def test_slices_in_wrong_order_are_rejected(chain, model_id, mlp_run):
    sub = submission_from_run(mlp_run, "reordered")
    order = [0, 2, 1]
    reordered = dataclasses.replace(sub, proofs=tuple(sub.proofs[i] for i in order), instances=tuple(sub.instances[i] for i in order))
    _reverts(chain, reordered, "link mismatch on edge 0")


def test_wrong_slice_count_and_unknown_model_are_rejected(chain, model_id, mlp_run):
    sub = submission_from_run(mlp_run, "short")
    _reverts(chain, dataclasses.replace(sub, proofs=sub.proofs[:2], instances=sub.instances[:2]), "slice count mismatch")
    _reverts(chain, dataclasses.replace(sub, model_id="0x" + "ab" * 32), "unknown model")


def test_swapped_intermediate_fails_the_link_check(chain, model_id, mlp_run, tmp_path):
    """Slice 1 honestly proven on another intermediate: its own verifier accepts it, the registry must not."""
    c1 = mlp_run.circuits[1]
    felts = witness_outputs(mlp_run.witnesses[0].path)
    felts[0] = "01" + "00" * 31
    w = generate_witness(c1, felts, tmp_path / "w1.json")
    forged_proof, forged_inst = _proof(prove_slice(ProveTask.for_slice(c1, w.path, tmp_path / "p1.json")).path)

    verifier = chain.model(model_id)["verifiers"][1]
    abi = slice_verifier(c1.vk, c1.settings, c1.srs).contract.abi
    alone = chain.contract(verifier, abi).functions.verifyProof(bytes.fromhex(forged_proof[2:]), list(forged_inst)).call()
    assert alone is True

    sub = submission_from_run(mlp_run, "swapped-intermediate")
    _reverts(chain, _replace(sub, 1, proof=forged_proof, instances=forged_inst), "link mismatch on edge 0")


def test_slice_proof_from_another_model_is_rejected(chain, model_id, mlp_run, zoo_model, mlp_input, cache_dir, tmp_path):
    other = dsperse.slice(zoo_model("mlp_wide"), tmp_path / "other", max_slices=3, strategy="layers")
    circuits = dsperse.compile(other, cache=cache_dir, calibration_input=mlp_input)
    w = generate_witness(circuits[0], mlp_input.flatten().tolist(), tmp_path / "w0.json")
    proof, inst = _proof(prove_slice(ProveTask.for_slice(circuits[0], w.path, tmp_path / "p0.json")).path)
    sub = submission_from_run(mlp_run, "other-model")
    assert inst == sub.instances[0]  # same public input: only the model differs
    _reverts(chain, _replace(sub, 0, proof=proof, instances=inst), "link mismatch on edge 0")


def test_a_landed_receipt_is_recorded_in_the_proof_ledger(chain, honest, mlp_run):
    """ReceiptChain.submit appends a submit row (tx, gas, block, chain) to the ledger ($DSPERSE_LEDGER in tests)."""
    from dsperse.tools.ledger import Ledger

    rows = Ledger().read(event="submit").to_pylist()
    mine = [r for r in rows if r["tx_hash"] == honest.tx_hash]
    assert len(mine) == 1
    assert (mine[0]["gas"], mine[0]["block"], mine[0]["chain_id"]) == (honest.gas_used, honest.block, chain.chain_id)
    assert mine[0]["model_id"] == mlp_run.receipt.model_id
