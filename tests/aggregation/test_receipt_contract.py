"""Aggregated receipts on a real EVM (anvil), for a two-group tree: the hashed boundary between groups, the
input pin, where the output is read from, and the defences shared with linked receipts (ReceiptBase):
commit-reveal against a front-run copy, per-prover receipt ids against job-id squatting.

A real two-group aggregate needs a >= 40 GB node, so the aggregated verifier here is a stand-in that accepts
every proof: what is under test is the registry's logic around it, which runs before the verifier is called.
The real verifier is exercised by the bigmem tests (test_real_aggregation.py, test_recursion_real.py).

`pytest -k front_run`, `-k squat` select the attacks.
"""
from __future__ import annotations

import pytest

from dsperse.aggregation import receipt as R
from dsperse.chain.client import AggregatedSubmission, ReceiptChain, commitment_of
from dsperse.chain.encoding import FIELD, bytes32_id, hex32
from dsperse.errors import TransactionRevertedError

ACCEPT_ALL = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;
contract AcceptAllVerifier {
    fallback(bytes calldata) external returns (bytes memory) { return abi.encode(true); }
}
"""
LABEL = b"\x00" * 31 + b"\x07"


@pytest.fixture(scope="module")
def two_groups(toolchain, tmp_path_factory):
    """Slice 0 (public input, hashed output) and slice 1 (hashed input, public output), each its own group,
    registered as one aggregated model with the stand-in verifier."""
    import dsperse.chain

    slices = [R.SliceIO(5, "public", "hashed", 4, 0), R.SliceIO(4, "hashed", "public", 0, 3)]
    lay = R.layout(slices, [[[0], [1]], [[0, 1]]])
    work = tmp_path_factory.mktemp("receipt-contract")
    (work / "AcceptAllVerifier.sol").write_text(ACCEPT_ALL)
    chain = dsperse.chain.local(deployments=work / "deployments.json")
    try:
        _, model = R.deploy(chain, work / "AcceptAllVerifier.sol", lay, LABEL, output_scale=7)
        yield chain, model, lay
    finally:
        chain.close()


@pytest.fixture(scope="module")
def attacker(two_groups) -> ReceiptChain:
    """Another account on the same chain and registry."""
    chain = two_groups[0]
    return ReceiptChain(chain.rpc_url, private_key=chain.owner.accounts[1][1], registry=chain.registry_address,
                        deployments=chain.deployments.path)  # fmt: skip


def instances(lay: R.ReceiptLayout, boundary_in: int, boundary_out: int, outputs=(7, FIELD - 8, 9)) -> list[int]:
    inst = [0] * lay.num_instances
    inst[lay.input_start : lay.input_start + lay.num_inputs] = [1, 2, 3, 4]
    (a, b), = lay.links
    inst[a], inst[b] = boundary_in, boundary_out  # slice 0's output hash, slice 1's input hash
    inst[lay.output_start : lay.output_start + lay.num_outputs] = list(outputs)
    return inst


def test_matching_boundary_hashes_store_the_receipt(two_groups):
    chain, model, lay = two_groups
    inst = instances(lay, 99, 99)
    pinned = R.input_hash(inst, lay)
    R.submit(chain, model, b"\x31" * 32, b"\x00", inst, expected_input_hash=pinned)
    got = R.read(chain, model, b"\x31" * 32)
    assert got["input_hash"] == pinned and got["outputs"] == [7, -8, 9]
    rec = chain.receipt(b"\x31" * 32)  # the same reader as linked receipts
    assert rec.registry_model_id == model[2:] and rec.output_ints == (7, -8, 9) and rec.output_scale == 7


def test_the_model_is_content_addressed_and_registered_once(two_groups):
    chain, model, lay = two_groups
    m = chain.model(model)
    assert m["label"] == LABEL.hex() and len(m["verifiers"]) == 1 and m["num_outputs"] == 3
    assert chain.register_aggregated(LABEL, m["verifiers"][0], lay.as_abi(), 0, 7) == model[2:]  # idempotent


def test_a_swapped_intermediate_between_groups_reverts(two_groups):
    chain, model, lay = two_groups
    with pytest.raises(TransactionRevertedError, match="boundary mismatch at link 0"):
        R.submit(chain, model, b"\x32" * 32, b"\x00", instances(lay, 99, 98))


def test_another_input_than_the_pinned_one_reverts(two_groups):
    chain, model, lay = two_groups
    inst = instances(lay, 99, 99)
    other = list(inst)
    other[lay.input_start] += 1
    with pytest.raises(TransactionRevertedError, match="input differs"):
        R.submit(chain, model, b"\x33" * 32, b"\x00", other, expected_input_hash=R.input_hash(inst, lay))


def test_the_two_submission_paths_do_not_mix(two_groups, mlp_free_linked_model):
    chain, model, lay = two_groups
    reg = chain.registry()
    with pytest.raises(TransactionRevertedError, match="aggregated model: use submitAggregated"):
        chain.transact(reg.functions.submit(b"\x34" * 32, bytes32_id(model), [b"\x00"], [instances(lay, 1, 1)]))
    with pytest.raises(TransactionRevertedError, match="not an aggregated model"):
        R.submit(chain, mlp_free_linked_model, b"\x35" * 32, b"\x00", instances(lay, 1, 1))


@pytest.fixture(scope="module")
def mlp_free_linked_model(two_groups) -> str:
    """A linked (one-slice) model on the same registry, with the stand-in as its slice verifier."""
    chain, model, _ = two_groups
    verifier = chain.model(model)["verifiers"][0]
    args = (b"\x42" * 32, [verifier], (0, 7, 4, 3), [])  # label, verifiers, IO(scales, public counts), links
    reg = chain.registry()
    key = bytes(reg.functions.modelKey(*args).call())
    chain.transact(reg.functions.registerModel(*args))
    return hex32(key)


def test_front_run_copy_of_an_aggregated_receipt_is_refused(two_groups, attacker):
    """The attacker copies the honest reveal from the mempool, and the honest commitment too: with no
    commitment of its own (one binds the prover) it cannot take the receipt; the honest prover still can."""
    chain, model, lay = two_groups
    inst = instances(lay, 5, 5)
    sub = AggregatedSubmission(hex32(bytes32_id("agg-front-run")), model, "0x00", tuple(inst))
    reg, areg = chain.registry(), attacker.registry()
    chain.transact(reg.functions.commit(commitment_of(sub, chain.address)))
    attacker.transact(areg.functions.commit(commitment_of(sub, chain.address)))  # the copied commitment
    reveal = (bytes32_id(sub.job_id), bytes32_id(model), bytes(32), b"\x00", inst)
    with pytest.raises(TransactionRevertedError, match="no earlier commitment by this prover"):
        attacker.transact(areg.functions.submitAggregated(*reveal))  # the copied reveal
    assert R.read(attacker, model, sub.job_id)["block"] == 0
    rc = chain.transact(reg.functions.submitAggregated(*reveal))
    assert R.read(chain, model, sub.job_id)["prover"] == chain.address and rc["status"] == 1


def test_a_reveal_in_the_commitment_block_is_refused(two_groups):
    """The commitment must be in an EARLIER block than the reveal (else a copier could bundle both)."""
    chain, model, lay = two_groups
    sub = AggregatedSubmission(hex32(bytes32_id("agg-same-block")), model, "0x00", tuple(instances(lay, 6, 6)))
    reg = chain.registry()
    w3 = chain.w3
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        h1 = reg.functions.commit(commitment_of(sub, chain.address)).transact({"from": chain.address, "gas": 200_000})
        h2 = reg.functions.submitAggregated(bytes32_id(sub.job_id), bytes32_id(model), bytes(32), b"\x00",
                                            list(sub.instances)).transact({"from": chain.address, "gas": 1_000_000})  # fmt: skip
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    assert w3.eth.get_transaction_receipt(h1)["status"] == 1
    assert w3.eth.get_transaction_receipt(h2)["status"] == 0


def test_squat_of_an_aggregated_job_id_blocks_nobody(two_groups, attacker):
    """The attacker takes the honest job id first, with its own (accepted) aggregate and another output:
    receipts are per prover, so the honest receipt still lands under the honest id, with the honest output."""
    chain, model, lay = two_groups
    job = "agg-squat"
    R.submit(attacker, model, job, b"\x00", instances(lay, 7, 7, outputs=(1, 1, 1)))
    R.submit(chain, model, job, b"\x00", instances(lay, 7, 7))
    assert R.read(attacker, model, job)["outputs"] == [1, 1, 1]
    honest = R.read(chain, model, job)
    assert honest["outputs"] == [7, -8, 9] and honest["prover"] == chain.address
    assert chain.receipt_id(job) != chain.receipt_id(job, attacker.address)
    with pytest.raises(TransactionRevertedError, match="job id already used"):  # a replay by the same prover
        R.submit(chain, model, job, b"\x00", instances(lay, 7, 7))
