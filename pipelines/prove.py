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

from dsperse.config import ProverConfig, SlicingConfig

JOB_KEYS = ("model", "input", "dataset", "column", "workdir", "job_id", "seed")
"""A spec's own keys; every other top-level key is a section of dsperse.config.DsperseConfig (slicing, circuit, prover,
paths, aggregation, ...), validated by DsperseConfig.from_dict."""
PIPELINE_DEFAULTS = {"slicing": {"max_slices": 3}, "prover": {"cluster": "auto"}}
"""Where this pipeline differs from the library's defaults: 3 slices, and always on Ray (the job's cluster)."""
SPEC_PATHS = {"model", "input", "dataset", "workdir", "paths.cache", "paths.srs", "paths.runs", "paths.ledger"}
"""Resolved against the spec file's directory, never the job's cwd."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from dsperse.config import ConfigError
    from dsperse.options import circuit_options, job_id_option, prover_options, slicing_options

    p = argparse.ArgumentParser(prog="python -m pipelines.prove", description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", type=Path, help="YAML pipeline spec (pipelines/specs/demo.yaml): the job's keys and config "
                   "sections; flags override it")
    p.add_argument("--model", type=Path, help="ONNX model (default: the bundled zoo 'mlp')")
    p.add_argument("--input", type=Path, help='input JSON {"input_data": [[...], ...]} or .npy; several rows = a batch')
    p.add_argument("--dataset", type=Path, help="Parquet file or directory of input rows: prove every row (prove_dataset)")
    p.add_argument("--column", help="with --dataset: the input column (default: input)")
    p.add_argument("--workdir", type=Path, help="where slices and runs go (default: <paths.runs>/<job id>, paths.runs "
                   "being $DSPERSE_RUNS or ~/dsperse-runs)")
    job_id_option(p, "this job's; a batch's runs get JOB_ID/<n> (default: the Ray job's submission id)")
    p.add_argument("--seed", type=int, help="seed of the generated input when --input is not given (default 0)")
    slicing_options(p, ("max_slices", "strategy"), defaults=SlicingConfig(max_slices=3))
    prover_options(p, defaults=ProverConfig(cluster="auto"))
    circuit_options(p)
    a = p.parse_args(argv)
    try:
        a.config, job = load_config(a)
    except ConfigError as exc:
        p.error(str(exc))
    for k in JOB_KEYS:
        if getattr(a, k) is None:
            setattr(a, k, job.get(k))
    a.column = a.column or "input"
    a.seed = 0 if a.seed is None else a.seed
    if a.input and a.dataset:
        p.error("--input and --dataset exclude each other")
    return a


def load_config(a: argparse.Namespace):
    """(DsperseConfig, the spec's job keys): defaults, $DSPERSE_*, this pipeline's defaults, the spec, then the flags."""
    from dsperse.config import ConfigError, DsperseConfig
    from dsperse.options import settings

    spec = {}
    if a.spec:
        spec = yaml.safe_load(a.spec.read_text()) or {}
        if not isinstance(spec, dict):
            raise ConfigError(f"{a.spec}: a spec is a mapping of job keys and config sections")
        spec = _resolve_paths(spec, a.spec.parent)
    job = {k: spec.pop(k) for k in JOB_KEYS if k in spec}
    cfg = DsperseConfig.from_dict(PIPELINE_DEFAULTS)
    try:
        cfg = DsperseConfig.from_dict(spec, base=cfg)
    except ConfigError as exc:
        raise ConfigError(f"{a.spec}: {exc}; a spec's own keys: {', '.join(JOB_KEYS)}") from None
    return settings(a, base=cfg), job


def _resolve_paths(spec: dict, root: Path) -> dict:
    out = dict(spec)
    for key in SPEC_PATHS:
        section, _, name = key.rpartition(".")
        holder = out.get(section) if section else out
        if isinstance(holder, dict) and isinstance(holder.get(name), str):
            holder = dict(holder)
            holder[name] = str((root / Path(holder[name]).expanduser()).resolve())
            if section:
                out[section] = holder
            else:
                out = holder
    return out


def default_job_id() -> str:
    return os.environ.get("RAY_JOB_SUBMISSION_ID") or f"dsperse-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def run(a: argparse.Namespace, job_id: str, workdir: Path) -> dict:
    """The pipeline; returns the summary (raises on any failure)."""
    import dsperse
    from dsperse.proving.run import load_inputs

    cfg = a.config
    workdir.mkdir(parents=True, exist_ok=True)
    t: dict[str, float] = {}

    t0 = time.perf_counter()
    if a.model:
        model = Path(a.model).expanduser().resolve()
    else:
        from dsperse.tools import zoo

        model = zoo.export("mlp", workdir / "mlp.onnx")
    sl = cfg.slicing
    plan = dsperse.slice(model, workdir / "slices", max_slices=sl.max_slices, strategy=sl.strategy, max_logrows=sl.max_logrows,
                         max_memory=sl.max_memory, estimate=sl.estimate)
    if a.dataset:
        return run_dataset(a, job_id, workdir, plan, model, t, time.perf_counter() - t0)
    if a.input:
        xs = load_inputs(Path(a.input).expanduser().resolve())
    else:
        xs = [np.random.default_rng(a.seed).standard_normal(plan.input_shape).astype(np.float32)]
    t["slice_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # dsperse.prove checks the input, compiles (keys cached by content) and proves
    kw = dict(config=cfg, job_id=job_id, cluster=cfg.prover.cluster)
    if len(xs) == 1:
        runs = [dsperse.prove(plan, xs[0], workdir / "run", **kw)]
    else:  # a batch: run/<n>/, job ids <job id>/<n>
        runs = dsperse.prove_batch(plan, xs, workdir / "run", **kw)
    circuits = runs[0].circuits
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
    import dsperse

    cfg = a.config
    t["slice_s"] = slice_s
    t0 = time.perf_counter()
    circuits = dsperse.compile(plan, cache=cfg.paths.cache, srs=cfg.paths.srs, config=cfg.circuit)
    t["compile_s"] = time.perf_counter() - t0
    res = dsperse.prove_dataset(plan, Path(a.dataset).expanduser().resolve(), workdir / "proven.parquet", column=a.column,
                                job_id=job_id, workdir=workdir / "run", config=cfg, circuits=circuits)  # fmt: skip
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
    workdir = (Path(a.workdir) if a.workdir else a.config.paths.runs / job_id.replace("/", "_")).expanduser().resolve()
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
