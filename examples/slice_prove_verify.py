"""Slice, compile, prove and verify: the core of dsperse on the bundled zoo MLP.

Exports the zoo's tiny 3-layer MLP, cuts it into a 3-slice chain, compiles each slice to an EZKL circuit
(k=15; keys cached under $DSPERSE_CACHE), proves one input slice by slice (each boundary tensor is a KZG
commitment shared by the two proofs that touch it), then verifies every proof, every link, the job id, the
input and the output against onnxruntime.

    .venv/bin/python examples/slice_prove_verify.py [--workdir DIR]

About 30-60 s on a loaded 2-core box with cached keys (the first run also makes the dev SRS and the keys).
Rerunning with the same --workdir resumes: finished proofs are not made again.
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

import dsperse
from dsperse.tools import zoo

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--workdir", type=Path, default=None, help="where to write everything (default: a new temp dir)")
workdir = (p.parse_args().workdir or Path(tempfile.mkdtemp(prefix="dsperse-example-"))).resolve()

model = zoo.export("mlp", workdir / "mlp.onnx", seed=0)
plan = dsperse.slice(model, workdir / "mlp.slices", max_slices=3, strategy="layers")
circuits = dsperse.compile(plan)  # settings, calibration and keys for every slice
print(plan.describe(circuits))

x = np.random.default_rng(0).standard_normal(plan.input_shape).astype(np.float32)
run = dsperse.prove(plan, x, workdir / "run", circuits=circuits, job_id="example-1", progress=False)
print("proved", len(run.proofs), "slices:", ", ".join(f"slice {p.slice_index} {p.seconds:.1f}s" for p in run.proofs))

# every slice proof, every link, the job id, the input, and the output within tolerance of onnxruntime
assert dsperse.verify(run, job_id="example-1", expected_input=x, reference=True)
r = run.receipt
print("verified: proofs, links, job id, input, and output vs onnxruntime")
print(f"receipt: model {r.model_id[:16]}..  job {r.job_id}  input {r.input_visibility} ({len(r.input_felts)} felts)")
print(f"         output {np.round(r.output, 4).tolist()} (scale 2^{r.output_scale}), {r.slice_count} proofs")
print("run directory:", run.workdir)
