"""The receipt path: audits settled by real ProofOfInference receipts of a real 3-slice EZKL run.

The model is registered in ProofOfInference only (the market accepts it from there); the operator
submits its slice proofs (links + three on-chain Halo2 verifications) and the market compares the
stored receipt with the committed output. A lie is proven by any matching receipt, whoever made it.
"""
from __future__ import annotations

import pytest

from dsperse.chain import ReceiptChain, submission_from_run
from dsperse.chain.client import Submission, expected_hashes
from dsperse.errors import TransactionRevertedError
from dsperse.sampling.market import (
    ETHER,
    Challenger,
    Operator,
    Requester,
    Status,
    felt_ints,
    gas_cost,
    input_commitment,
    mine,
    model_id_bytes,
    output_hash,
    suffix_mask,
)
from dsperse.sampling.reexec import felts_to_ints

FEE = ETHER // 100
WINDOWS = dict(commit_window=5, audit_delay=2, proof_window=10, challenge_window=8, unstake_delay=4)


@pytest.fixture(scope="module")
def poi(chain, keys, mlp_run, tmp_path_factory):
    """ProofOfInference on this module's anvil with the MLP registered (verifiers deployed by the operator)."""
    client = ReceiptChain(chain.url, private_key=keys["operator"], deployments=tmp_path_factory.mktemp("dep") / "d.json")
    model_hex = client.register_model(mlp_run)
    return client, bytes.fromhex(model_hex)


def _rid(result) -> bytes:
    """The registry keys receipts by (prover, job): a market names a receipt by that id."""
    return bytes.fromhex(result.receipt_id[2:])


@pytest.fixture(scope="module")
def job_io(mlp_run):
    """(input commitment, true output ints) of the run, as requester and operator compute them off chain."""
    return input_commitment(felt_ints(mlp_run.receipt.input_felts)), felts_to_ints(mlp_run.receipt.output_felts)


def test_hashes_match_the_registry(mlp_run, job_io, poi):
    client, model = poi
    sub = submission_from_run(mlp_run, "check")
    m = client.model(model.hex())
    ih, oh = expected_hashes(sub, m["num_inputs"], m["num_outputs"])
    assert ih == "0x" + job_io[0].hex() and oh == "0x" + output_hash(job_io[1]).hex()


def test_sampled_honest_operator_proves_with_receipt_and_is_paid(deploy, keys, poi, job_io, mlp_run, w3, books_balance):
    client, model = poi
    m = deploy(poi=client.registry_address, audit_bps=10_000, **WINDOWS)
    req, op, anyone = Requester(m, keys["requester"]), Operator(m, keys["operator"]), Challenger(m, keys["anyone"])
    op0 = w3.eth.get_balance(op.address)
    rc_stake = op.stake(2 * ETHER)
    rc_offer = op.offer(model, FEE, 10)
    jid, _ = req.post_job(model, job_io[0], op.address, FEE)  # model known to the registry only
    rc_commit = op.commit(jid, output_hash(job_io[1]))
    mine(w3, WINDOWS["audit_delay"] + 1)
    assert anyone.draw_audit(jid)[0]
    with pytest.raises(TransactionRevertedError, match="no receipt for job"):
        op.prove_with_receipt(jid)
    before = w3.eth.get_balance(op.address)
    res = client.submit_raw(submission_from_run(mlp_run, jid))  # the operator proves the job on chain
    submit_cost = before - w3.eth.get_balance(op.address)  # its commitment and its proofs
    rc_prove = op.prove_with_receipt(jid, _rid(res))
    assert m.events(rc_prove, "ProofAccepted")[0]["provenOutputHash"] == output_hash(job_io[1])
    assert m.job(jid).status == Status.SETTLED
    rc_wd = op.withdraw_credit()
    spent = sum(gas_cost(r) for r in (rc_stake, rc_offer, rc_commit, rc_prove, rc_wd)) + submit_cost
    assert w3.eth.get_balance(op.address) == op0 - 2 * ETHER + FEE - spent
    books_balance(m)


