"""Validator re-execution with real EZKL: two honest witness generations give identical outputs.

This is what makes the validator path of PoSPMarket sound: EZKL's quantized witness is integer
arithmetic in a prime field, so honest validators agree bit for bit and can vote on a hash.
"""
from __future__ import annotations

from dsperse.sampling.market import felt_ints, output_hash
from dsperse.sampling.reexec import SliceCircuit, felts_to_ints, reexecute, witness_output_felts


def _circuits(run):
    return [SliceCircuit(c.compiled, c.vk, c.srs) for c in sorted(run.circuits, key=lambda c: c.slice_index)]


def test_two_witness_generations_agree_and_match_the_proven_output(mlp_run, mlp_input, tmp_path):
    circuits = _circuits(mlp_run)
    x = mlp_input.flatten().tolist()
    first = witness_output_felts(circuits, x, tmp_path)
    second = witness_output_felts(circuits, x, tmp_path)
    assert first == second  # bit-identical field elements, not merely close floats
    # and both equal the output the prover's proofs made public
    assert first == list(mlp_run.receipt.output_felts)
    outs, h = reexecute(circuits, x, tmp_path)
    assert outs == felts_to_ints(first) and h == output_hash(outs)
    # felt_to_int (signed) agrees with the unsigned view ProofOfInference de-maps on chain
    field = 21888242871839275222246405745257275088548364400416034343698204186575808495617  # BN254 r
    assert [u - field if u > field // 2 else u for u in felt_ints(first)] == outs


def test_a_different_input_gives_a_different_hash(mlp_run, mlp_input, tmp_path):
    circuits = _circuits(mlp_run)
    x = mlp_input.flatten().tolist()
    _, h1 = reexecute(circuits, x, tmp_path)
    _, h2 = reexecute(circuits, [v + 1.0 for v in x], tmp_path)
    assert h1 != h2
