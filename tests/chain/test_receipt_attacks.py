"""Attacks on ProofOfInference receipts (issue 11, items 1, 2 and 5), each on a real anvil with real proofs.

`pytest -k squat`, `-k front_run`, `-k multi_tx` select them. Each test fails with its defence removed:
- squat: model ids are content hashes (modelKey), so a label registered first with other fields blocks nobody;
  receipts are keyed by (prover, job), so taking a job id first blocks nobody;
- front_run: a receipt needs the prover's own commitment to its proofs in an earlier block, so proofs copied
  from the mempool (even with the commitment copied too) do not land under the copier's name;
- multi_tx: a plan over one block's gas is sent in parts, links across parts checked against kept hashes.
"""
from __future__ import annotations


import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak

import dsperse.chain
from dsperse.chain.client import (
    OutOfGasError,
    ReceiptChain,
    commitment_of,
    job_id_bytes,
    model_spec,
    registry_model_id,
    submission_from_run,
)
from dsperse.errors import ChainError, TransactionRevertedError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def other(chain, deployments_file) -> ReceiptChain:
    """Another account on the same chain and registry: the attacker."""
    chain.registry(deploy=True)
    return ReceiptChain(chain.rpc_url, private_key=chain.owner.accounts[1][1], registry=chain.registry_address,
                        deployments=deployments_file)  # fmt: skip


def _calldata(chain, sub):
    reg = chain.registry()
    return reg, (job_id_bytes(sub.job_id), job_id_bytes(sub.model_id), [bytes.fromhex(p[2:]) for p in sub.proofs],
                 [list(c) for c in sub.instances])  # fmt: skip


def test_squat_of_a_model_label_with_other_fields_blocks_nobody(chain, other, mlp_run):
    """The attacker registers the honest model's label first, same verifiers, but another input count and scale
    (every receipt would hash another input and de-quantize wrongly). It gets its own id; the honest
    registration still lands under the content id that receipts and verify(chain=) use."""
    spec = model_spec(mlp_run)
    verifiers = [chain.deploy_verifier(c) for c in spec.circuits]
    reg = other.registry()
    label, _, (in_scale, out_scale, n_in, n_out), links = spec.registration(verifiers)
    squat = (label, verifiers, (in_scale + 1, out_scale, n_in + 1, n_out), links)
    squat_id = bytes(reg.functions.modelKey(*squat).call()).hex()
    other.transact(reg.functions.registerModel(*squat))
    assert other.model(squat_id)["label"] == spec.model_id  # the label is taken...

    honest_id = chain.register_model(mlp_run)  # ...and blocks nothing
    assert honest_id != squat_id and "0x" + honest_id == registry_model_id(spec)
    m = chain.model(honest_id)
    assert (m["num_inputs"], m["input_scale"]) == (spec.num_inputs, spec.input_scale)
    assert dsperse.verify(mlp_run, chain=chain)
    assert chain.register_model(mlp_run) == honest_id  # idempotent: the same content is the same id

    with pytest.raises(TransactionRevertedError, match="model already registered"):
        other.transact(reg.functions.registerModel(*squat))


def test_squat_of_a_job_id_by_another_prover_blocks_nobody(chain, other, mlp_run):
    """The attacker lands a receipt for job 'job-squat' first (here: with the same valid proofs). The honest
    prover's receipt of the same job id still lands, under its own receipt id."""
    chain.register_model(mlp_run)
    first = other.submit(mlp_run, job_id="job-squat", register=False)
    mine = chain.submit(mlp_run, job_id="job-squat", register=False)
    assert first.receipt_id != mine.receipt_id
    assert chain.receipt("job-squat").prover == chain.address
    assert chain.receipt("job-squat", prover=other.address).prover == other.address
    with pytest.raises(TransactionRevertedError, match="job id already used"):  # a replay by the same prover
        chain.submit(mlp_run, job_id="job-squat", register=False)


def test_receipt_id_binds_chain_registry_prover_and_job(chain, other, mlp_run):
    jid = job_id_bytes("any-job")
    want = keccak(abi_encode(["uint256", "address", "address", "bytes32"],
                             [chain.chain_id, chain.registry_address, chain.address, jid]))  # fmt: skip
    assert chain.receipt_id(jid) == want
    assert other.receipt_id(jid) != want  # another prover
    second = ReceiptChain(chain.rpc_url, private_key=chain.owner.accounts[0][1], deployments=chain.deployments.path)
    second._registry_addr = second.deploy(dsperse.chain.client._registry_contract())
    assert second.receipt_id(jid) != want  # another registry on the same chain