def test_cheater_is_slashed_by_any_matching_receipt(deploy, keys, poi, job_io, mlp_run, w3, books_balance):
    """A challenger proves the lie with a receipt it stored under its own id: the job id slot cannot be squatted."""
    client, model = poi
    m = deploy(poi=client.registry_address, audit_bps=0, **WINDOWS)
    req, op, ch = Requester(m, keys["requester"]), Operator(m, keys["operator"]), Challenger(m, keys["challenger"])
    op.stake(2 * ETHER)
    op.offer(model, FEE, 10)
    lie = list(job_io[1])
    lie[0] += 1
    jid, _ = req.post_job(model, job_io[0], op.address, FEE)
    op.commit(jid, output_hash(lie))
    ch.challenge(jid, ETHER // 10)
    ch_client = ReceiptChain(client.rpc_url, private_key=keys["challenger"], registry=client.registry_address,
                             deployments=client.deployments.path)  # fmt: skip
    receipt_id = _rid(ch_client.submit_raw(submission_from_run(mlp_run, "challenger's own job id")))
    with pytest.raises(TransactionRevertedError, match="receipt model mismatch|no receipt"):
        ch.prove_with_receipt(jid, model_id_bytes("nothing here"))
    rc = ch.prove_with_receipt(jid, receipt_id)
    ev = m.events(rc, "Slashed")[0]
    assert ev["reason"] == "proven wrong output" and ev["reporter"] == ch.address
    assert ch.credit == ETHER // 10 + ev["toReporter"]
    books_balance(m)


def test_targeted_model_always_proves_its_last_slice(deploy, keys, poi, job_io, mlp_run, w3, books_balance):
    """DSperse targeted verification: slice 2 is proven for every job, slices 0-1 are only sampled."""
    client, model = poi
    last = max(mlp_run.circuits, key=lambda c: c.slice_index)
    part_model = bytes.fromhex(client.register_model([last], part=True))  # the suffix sub-model in the registry
    m = deploy(poi=client.registry_address, audit_bps=0, **WINDOWS)
    req, op, anyone = Requester(m, keys["requester"]), Operator(m, keys["operator"]), Challenger(m, keys["anyone"])
    with pytest.raises(TransactionRevertedError, match="only the model's registry registrant"):
        req.register_model(model, 3, suffix_mask(3, 2), part_model)
    Requester(m, keys["operator"]).register_model(model, 3, suffix_mask(3, 2), part_model)  # it registered the MLP
    op.stake(2 * ETHER)
    op.offer(model, FEE, 10)
    jid, _ = req.post_job(model, job_io[0], op.address, FEE)
    op.commit(jid, output_hash(job_io[1]))
    mine(w3, WINDOWS["audit_delay"] + 1)
    assert anyone.draw_audit(jid)[0] is False
    full = submission_from_run(mlp_run)
    other_job = "0x" + model_id_bytes("part receipt of another job").hex()
    other_id = _rid(client.submit_raw(Submission(other_job, "0x" + part_model.hex(), full.proofs[-1:], full.instances[-1:])))
    with pytest.raises(TransactionRevertedError, match="part receipt is for another job"):
        op.prove_part(jid, other_id)  # one part receipt cannot serve every job
    part_id = _rid(client.submit_raw(Submission("0x" + jid.hex(), "0x" + part_model.hex(), full.proofs[-1:], full.instances[-1:])))
    with pytest.raises(TransactionRevertedError, match="no receipt for part"):
        op.prove_part(jid, jid)
    full_id = _rid(client.submit_raw(submission_from_run(mlp_run, "a full-model receipt")))
    with pytest.raises(TransactionRevertedError, match="receipt is not the always-proven part"):
        op.prove_part(jid, full_id)
    op.prove_part(jid, part_id)
    assert m.job(jid).part_proven
    mine(w3, WINDOWS["challenge_window"])
    anyone.settle(jid)
    assert m.job(jid).status == Status.SETTLED and op.credit == FEE
    books_balance(m)


def test_targeted_job_without_its_always_proven_part_is_slashed(deploy, keys, poi, job_io, mlp_run, w3, books_balance):
    client, model = poi
    last = max(mlp_run.circuits, key=lambda c: c.slice_index)
    part_model = bytes.fromhex(client.register_model([last], part=True))  # idempotent: already registered above
    m = deploy(poi=client.registry_address, audit_bps=0, **WINDOWS)
    op, anyone = Operator(m, keys["operator"]), Challenger(m, keys["anyone"])
    Requester(m, keys["operator"]).register_model(model, 3, suffix_mask(3, 2), part_model)
    op.stake(2 * ETHER)
    op.offer(model, FEE, 10)
    jid, _ = Requester(m, keys["requester"]).post_job(model, job_io[0], op.address, FEE)
    op.commit(jid, output_hash(job_io[1]))
    mine(w3, WINDOWS["audit_delay"] + 1)
    assert anyone.draw_audit(jid)[0] is False
    with pytest.raises(TransactionRevertedError, match="always-proven part not proven yet"):
        anyone.settle(jid)
    mine(w3, WINDOWS["proof_window"] + 1)
    rc = anyone.settle(jid)
    assert m.events(rc, "Slashed")[0]["reason"] == "missed always-proven part"
    assert m.job(jid).status == Status.SLASHED
    books_balance(m)
