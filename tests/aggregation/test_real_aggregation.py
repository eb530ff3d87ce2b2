"""A real aggregated proof on a real EVM, through the SDK: ``dsperse.prove(..., aggregate=True)``, a deployed
aggregated verifier, and a receipt transaction bound to the job's input and output.

Needs ~20 GB of free memory (aggregation prove peak at k=21) and ~20 min (setup ~5, prove ~7, and the keys of a
second model ~5; keys are cached under the dsperse cache, so a second run takes ~8 min). Skipped unless
DSPERSE_BIGMEM=1 and that memory is available. The model is the zoo MLP as ONE slice: a 2-slice chain needs k=22, ~40 GB (docs/aggregation.md).
"""
from __future__ import annotations

import numpy as np
import pytest

import dsperse
from dsperse.aggregation import aggregate as A, receipt as R
from dsperse.aggregation.proofs import load as load_proof
from dsperse.chain.client import felt_to_uint, signed
from dsperse.errors import TransactionRevertedError
from dsperse.proving.tasks import quantize_input
from dsperse.util.storage import read_json

pytestmark = [pytest.mark.slow, pytest.mark.bigmem(20)]


@pytest.fixture(scope="module")
def aggregated_run(zoo_model, mlp_input, tmp_path_factory) -> dsperse.Run:
    plan = dsperse.slice(zoo_model("mlp"), tmp_path_factory.mktemp("one-slice"), max_slices=1)
    return dsperse.prove(plan, mlp_input, tmp_path_factory.mktemp("aggr-run"), aggregate=True, job_id="aggr-job", progress=False)


@pytest.fixture(scope="module")
def deployed(toolchain, aggregated_run, tmp_path_factory):
    import dsperse.chain

    chain = dsperse.chain.local(deployments=tmp_path_factory.mktemp("evm") / "deployments.json")
    try:
        v, r = R.deploy_for_run(chain, aggregated_run)
        yield chain, v, r, R.run_layout(aggregated_run)
    finally:
        chain.close()


@pytest.fixture(scope="module")
def other_model_receipt(deployed, zoo_model, mlp_input, prove_for_aggregation, tmp_path_factory) -> str:
    """A receipt contract for ANOTHER model (the MLP with other weights): its aggregation keys and verifier only."""
    chain = deployed[0]
    work = tmp_path_factory.mktemp("other-model")
    run, srs = prove_for_aggregation(zoo_model("mlp", seed=1), mlp_input, work)
    keys = A.setup([run.proofs[0].path], work / "keys", logrows=21, srs=srs, split_proofs=False)
    sol = A.evm_verifier(keys, run.circuits[0].settings, work / "OtherVerifier.sol")
    io = R.slice_io(load_proof(run.proofs[0].path), read_json(run.circuits[0].settings))
    _, r = R.deploy(chain, sol, R.layout([io], [[[0]]]), bytes.fromhex(run.receipt.model_id))
    return r


def test_prove_returns_one_aggregate_for_the_run(aggregated_run):
    agg = aggregated_run.aggregate
    assert agg.proof.logrows == 21 and agg.proof.n_proofs == 1 and agg.levels == (((0,),),)
    assert agg.proof.transcript == "evm" and agg.root.level == 0 and agg.root.inputs == (aggregated_run.proofs[0].path,)
    # the slice proofs themselves still verify (derived k=15 SRS, same secret as the aggregator's)
    dsperse.verify(aggregated_run)
    assert A.verify_aggr(agg.proof, R.run_keys(aggregated_run))  # no final pairing: a smoke test; the EVM decides
    # the same aggregate record survives a reload (what `dsperse submit` reads)
    assert dsperse.Run.load(aggregated_run.workdir).aggregate == agg


def test_receipt_binds_the_aggregate_to_input_and_output(deployed, aggregated_run):
    chain, _, r_addr, lay = deployed
    run = aggregated_run
    rc = R.submit_run(chain, r_addr, run, job_id="aggr-job")
    assert rc["status"] == 1
    got = R.read(chain, r_addr, "aggr-job")
    assert got["input_hash"] == R.felts_hash(run.receipt.input_felts) and got["block"] == rc["blockNumber"]
    outs = [signed(felt_to_uint(f)) for f in run.receipt.output_felts]
    assert got["outputs"] == outs and len(outs) == lay.num_outputs
    np.testing.assert_allclose(np.array(outs) / 2**run.receipt.output_scale, run.output, atol=1e-9)


@pytest.mark.parametrize("what", ["proof byte", "output instance", "input instance", "accumulator limb"])
def test_tampered_submissions_revert(deployed, aggregated_run, what):
    chain, _, r_addr, lay = deployed
    pb, inst = A.evm_calldata(aggregated_run.aggregate.proof)
    pb, inst = bytearray(pb), list(inst)
    if what == "proof byte":
        pb[100] ^= 1
    elif what == "output instance":  # re-label the receipt with another output
        inst[lay.output_start] += 1
    elif what == "input instance":  # ... or another input
        inst[lay.input_start] += 1
    else:
        inst[0] += 1
    with pytest.raises(TransactionRevertedError, match="aggregate proof rejected"):
        R.submit(chain, r_addr, bytes([0x10 + len(what)]) * 32, bytes(pb), inst)


def test_another_jobs_input_and_replay_revert(deployed, aggregated_run, mlp_input):
    chain, _, r_addr, _ = deployed
    pb, inst = A.evm_calldata(aggregated_run.aggregate.proof)
    other = quantize_input(mlp_input + 1, aggregated_run.circuits[0].input_scale)  # another job's input
    with pytest.raises(TransactionRevertedError, match="input differs"):
        R.submit(chain, r_addr, b"\x02" * 32, pb, inst, expected_input_hash=R.felts_hash(other))
    R.submit_run(chain, r_addr, aggregated_run, job_id="replayed")
    with pytest.raises(TransactionRevertedError, match="job id already used"):
        R.submit_run(chain, r_addr, aggregated_run, job_id="replayed")


def test_an_aggregate_of_another_model_is_rejected(deployed, other_model_receipt, aggregated_run):
    chain = deployed[0]
    pb, inst = A.evm_calldata(aggregated_run.aggregate.proof)
    with pytest.raises(TransactionRevertedError, match="aggregate proof rejected"):
        R.submit(chain, other_model_receipt, b"\x09" * 32, pb, inst)


def test_cli_submit_aggregated(deployed, aggregated_run, capsys):
    import json

    from dsperse.cli import main

    chain = deployed[0]
    args = ["submit", str(aggregated_run.workdir), "--aggregated", "--rpc", chain.rpc_url, "--job-id", "cli-job",
            "--private-key", chain.owner.accounts[0][1], "--deployments", str(chain.deployments.path), "--json"]  # fmt: skip
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["receipt_contract"] == deployed[2]  # found in the deployments file, not deployed again
    assert out["outputs"] == [signed(felt_to_uint(f)) for f in aggregated_run.receipt.output_felts]
