"""The registry's link table on a real anvil: graph plans land, and every column of every edge is checked.

``graph_run`` is a proven tiled graph plan (several edges, not a chain); ``wide_run`` is a 3-slice chain whose
two boundaries span two commitment columns each at k=15, so a check of only the first 64 bytes would miss a
change in the second column.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import dsperse.chain
from dsperse.linking import layout, links as linking
from dsperse.chain.client import Submission, felt_to_uint, job_id_bytes, model_spec, registry_model_id, submission_from_run
from dsperse.chain.verifiers import slice_verifier
from dsperse.errors import LinkError, TransactionRevertedError
from dsperse.proving.tasks import ProveTask, generate_witness, prove_slice, read_proof, witness_outputs

pytestmark = pytest.mark.slow

COL = layout.G1_BYTES
CODE_SIZE_LIMIT = 256 * 1024
"""The wide slices' verifiers (a 33,000-element Neg folded into many columns) exceed EIP-170's 24,576 bytes
(the middle one is 48,844), so this module's anvil runs with a larger code size limit."""


@pytest.fixture(scope="module")
def chain(toolchain, deployments_file):
    """A ReceiptChain on a fresh anvil without EIP-170's limit; stopped when the module ends."""
    with dsperse.chain.local(deployments=deployments_file, code_size_limit=CODE_SIZE_LIMIT) as client:
        yield client


def _replace(sub: Submission, index: int, proof: str, instances: tuple[int, ...] | None = None) -> Submission:
    proofs, insts = list(sub.proofs), list(sub.instances)
    proofs[index] = proof
    if instances is not None:
        insts[index] = instances
    return dataclasses.replace(sub, proofs=tuple(proofs), instances=tuple(insts))


def _reverts(chain, sub: Submission, reason: str) -> None:
    with pytest.raises(TransactionRevertedError) as info:
        chain.submit_raw(sub)
    assert info.value.reason == reason


def _proof(path: Path) -> tuple[str, tuple[int, ...]]:
    data = json.loads(Path(path).read_text())
    return data["hex_proof"], tuple(felt_to_uint(f) for col in data["instances"] for f in col)


def _out(c, index: int = 0) -> layout.CommittedTensor:
    return layout.find(linking.circuit_layout(c), "output", index)


def _in(c, index: int = 0) -> layout.CommittedTensor:
    return layout.find(linking.circuit_layout(c), "input", index)


@pytest.fixture(scope="module")
def wide_model(chain, wide_run) -> str:
    return chain.register_model(wide_run)


@pytest.fixture(scope="module")
def wide_honest(chain, wide_model, wide_run):
    return chain.submit(wide_run)


def test_graph_plan_receipt_lands_on_chain(chain, graph_run):
    plan = graph_run.plan
    assert not plan.is_chain and len(plan.edges) > len(plan.slices) - 1  # a real graph: more edges than a chain
    model_id = chain.register_model(graph_run)
    assert chain.model(model_id)["label"] == graph_run.receipt.model_id

    m = chain.model(model_id)
    assert m["links"] == list(model_spec(graph_run).links) and len(m["links"]) == len(plan.edges)
    for (p, p_off, c, c_off, length), e in zip(m["links"], plan.edges):
        assert (p, c) == (e.producer, e.consumer) and length % COL == 0
        assert (p_off, c_off, length) == (_out(graph_run.circuits[p], e.output_index).offset,
                                          _in(graph_run.circuits[c], e.input_index).offset,
                                          _in(graph_run.circuits[c], e.input_index).length)  # fmt: skip

    result = chain.submit(graph_run)
    assert result.tx_hash and result.gas_used > 0
    rec = chain.receipt(graph_run.receipt.job_id)
    assert rec is not None and rec.registry_model_id == model_id and rec.block == result.block
    assert rec.output == pytest.approx(graph_run.receipt.output, abs=0)
    assert rec.output_scale == graph_run.receipt.output_scale
    print(f"\ngraph receipt: {len(plan.slices)} slices, {len(plan.edges)} edges, submit gas {result.gas_used:,}")


def test_multi_column_middle_slice_links_honestly_on_chain(chain, wide_model, wide_honest, wide_run):
    c0, c1, c2 = wide_run.circuits
    assert _in(c1).columns == _out(c1).columns == 2  # the middle slice's input and output span two columns
    assert (_out(c1).offset, _in(c1).offset) == (2 * COL, 0)
    assert chain.model(wide_model)["links"] == [(0, 0, 1, 0, 2 * COL), (1, 2 * COL, 2, 0, 2 * COL)]

    assert wide_honest.tx_hash and wide_honest.gas_used > 0
    rec = chain.receipt(wide_run.receipt.job_id)
    assert rec is not None and rec.registry_model_id == wide_model
    assert rec.output == pytest.approx(wide_run.receipt.output, abs=0)
    print(f"\nwide receipt: 3 slices, 2 edges of 2 columns, submit gas {wide_honest.gas_used:,}")