def test_front_run_of_a_revealed_submission_is_refused(chain, other, mlp_run):
    """The honest prover commits, then sends its proofs. An attacker who copies that transaction (and even the
    commitment transaction before it) from the mempool and sends it from its own account first is refused:
    the commitment binds the proofs to the account that posted it."""
    chain.register_model(mlp_run)
    sub = submission_from_run(mlp_run, "job-front-run")
    c = commitment_of(sub, chain.address)
    reg, args = _calldata(chain, sub)
    digest = dsperse.chain.client.proofs_digest(sub.proofs)
    assert bytes(reg.functions.commitmentOf(chain.address, args[0], args[1], digest).call()) == c

    chain.transact(reg.functions.commit(c))
    other.transact(other.registry().functions.commit(c))  # the copied commitment (it is under the copier's name)
    with pytest.raises(TransactionRevertedError, match="no earlier commitment by this prover"):
        other.transact(other.registry().functions.submit(*args))  # the copied reveal
    with pytest.raises(TransactionRevertedError, match="no earlier commitment by this prover"):
        chain.transact(reg.functions.submit(job_id_bytes("job-front-run-2"), *args[1:]))  # a commitment is per job
    assert other.receipt("job-front-run") is None

    res = chain.submit_raw(sub)  # already committed: only the reveal is sent
    assert chain.receipt("job-front-run").prover == chain.address and res.parts == 1


def test_multi_tx_receipt_lands_in_parts_under_a_low_block_gas_limit(toolchain, mlp_run, deployments_file):
    """A 3-slice receipt (~2 M gas) on a chain whose blocks hold 1 M: sent as 3 parts; the stored receipt is the
    one-transaction receipt. Parts out of order, and a part whose input commitment differs from what the
    previous part's producer committed, revert."""
    with dsperse.chain.local(deployments=deployments_file) as c:
        key = c.register_model(mlp_run)  # verifier deployments need the default block size
        one_tx = c.submit(mlp_run, job_id="multi-ref", register=False)
        assert one_tx.parts == 1 and one_tx.gas_used > 1_000_000
        c.w3.provider.make_request("anvil_setBlockGasLimit", [hex(1_000_000)])
        c.w3.provider.make_request("evm_mine", [])
        assert c._block_gas_limit() == 1_000_000
        sub = submission_from_run(mlp_run, "multi-tx")
        with pytest.raises(OutOfGasError):
            c.transact(c.registry().functions.submit(*_calldata(c, sub)[1]))

        res = c.submit_raw(sub)
        assert res.parts == 3
        got, ref = c.receipt("multi-tx"), c.receipt("multi-ref")
        assert (got.registry_model_id, got.input_hash, got.output_ints) == (key, ref.input_hash, ref.output_ints)

        reg, (jid, mid, proofs, insts) = _calldata(c, submission_from_run(mlp_run, "multi-bad"))
        with pytest.raises(TransactionRevertedError, match="part out of order: expected slice 0"):
            c.transact(reg.functions.submitPart(jid, mid, 1, proofs[1:2], insts[1:2]))
        c.transact(reg.functions.submitPart(jid, mid, 0, proofs[:1], insts[:1]))
        forged = bytearray(proofs[1])
        forged[10] ^= 1  # slice 1's input commitment no longer equals slice 0's output commitment
        with pytest.raises(TransactionRevertedError, match="link mismatch on edge 0"):
            c.transact(reg.functions.submitPart(jid, mid, 1, [bytes(forged)], insts[1:2]))
        assert int(reg.functions.pendingNext(c.address, jid).call()) == 1


def test_squat_with_no_public_input_is_refused(chain, other, mlp_run):
    """numInputs = 0 would make every receipt's inputHash keccak of nothing: a receipt bound to no input. The
    registry refuses it for a model; only registerPart (a suffix from a committed tensor, flagged isPart) has it."""
    spec = model_spec(mlp_run)
    verifiers = [chain.deploy_verifier(c) for c in spec.circuits]
    reg = other.registry()
    label, _, (in_scale, out_scale, n_in, n_out), links = spec.registration(verifiers)
    with pytest.raises(TransactionRevertedError, match="no public inputs: the model input must be public or hashed"):
        other.transact(reg.functions.registerModel(label, verifiers, (in_scale, out_scale, 0, n_out), links))
    with pytest.raises(TransactionRevertedError, match="a part states no input"):  # nor a part that claims an input
        other.transact(reg.functions.registerPart(label, verifiers, (in_scale, out_scale, n_in, n_out), links))
    last = mlp_run.circuits[-1]
    with pytest.raises(ChainError, match="register a suffix part with part=True"):
        chain.register_model([last])
    part = chain.register_model([last], part=True)
    assert reg.functions.isPart(bytes.fromhex(part)).call() is True
    assert reg.functions.isPart(bytes.fromhex(chain.register_model(mlp_run))).call() is False
