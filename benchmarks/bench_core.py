"""Sliced vs whole model, side by side in one run: stage times, peak RSS, logrows, proof-time ratio.

    .venv/bin/python benchmarks/bench_core.py --model cnn --slices 3

Each configuration runs in its own process so peak RSS is its own. Keys go to a
fresh cache (setup is measured); the dev SRS is shared from the normal cache.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def _measure(model: str, slices: int, workdir: str, queue) -> None:
    import dsperse
    from dsperse.circuits import srs as srs_mod
    from dsperse.circuits.build import compile_plan
    from dsperse.tools import zoo

    wd = Path(workdir)
    (wd / "cache").mkdir()
    (wd / "cache" / "srs").symlink_to(srs_mod.cache_dir() / "srs", target_is_directory=True)  # share dev SRS files
    path = zoo.export(model, wd / f"{model}.onnx")
    t = {}
    t0 = time.perf_counter()
    plan = dsperse.slice(path, wd / "slices", max_slices=slices, strategy="balanced") if slices > 1 else dsperse.slice(path, wd / "slices", cuts=[])
    t["slice"] = time.perf_counter() - t0
    x = np.random.default_rng(0).standard_normal(plan.input_shape).astype(np.float32)
    t0 = time.perf_counter()
    circuits = compile_plan(plan, cache=wd / "cache", calibration_input=x)
    t["compile+setup"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = dsperse.prove(plan, x, wd / "run", circuits=circuits, progress=False)
    t["witness+prove"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dsperse.verify(run)
    t["verify"] = time.perf_counter() - t0
    queue.put({
        "slices": len(plan.slices),
        "times": t,
        "prove_per_slice": [p.seconds for p in run.proofs],
        "logrows": [c.logrows for c in circuits],
        "rows": [c.num_rows for c in circuits],
        "pk_mb": sum(c.pk.stat().st_size for c in circuits) / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    })


def measure(model: str, slices: int) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="dsperse-bench-") as d:
        p = ctx.Process(target=_measure, args=(model, slices, d, q))
        p.start()
        result = q.get()
        p.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cnn", help="zoo model (mlp, cnn, residual)")
    ap.add_argument("--slices", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    a = ap.parse_args()

    whole = measure(a.model, 1)
    sliced = measure(a.model, a.slices)
    rows = [("whole", whole), (f"{sliced['slices']} slices", sliced)]
    stages = list(whole["times"])
    print(f"\nmodel={a.model}  machine: {platform.node()} {mp.cpu_count()} cores, "
          f"{round(__import__('os').sysconf('SC_PAGE_SIZE') * __import__('os').sysconf('SC_PHYS_PAGES') / 2**30)} GiB")
    print(f"{'config':<10} " + " ".join(f"{s:>14}" for s in stages) + f" {'peak RSS MB':>12} {'pk MB':>8}  logrows    rows")
    for name, r in rows:
        print(f"{name:<10} " + " ".join(f"{r['times'][s]:>13.1f}s" for s in stages)
              + f" {r['peak_rss_mb']:>12.0f} {r['pk_mb']:>8.0f}  {r['logrows']}  {r['rows']}")
    print("per-slice prove seconds:", [round(s, 1) for s in sliced["prove_per_slice"]],
          "| whole:", [round(s, 1) for s in whole["prove_per_slice"]])
    ratio = max(sliced["prove_per_slice"]) / whole["prove_per_slice"][0]
    print(f"largest slice proof time / whole-model proof time = {ratio:.2f}")
    if a.json:
        a.json.write_text(json.dumps({"model": a.model, "whole": whole, "sliced": sliced, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