def test_multi_column_link_tamper_last_column_reverts_on_chain(chain, wide_model, wide_run):
    out = _out(wide_run.circuits[0])
    assert out.columns == 2
    sub = submission_from_run(wide_run, "tamper-last-column")
    b = bytearray.fromhex(sub.proofs[0][2:])
    b[out.offset + COL * (out.columns - 1) + 17] ^= 0x01  # inside the last column; the first column is intact
    tampered = _replace(sub, 0, "0x" + b.hex())

    proofs = [read_proof(p.path) for p in wide_run.proofs]
    proofs[0] = dataclasses.replace(proofs[0], proof=bytes(b))
    with pytest.raises(LinkError, match="column 1 of 2"):  # off-chain sees the same column
        linking.check_links(proofs, wide_run.circuits, wide_run.plan.edges)
    _reverts(chain, tampered, "link mismatch on edge 0")  # the link check runs before any verifier


def test_multi_column_swapped_intermediate_in_last_column_reverts(chain, wide_model, wide_run, tmp_path):
    """A real attack: slices 1 and 2 honestly proven on an intermediate that differs only in its second column.

    Each forged proof is accepted by its own verifier and the forged slices link to each other; only the second
    column of edge 0 tells them apart, and the registry refuses the job.
    """
    c0, c1, c2 = wide_run.circuits
    felts = witness_outputs(wide_run.witnesses[0].path)
    assert len(felts) == _out(c0).size == 33000
    forged = list(felts)
    forged[-4:] = ["01" + "00" * 31] * 4  # the last elements: in the second column, and read by slice 2
    w1 = generate_witness(c1, forged, tmp_path / "w1.json")
    p1, i1 = _proof(prove_slice(ProveTask.for_slice(c1, w1.path, tmp_path / "p1.json")).path)
    w2 = generate_witness(c2, witness_outputs(w1.path), tmp_path / "w2.json")
    p2, i2 = _proof(prove_slice(ProveTask.for_slice(c2, w2.path, tmp_path / "p2.json")).path)

    sub = submission_from_run(wide_run, "swapped-second-column")
    assert i2 != sub.instances[2]  # the forgery changes the receipt's output
    honest0 = bytes.fromhex(sub.proofs[0][2:])
    forged1 = bytes.fromhex(p1[2:])
    assert forged1[0:COL] == honest0[0:COL]  # a first-column-only check would let this through
    assert forged1[COL : 2 * COL] != honest0[COL : 2 * COL]

    m = chain.model(wide_model)
    for c, addr, proof, inst in ((c1, m["verifiers"][1], p1, i1), (c2, m["verifiers"][2], p2, i2)):
        abi = slice_verifier(c.vk, c.settings, c.srs, size_limit=None).contract.abi
        assert chain.contract(addr, abi).functions.verifyProof(bytes.fromhex(proof[2:]), list(inst)).call() is True

    forged_sub = _replace(_replace(sub, 1, p1, i1), 2, p2, i2)
    _reverts(chain, forged_sub, "link mismatch on edge 0")


def test_bad_link_tables_are_refused_and_a_squat_with_other_links_blocks_nobody(toolchain, wide_run, tmp_path):
    with dsperse.chain.local(deployments=tmp_path / "deployments.json", code_size_limit=CODE_SIZE_LIMIT) as other:
        spec = model_spec(wide_run)
        reg = other.registry(deploy=True)
        verifiers = [other.deploy_verifier(c) for c in spec.circuits]

        def register(model: bytes, links) -> None:
            other.transact(reg.functions.registerModel(model, verifiers, spec.io, [list(ln) for ln in links]))

        # the contract's own validation
        bad = {
            "link 0: producer not before consumer": [(1, 2 * COL, 1, 0, 2 * COL), spec.links[1]],
            "link 1: slice out of range": [spec.links[0], (1, 2 * COL, 3, 0, 2 * COL)],
            "link 0: length not a whole number of columns": [(0, 0, 1, 0, 100), spec.links[1]],
            "link 1: length not a whole number of columns": [spec.links[0], (1, 2 * COL, 2, 0, 0)],
            "slice 2 has no incoming link": [spec.links[0]],
        }
        for i, (reason, links) in enumerate(bad.items()):
            with pytest.raises(TransactionRevertedError) as info:
                register(job_id_bytes(f"bad-links-{i}"), links)
            assert info.value.reason == reason

        # a squatter registers the real model's label with the same verifiers, checking only the first column of
        # edge 0: that is another content id, so the honest registration and its receipts are untouched
        first_column_only = [(0, 0, 1, 0, COL), spec.links[1]]
        register(job_id_bytes(spec.model_id), first_column_only)
        squat_id = registry_model_id(dataclasses.replace(spec, links=tuple(first_column_only)))
        assert other.model(squat_id)["links"] == first_column_only
        honest_id = other.register_model(wide_run)
        assert "0x" + honest_id != squat_id and other.model(honest_id)["links"] == list(spec.links)
        assert other.submit(wide_run, "on-a-squatted-label").receipt_id
        assert other.receipt("on-a-squatted-label").registry_model_id == honest_id
