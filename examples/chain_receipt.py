"""A receipt on an EVM chain: register the model, submit a proven run, read the receipt back.

Proves the zoo MLP (as slice_prove_verify.py does; the same --workdir resumes that run), starts a local anvil
with dsperse.chain.local(), registers the model (one EZKL verifier contract per slice plus the link table),
then submits the receipt: a commitment to the proofs, and in a later block the proofs themselves, which
the registry verifies (every slice proof, every link) before storing model, input hash, output and prover.
--hashed proves with CircuitConfig(input_visibility="hashed"): slice 0 publishes one Poseidon hash of the
input instead of every element (cheaper on chain for big inputs).

    .venv/bin/python examples/chain_receipt.py [--workdir DIR] [--hashed]

Needs the EVM toolchain (`dsperse toolchain install`). About 5-20 s here with cached keys and verifiers
and a proven run in --workdir; add 30-60 s to prove, and ~20 s per slice the first time a verifier is compiled.
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

import dsperse
import dsperse.chain
from dsperse.linking.receipts import input_instances
from dsperse.sampling.market import felt_ints, input_commitment
from dsperse.tools import zoo

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--workdir", type=Path, default=None, help="where to write everything (default: a new temp dir)")
p.add_argument("--hashed", action="store_true", help="publish a Poseidon hash of the input instead of the input")
args = p.parse_args()
workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="dsperse-example-"))).resolve()
variant = "-hashed" if args.hashed else ""

model = zoo.export("mlp", workdir / "mlp.onnx", seed=0)
plan = dsperse.slice(model, workdir / f"mlp{variant}.slices", max_slices=3, strategy="layers")
config = dsperse.CircuitConfig(input_visibility="hashed" if args.hashed else "public")
x = np.random.default_rng(0).standard_normal(plan.input_shape).astype(np.float32)
run = dsperse.prove(plan, x, workdir / f"run{variant}", config=config, job_id="example-1", progress=False)
assert dsperse.verify(run, job_id="example-1", expected_input=x)
print(f"proved and verified off chain: output {np.round(run.output, 4).tolist()} "
      f"({run.receipt.input_visibility} input)")

# a fresh anvil on 127.0.0.1, stopped on exit; the deployments file records registry and verifier addresses
with dsperse.chain.local(deployments=workdir / "deployments.json") as chain:
    model_id = chain.register_model(run)  # a content hash: the same model always gets the same id
    m = chain.model(model_id)
    print(f"registered: registry id {model_id[:16]}.. (content hash), {len(m['verifiers'])} slice verifiers, "
          f"{len(m['links'])} links, {m['num_inputs']} public input value(s)")

    sent = chain.submit(run, job_id="example-1")  # commit, then reveal the proofs in a later block
    reveal = chain.w3.eth.get_transaction_receipt(sent.tx_hash)["gasUsed"]
    print(f"submitted in block {sent.block}: commitment {sent.gas_used - reveal:,} gas + reveal {reveal:,} gas "
          f"= {sent.gas_used:,} gas")

    rec = chain.receipt("example-1")
    print("on-chain receipt:")
    for field in ("job_id", "model_id", "receipt_id", "input_hash", "output_hash", "output", "output_scale", "prover",
                  "block"):
        print(f"  {field:12} {getattr(rec, field)}")
    assert rec.model_id == run.receipt.model_id and rec.output == run.receipt.output
    # anyone holding x computes the input hash without the proofs (quantize with the registered scale)
    expected = input_commitment(felt_ints(input_instances(x, m["input_scale"], run.receipt.input_visibility)))
    assert rec.input_hash == "0x" + expected.hex()
    print("the chain's receipt matches the run: same model, same output, input hash recomputed from x")
