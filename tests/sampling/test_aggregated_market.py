"""The market settles audits with AGGREGATED receipts: they live in the same ProofOfInference registry as
linked ones (same receipt ids, same commit-reveal), so the market reads them through the same getReceipt.

The aggregate verifier is a stand-in that accepts every proof (a real k=21 aggregate needs a >= 20 GB node):
what is under test is the path from registry to market, which is the same for a real verifier.
"""
from __future__ import annotations

import pytest

from dsperse.aggregation import receipt as R
from dsperse.chain import ReceiptChain
from dsperse.chain.encoding import FIELD
from dsperse.errors import TransactionRevertedError
from dsperse.sampling.market import ETHER, Challenger, Operator, Requester, Status, input_commitment, mine, output_hash

FEE = ETHER // 100
WINDOWS = dict(commit_window=5, audit_delay=2, proof_window=10, challenge_window=8, unstake_delay=4)
ACCEPT_ALL = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;
contract AcceptAllVerifier {
    fallback(bytes calldata) external returns (bytes memory) { return abi.encode(true); }
}
"""
INPUT, OUTPUT = [1, 2, 3, 4], [7, -8, 9]


@pytest.fixture(scope="module")
def aggregated(chain, keys, tmp_path_factory):
    """(operator's ReceiptChain, 0x model id, layout): a registry on this module's anvil with one aggregated
    model (two hashed-linked groups) registered by the operator."""
    work = tmp_path_factory.mktemp("agg-market")
    (work / "AcceptAllVerifier.sol").write_text(ACCEPT_ALL)
    client = ReceiptChain(chain.url, private_key=keys["operator"], deployments=work / "d.json")
    lay = R.layout([R.SliceIO(5, "public", "hashed", 4, 0), R.SliceIO(4, "hashed", "public", 0, 3)], [[[0], [1]], [[0, 1]]])
    _, model = R.deploy(client, work / "AcceptAllVerifier.sol", lay, b"\x5a" * 32, output_scale=7)
    return client, model, lay


def _instances(lay: R.ReceiptLayout, outputs) -> list[int]:
    inst = [0] * lay.num_instances
    inst[lay.input_start : lay.input_start + lay.num_inputs] = INPUT
    (a, b), = lay.links
    inst[a] = inst[b] = 42
    inst[lay.output_start : lay.output_start + lay.num_outputs] = [v % FIELD for v in outputs]
    return inst


def _audited_job(deploy, poi: str, keys, w3, model: bytes, committed) -> tuple:
    """A market on ``poi`` where the operator committed ``committed`` for a job of ``model``, audited."""
    m = deploy(poi=poi, audit_bps=10_000, **WINDOWS)
    req, op = Requester(m, keys["requester"]), Operator(m, keys["operator"])
    op.stake(2 * ETHER)
    op.offer(model, FEE, 10)
    jid, _ = req.post_job(model, input_commitment(INPUT), op.address, FEE)
    op.commit(jid, output_hash(committed))
    mine(w3, WINDOWS["audit_delay"] + 1)
    assert Challenger(m, keys["anyone"]).draw_audit(jid)[0]
    return m, op, jid


def test_market_settles_an_audit_with_an_aggregated_receipt(deploy, keys, w3, aggregated, books_balance):
    client, model, lay = aggregated
    mid = bytes.fromhex(model[2:])
    m, op, jid = _audited_job(deploy, client.registry_address, keys, w3, mid, OUTPUT)
    with pytest.raises(TransactionRevertedError, match="no receipt for job"):
        op.prove_with_receipt(jid, client.receipt_id(jid))
    R.submit(client, model, jid, b"\x00", _instances(lay, OUTPUT), expected_input_hash=input_commitment(INPUT))
    rc = op.prove_with_receipt(jid, client.receipt_id(jid))
    assert m.events(rc, "ProofAccepted")[0]["provenOutputHash"] == output_hash(OUTPUT)
    assert m.job(jid).status == Status.SETTLED and m.job(jid).output_revealed
    books_balance(m)


def test_an_aggregated_receipt_proves_a_lie(deploy, keys, w3, aggregated, books_balance):
    """The operator committed another output than the model's: anyone's aggregated receipt slashes it."""
    client, model, lay = aggregated
    mid = bytes.fromhex(model[2:])
    m, op, jid = _audited_job(deploy, client.registry_address, keys, w3, mid, [0, 0, 0])
    prover = ReceiptChain(client.rpc_url, private_key=keys["anyone"], registry=client.registry_address,
                          deployments=client.deployments.path)  # fmt: skip
    R.submit(prover, model, jid, b"\x00", _instances(lay, OUTPUT))
    Challenger(m, keys["anyone"]).prove_with_receipt(jid, prover.receipt_id(jid))
    assert m.job(jid).status == Status.SLASHED
    books_balance(m)
