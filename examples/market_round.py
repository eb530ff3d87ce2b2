"""One Proof-of-Sampling round on a local chain: stake, offer, post a job, commit, reveal, draw, prove, get paid.

The PoSP market proves only a random share p of jobs, backed by stake (docs/posp.md). Here, on a local anvil
with the ProofOfInference registry: the operator registers the zoo MLP, stakes and offers it; the requester
posts a job (its fee, the hash of its input, and a commitment to a secret audit seed); the operator commits
to the output hash and reveals the output; the requester reveals the seed, which draws the audit. A sampled
job is settled at once by the operator's on-chain receipt (proveWithReceipt); an unsampled one is paid after
the challenge window. The proven run comes from dsperse.prove (the same --workdir resumes it).

    .venv/bin/python examples/market_round.py [--workdir DIR] [--audit-bps 10000]

Needs the EVM toolchain. About 5-10 s here with cached keys, verifiers and a proven run in --workdir.
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

import dsperse
import dsperse.chain
from dsperse.linking.receipts import input_instances
from dsperse.sampling.market import (
    ETHER,
    Market,
    MarketConfig,
    Operator,
    Requester,
    felt_ints,
    input_commitment,
    mine,
    output_hash,
)
from dsperse.sampling.reexec import felts_to_ints
from dsperse.tools import zoo

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--workdir", type=Path, default=None, help="where to write everything (default: a new temp dir)")
p.add_argument("--audit-bps", type=int, default=5000, help="audit probability in basis points (10000: always)")
args = p.parse_args()
workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="dsperse-example-"))).resolve()

model = zoo.export("mlp", workdir / "mlp.onnx", seed=0)
plan = dsperse.slice(model, workdir / "mlp.slices", max_slices=3, strategy="layers")
x = np.random.default_rng(0).standard_normal(plan.input_shape).astype(np.float32)
run = dsperse.prove(plan, x, workdir / "run", job_id="example-1", progress=False)  # the operator's work
FEE, gas = ETHER // 100, {}

with dsperse.chain.local(deployments=workdir / "deployments.json") as chain:  # a fresh anvil, stopped on exit
    (_, operator_key), (_, requester_key) = chain.owner.accounts[:2]  # the client signs as account 0: the operator
    model_id = bytes.fromhex(chain.register_model(run))  # the operator registers the model's verifiers
    scale = chain.model(model_id.hex())["input_scale"]
    cfg = MarketConfig(audit_bps=args.audit_bps, commit_window=5, audit_delay=2, proof_window=10, challenge_window=8)
    market = Market.deploy(chain.w3, operator_key, chain.registry_address, cfg)  # reads receipts from the registry
    op, req = Operator(market, operator_key), Requester(market, requester_key)

    gas["stake"] = op.stake(2 * ETHER)
    gas["offer"] = op.offer(model_id, FEE, 10)
    input_hash = input_commitment(felt_ints(input_instances(x, scale)))  # the requester hashes its own input
    job, gas["postJob"] = req.post_job(model_id, input_hash, op.address, FEE)  # keeps req.secrets[job]
    outputs = felts_to_ints(run.receipt.output_felts)  # quantized outputs, as the registry states them
    gas["commitOutput"] = op.commit(job, output_hash(outputs))
    gas["revealOutput"] = op.reveal_output(job, outputs)
    mine(chain.w3, cfg.audit_delay + 1)
    sampled, gas["revealSeed"] = req.reveal_seed(job)
    print(f"job {job.hex()[:16]}.. output {outputs} (scale 2^{run.receipt.output_scale}); p = {cfg.p:.0%}, "
          f"{'SAMPLED: prove it' if sampled else 'not sampled'}")
    if sampled:
        sent = chain.submit(run, job_id=job)  # the operator's receipt: commitment + every slice proof
        gas["receipt (commit + proofs)"] = {"gasUsed": sent.gas_used}
        gas["proveWithReceipt"] = op.prove_with_receipt(job, bytes.fromhex(sent.receipt_id[2:]))
    else:
        mine(chain.w3, cfg.challenge_window)
        gas["settle"] = op.settle(job)
    print(f"job status {market.job(job).status.name}; operator credit {op.credit / ETHER} ETH (fee {FEE / ETHER})")
    gas["withdrawCredit"] = op.withdraw_credit()

print("gas per step:")
for step, rc in gas.items():
    print(f"  {step:28} {int(rc['gasUsed']):>10,}")
print(f"  {'total':28} {sum(int(rc['gasUsed']) for rc in gas.values()):>10,}")
