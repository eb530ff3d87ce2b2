"""A real aggregated proof on a real EVM: setup, aggregate, deployed verifier, receipt bound to input and output.

Needs ~20 GB of free memory (aggregation prove peak at k=21) and ~11 min (setup 5 + prove 6; keys are cached
under the dsperse cache, so a second run skips setup). Skipped unless that memory is available. The model is
the zoo MLP as ONE slice (a 2-slice chain needs k=22, ~40 GB: see docs/aggregation.md).
"""
from __future__ import annotations

import json

import pytest

import dsperse
from dsperse import srs as srs_mod
from dsperse.aggregation import aggregate as A, planning, receipt as R, srs_shrink
from dsperse.circuits import CircuitConfig
from dsperse.errors import SRSError, TransactionRevertedError

pytestmark = [pytest.mark.slow, pytest.mark.bigmem(20)]


@pytest.fixture(scope="module")
def toolchain():
    from dsperse.chain.toolchain import missing_reason

    if (why := missing_reason()) is not None:
        pytest.skip(why)


@pytest.fixture(scope="module")
def one_slice_run(zoo_model, mlp_input, tmp_path_factory):
    srs = srs_mod.dev_srs(21)  # the aggregator's SRS, shared by the slice (one secret)
    try:  # the same secret at the slice's k: skips EZKL's per-call shrink of the k=21 file (minutes per call)
        slice_srs = srs_shrink.shrink(srs, 15)
    except SRSError:
        slice_srs = srs
    plan = dsperse.slice(zoo_model("mlp"), tmp_path_factory.mktemp("one-slice"), max_slices=1)
    circuits = dsperse.compile(plan, srs=slice_srs.path)
    run = dsperse.prove(plan, mlp_input, tmp_path_factory.mktemp("one-slice-run"), circuits=circuits,
                        config=CircuitConfig(proof_type="for-aggr"), progress=False)  # fmt: skip
    return run, circuits, srs


@pytest.fixture(scope="module")
def aggregated(one_slice_run, tmp_path_factory):
    run, circuits, srs = one_slice_run
    with open("/proc/meminfo") as f:
        total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal"))
    plan = planning.plan(1, total)
    work = tmp_path_factory.mktemp("aggr")
    keys = A.setup([run.proofs[0].path], work, logrows=plan.root.logrows, srs=srs, split_proofs=False)
    proof = A.aggregate([run.proofs[0].path], work / "aggr.json", keys, transcript="evm")
    return keys, proof


@pytest.fixture(scope="module")
def deployed(toolchain, one_slice_run, aggregated, tmp_path_factory):
    import dsperse.chain

    run, circuits, _ = one_slice_run
    keys, proof = aggregated
    sol = A.evm_verifier(keys, circuits[0].settings, tmp_path_factory.mktemp("sol") / "AggregateVerifier.sol")
    slice_proof = json.loads(open(run.proofs[0].path).read())
    io = R.slice_io(slice_proof, json.loads(open(circuits[0].settings).read()))
    lay = R.layout([io], [[[0]]], R.slice_instances([run.proofs[0].path]))
    chain = dsperse.chain.local()
    try:
        v, r = R.deploy(chain, sol, lay, bytes.fromhex(run.receipt.model_id))
        yield chain, v, r, lay
    finally:
        chain.close()


def test_verify_aggr_smoke(aggregated):
    keys, proof = aggregated
    assert A.verify_aggr(proof, keys)  # skips the final pairing: only a smoke test; the EVM decides below


def test_receipt_binds_the_aggregate_to_input_and_output(deployed, aggregated, one_slice_run):
    chain, _, r_addr, lay = deployed
    run, _, _ = one_slice_run
    pb, inst = A.evm_calldata(aggregated[1])
    assert len(inst) == lay.num_instances
    job = b"\x01" * 32
    ih = R.input_hash(inst, lay)
    rc = R.submit(chain, r_addr, job, pb, inst, expected_input_hash=ih)
    assert rc["status"] == 1
    got = R.read(chain, r_addr, job)
    assert got["input_hash"] == ih and got["block"] == rc["blockNumber"]
    # the stored outputs are the run's public output field elements, signed
    want = [R.P.instances(json.loads(open(run.proofs[0].path).read()))[-lay.num_outputs:]]
    field = 21888242871839275222246405745257275088548364400416034343698204186575808495617
    assert got["outputs"] == [v - field if v > field // 2 else v for v in want[0]]


@pytest.mark.parametrize("what", ["proof byte", "output instance", "input instance", "accumulator limb"])
def test_tampered_submissions_revert(deployed, aggregated, what):
    chain, _, r_addr, lay = deployed
    pb, inst = A.evm_calldata(aggregated[1])
    pb, inst = bytearray(pb), list(inst)
    if what == "proof byte":
        pb[100] ^= 1
    elif what == "output instance":
        inst[lay.output_start] += 1
    elif what == "input instance":
        inst[lay.input_start] += 1
    else:
        inst[0] += 1
    with pytest.raises(TransactionRevertedError, match="aggregate proof rejected"):
        R.submit(chain, r_addr, bytes([0x10 + len(what)]) * 32, bytes(pb), inst)


def test_wrong_job_input_and_replay_revert(deployed, aggregated):
    chain, _, r_addr, lay = deployed
    pb, inst = A.evm_calldata(aggregated[1])
    with pytest.raises(TransactionRevertedError, match="input differs"):
        R.submit(chain, r_addr, b"\x02" * 32, pb, inst, expected_input_hash=b"\x05" * 32)
    R.submit(chain, r_addr, b"\x03" * 32, pb, inst)
    with pytest.raises(TransactionRevertedError, match="job id already used"):
        R.submit(chain, r_addr, b"\x03" * 32, pb, inst)
