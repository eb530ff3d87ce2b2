"""A batch of 3 inputs proven on a local Ray cluster: one prover actor per slice, inputs pipelined.

Starts its own local Ray cluster (ray.init(address="local"): never someone else's cluster on a shared
machine), hands it to dsperse.prove_batch with cluster="auto" (which uses this process's connection), proves 3
inputs of the zoo MLP through 3 SliceProver actors (while slice 1 proves input k, slice 0 already proves
input k+1), verifies each run, and shuts the cluster down.

Why a list batch and not dsperse.prove_dataset: it is the same actors and pipelining with nothing else in the
way. prove_dataset adds Parquet in and out, a Ray Data staging pass, resume by row and a verify per row: the
tool for thousands of rows from a table (docs/ray.md, "Datasets"), not for a first look.

    .venv/bin/python examples/ray_batch.py [--workdir DIR]

About 40-100 s on a loaded 2-core box with cached keys (9 proofs on 2 CPUs, plus 10-25 s to start Ray).
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import ray

import dsperse
from dsperse.tools import zoo

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--workdir", type=Path, default=None, help="where to write everything (default: a new temp dir)")
workdir = (p.parse_args().workdir or Path(tempfile.mkdtemp(prefix="dsperse-example-"))).resolve()

model = zoo.export("mlp", workdir / "mlp.onnx", seed=0)
plan = dsperse.slice(model, workdir / "mlp.slices", max_slices=3, strategy="layers")
xs = list(np.random.default_rng(1).standard_normal((3, *plan.input_shape)).astype(np.float32))

ray.init(address="local", include_dashboard=False, log_to_driver=False)
try:
    print("Ray cluster:", {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")})
    t0 = time.perf_counter()
    runs = dsperse.prove_batch(plan, xs, workdir / "batch", job_id="batch", cluster="auto", progress=False)
    wall = time.perf_counter() - t0
finally:
    ray.shutdown()

print(f"{'job':10} {'output':30} proved by (slice: actor pid)")
for run, x in zip(runs, xs):
    assert dsperse.verify(run, job_id=run.receipt.job_id, expected_input=x)
    actors = " ".join(f"{p.slice_index}:{p.prover.split(':')[2]}" for p in run.proofs)
    print(f"{run.receipt.job_id:10} {str(np.round(run.output, 4).tolist()):30} {actors}")
busy = sum(p.seconds for run in runs for p in run.proofs)
print(f"verified {len(runs)} runs: {len(runs) * len(plan.slices)} proofs, {busy:.0f} s of proving in {wall:.0f} s wall")
