"""Ray job entrypoint: slice a model, compile (cached), prove on the cluster, verify, print a JSON summary.

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . \\
        -- python -m pipelines.prove --model model.onnx --input input.json --max-slices 3

With no --model it proves the bundled zoo "mlp" on a seeded input. Inside a job
Ray is joined with address="auto" ($RAY_ADDRESS is set by the job supervisor);
run by hand it starts a local cluster. Every path is made absolute up front, so
nothing depends on the working directory the job was started in.

With --dataset PATH (Parquet of input rows) it proves every row with dsperse.prove_dataset instead
and writes <workdir>/proven.parquet (one row per input: outputs, receipts, proof hashes; see docs/ray.md).

Exit status: 0 when every run verified, 1 when anything failed (the summary says what), 2 for bad arguments.
The last stdout line is the summary as one JSON object; it is also written to <workdir>/summary.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
import uuid
from pathlib import Path

import numpy as np
import yaml

SPEC_KEYS = {"model", "input", "dataset", "column", "max_slices", "strategy", "workdir", "device", "actors", "job_id", "cache", "srs", "seed", "cluster"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pipelines.prove", description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", type=Path, help="YAML pipeline spec (pipelines/specs/demo.yaml); flags override it")
    p.add_argument("--model", type=Path, help="ONNX model (default: the bundled zoo 'mlp')")
    p.add_argument("--input", type=Path, help='input JSON {"input_data": [[...], ...]} or .npy; several rows = a batch')
    p.add_argument("--dataset", type=Path, help="Parquet file or directory of input rows: prove every row (prove_dataset)")
    p.add_argument("--column", help="with --dataset: the input column (default: input)")
    p.add_argument("--max-slices", type=int, dest="max_slices")
    p.add_argument("--strategy", choices=["balanced", "layers"])
    p.add_argument("--workdir", type=Path, help="where slices and runs go (default: $DSPERSE_RUNS or ~/dsperse-runs, /<job id>)")
    p.add_argument("--device", choices=["cpu", "gpu", "auto"])
    p.add_argument("--actors", type=int, help="number of SliceProver actors (default: one per slice)")
    p.add_argument("--job-id", dest="job_id")
    p.add_argument("--cache", type=Path, help="key/SRS cache (default: $DSPERSE_CACHE or ~/.cache/dsperse)")
    p.add_argument("--srs", type=Path, help="SRS file (default: a cached development SRS)")
    p.add_argument("--seed", type=int, help="seed of the generated input when --input is not given")
    p.add_argument("--cluster", help='"auto" (default: the job\'s cluster, else a new local one), "local" or a Ray address')
    a = p.parse_args(argv)
    spec = {}
    if a.spec:
        spec = yaml.safe_load(a.spec.read_text()) or {}
        unknown = set(spec) - SPEC_KEYS
        if unknown:
            p.error(f"{a.spec}: unknown keys {sorted(unknown)}; allowed: {sorted(SPEC_KEYS)}")
        for k in ("model", "input", "dataset", "workdir", "cache", "srs"):  # relative to the spec file, not the cwd
            if spec.get(k) is not None:
                spec[k] = (a.spec.parent / Path(spec[k]).expanduser()).resolve()
    defaults = {"column": "input", "max_slices": 3, "strategy": "balanced", "device": "auto", "seed": 0, "cluster": "auto"}
    for k in SPEC_KEYS:
        if getattr(a, k) is None:
            setattr(a, k, spec.get(k, defaults.get(k)))
    if a.input and a.dataset:
        p.error("--input and --dataset exclude each other")
    if a.max_slices is not None and a.max_slices < 1:
        p.error("--max-slices must be >= 1")
    return a


def default_job_id() -> str:
    return os.environ.get("RAY_JOB_SUBMISSION_ID") or f"dsperse-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def prover_fields(a: argparse.Namespace) -> dict:
    """The prover config fields the flags / spec set (the rest come from $DSPERSE_* and the defaults)."""
    return {k: v for k, v in (("device", a.device), ("actors", a.actors)) if v is not None}


def run(a: argparse.Namespace, job_id: str, workdir: Path) -> dict:
    """The pipeline; returns the summary (raises on any failure)."""
    import dsperse
    from dsperse.proving.run import load_inputs
    from dsperse.slicing.model import coerce_input

    workdir.mkdir(parents=True, exist_ok=True)
    t: dict[str, float] = {}

    t0 = time.perf_counter()
    if a.model:
        model = Path(a.model).expanduser().resolve()
    else:
        from dsperse.tools import zoo

        model = zoo.export("mlp", workdir / "mlp.onnx")
    plan = dsperse.slice(model, workdir / "slices", max_slices=a.max_slices, strategy=a.strategy)
    if a.dataset:
        return run_dataset(a, job_id, workdir, plan, model, t, time.perf_counter() - t0)
    if a.input:
        xs = load_inputs(Path(a.input).expanduser().resolve())
    else:
        xs = [np.random.default_rng(a.seed).standard_normal(plan.input_shape).astype(np.float32)]
    t["slice_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for x in xs:  # a wrong input fails here, before any slow work
        coerce_input(plan.input_shape, x)
    # calibrated on the plan's seeded data, as dsperse.prove does: keys (the model id) must not depend on the input
    circuits = dsperse.compile(plan, cache=a.cache, srs=a.srs)
    t["compile_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    kw = dict(circuits=circuits, job_id=job_id, cluster=a.cluster, config={"prover": prover_fields(a)})
    if len(xs) == 1:
        runs = [dsperse.prove(plan, xs[0], workdir / "run", **kw)]
    else:  # a batch: run/<n>/, job ids <job id>/<n>
        runs = dsperse.prove_batch(plan, xs, workdir / "run", **kw)
    t["prove_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for r, x in zip(runs, xs):
        dsperse.verify(r, job_id=r.receipt.job_id, expected_input=x)
    t["verify_s"] = time.perf_counter() - t0

    return {
        "ok": True, "job_id": job_id, "model": str(model), "workdir": str(workdir), "slices": len(plan.slices),
        "logrows": circuits[0].logrows, "keys_reused": all(c.reused for c in circuits),
        "device": sorted({p.prover.rsplit(":", 1)[-1] for r in runs for p in r.proofs}),
        "runs": [
            {"workdir": str(r.workdir), "job_id": r.receipt.job_id, "verified": True, "output": list(r.receipt.output),
             "model_id": r.receipt.model_id, "input_hash": r.receipt.input_hash,
             "provers": [p.prover for p in r.proofs], "proof_seconds": [round(p.seconds, 3) for p in r.proofs]}
            for r in runs
        ],
        "seconds": {k: round(v, 3) for k, v in t.items()},
    }


def run_dataset(a: argparse.Namespace, job_id: str, workdir: Path, plan, model: Path, t: dict, slice_s: float) -> dict:
    """--dataset: every row of a Parquet input through prove_dataset (which checks shapes first and verifies each row)."""
    import dataclasses

    import dsperse
    from dsperse.config import DsperseConfig

    t["slice_s"] = slice_s
    t0 = time.perf_counter()
    circuits = dsperse.compile(plan, cache=a.cache, srs=a.srs)
    t["compile_s"] = time.perf_counter() - t0
    res = dsperse.prove_dataset(plan, Path(a.dataset).expanduser().resolve(), workdir / "proven.parquet", column=a.column,
                                job_id=job_id, workdir=workdir / "run", cluster=a.cluster, circuits=circuits,
                                options=dataclasses.replace(DsperseConfig.from_env().prover, **prover_fields(a)))  # fmt: skip
    t["prove_dataset_s"] = res.seconds
    if res.verified != res.rows:
        raise RuntimeError(f"{res.rows - res.verified} of {res.rows} rows did not verify (column verify_error in {res.out})")
    return {
        "ok": True, "job_id": job_id, "model": str(model), "workdir": str(workdir), "slices": len(plan.slices),
        "logrows": circuits[0].logrows, "keys_reused": all(c.reused for c in circuits),
        "dataset": {"out": str(res.out), "rows": res.rows, "proven": res.proven, "resumed": res.resumed,
                    "verified": res.verified, "rows_per_minute": round(res.rows_per_minute, 3)},
        "seconds": {k: round(v, 3) for k, v in t.items()},
    }


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("ezkl").setLevel(logging.ERROR)  # calibration prints fidelity tables as warnings
    job_id = a.job_id or default_job_id()
    root = os.environ.get("DSPERSE_RUNS", str(Path.home() / "dsperse-runs"))
    workdir = (Path(a.workdir) if a.workdir else Path(root) / job_id.replace("/", "_")).expanduser().resolve()
    try:
        summary = run(a, job_id, workdir)
        code = 0
    except Exception as exc:  # report any failure in the summary and through the exit status
        traceback.print_exc()
        summary = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "job_id": job_id, "workdir": str(workdir)}
        code = 1
    if workdir.is_dir():
        from dsperse.util import storage

        storage.write_json(workdir / "summary.json", summary)
    print(json.dumps(summary), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
