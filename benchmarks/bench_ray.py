"""What Ray costs and buys for slice proving: overhead, warm actors vs cold processes, actor scaling.

    .venv/bin/python benchmarks/bench_ray.py [--batch 3] [--cache DIR]

Same work everywhere: the zoo "mlp" cut into 3 slices (k=15), a batch of N seeded
inputs, every slice proven for every input (3N EZKL proofs), keys from the cache.

  loop        the core path in this process: dsperse.prove(...) (LocalBackend), inputs one by one
  cold        one fresh Python process per input (import, load keys, prove 3 slices, exit)
  ray xA      dsperse.prove_batch on a RayBackend: a local Ray cluster, A warm SliceProver actors (A=1, 2, 3)

Prints tables and writes benchmarks/out/ray.json. Proving is CPU-bound (EZKL uses every
core), so on a 2-core box more actors overlap work but cannot beat the core count.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dsperse  # noqa: E402
from dsperse.tools import zoo  # noqa: E402

COLD = """
import pickle, sys, time
t0 = time.perf_counter()
import numpy as np, dsperse
plan, circuits, x, out = pickle.load(open(sys.argv[1], "rb"))
run = dsperse.prove(plan, x, out, circuits=circuits, progress=False)
print(sum(p.seconds for p in run.proofs), time.perf_counter() - t0)
"""


def machine() -> dict:
    mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")) / 2**20
    return {"cpus": os.cpu_count(), "mem_gib": round(mem, 1), "load_avg": [round(x, 2) for x in os.getloadavg()]}


def save(res: dict, out: Path, work: Path) -> None:
    """Close a Ray benchmark run: the machine's state at the end, the figures as JSON, the work dir removed."""
    res["machine_end"] = machine()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nmachine at end {res['machine_end']}; wrote {out}")


def table(title: str, header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "ray.json")
    a = ap.parse_args()
    import ray

    from dsperse.distributed import ProverConfig, ProverPool, RayBackend

    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    res: dict = {"machine_start": machine(), "batch": a.batch}
    model = zoo.export("mlp", work / "mlp.onnx")
    plan = dsperse.slice(model, work / "slices", max_slices=3, strategy="layers")
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal(plan.input_shape).astype(np.float32) for _ in range(a.batch)]
    circuits = dsperse.compile(plan, cache=a.cache)
    n_proofs = a.batch * len(circuits)
    print(f"machine {res['machine_start']}; {len(circuits)} slices, k={circuits[0].logrows}, batch {a.batch} -> {n_proofs} proofs")

    rows, per_proof = {}, {}

    # loop: the core path, in process
    t0 = time.perf_counter()
    runs = [dsperse.prove(plan, x, work / "loop" / str(n), circuits=circuits, progress=False) for n, x in enumerate(xs)]
    rows["loop"] = time.perf_counter() - t0
    per_proof["loop"] = [p.seconds for r in runs for p in r.proofs]

    # cold: a fresh process per input
    t0, cold_internal = time.perf_counter(), []
    for n, x in enumerate(xs):
        job = work / f"cold-{n}.pkl"
        job.write_bytes(pickle.dumps((plan, circuits, x, work / "cold" / str(n))))
        out = subprocess.run([sys.executable, "-c", COLD, str(job)], capture_output=True, text=True, check=True,
                             env={**os.environ, "RUST_LOG": "error"})
        proof_s, proc_s = map(float, out.stdout.split()[-2:])
        cold_internal.append((proof_s, proc_s))
    rows["cold"] = time.perf_counter() - t0
    per_proof["cold"] = [p / len(circuits) for p, _ in cold_internal]

    # ray: local cluster, warm pools of 1, 2, 3 actors
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    res["ray_init_s"] = time.perf_counter() - t0
    res["pool_start_s"], first_vs_rest = {}, {}
    try:
        for actors in (1, 2, 3):
            t0 = time.perf_counter()
            pool = ProverPool(circuits, ProverConfig(actors=actors, device="cpu"))
            res["pool_start_s"][actors] = time.perf_counter() - t0
            try:
                t0 = time.perf_counter()
                runs = dsperse.prove_batch(plan, xs, work / f"ray{actors}", circuits=circuits, backend=RayBackend(pool=pool),
                                           progress=False)  # fmt: skip
                rows[f"ray x{actors}"] = time.perf_counter() - t0
            finally:
                pool.close()
            per_proof[f"ray x{actors}"] = [p.seconds for r in runs for p in r.proofs]
            if actors == len(circuits):  # each actor proved its slice N times: first call vs later ones
                first_vs_rest = {"first": [p.seconds for p in runs[0].proofs],
                                 "later": [p.seconds for r in runs[1:] for p in r.proofs]}
            for r, x in zip(runs, xs):
                dsperse.verify(r, expected_input=x)
    finally:
        ray.shutdown()

    base = rows["loop"]
    # wall / (sum of the seconds EZKL spent proving) is robust to a shared machine's load drifting between
    # configs: ~1.0 for a serial config means no overhead beyond proving; below 1 means proofs overlapped.
    table(
        f"Batch of {a.batch} inputs x {len(circuits)} slices ({n_proofs} proofs), wall seconds; pools pre-warmed",
        ["config", "wall s", "inputs/min", "vs loop", "mean EZKL s/proof", "sum EZKL s", "wall / sum EZKL"],
        [[k, f"{v:.1f}", f"{60 * a.batch / v:.2f}", f"{v / base:.2f}x", f"{np.mean(per_proof[k]):.1f}",
          f"{np.sum(per_proof[k]) * (len(circuits) if k == 'cold' else 1):.1f}",
          f"{v / (np.sum(per_proof[k]) * (len(circuits) if k == 'cold' else 1)):.2f}"] for k, v in rows.items()],
    )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import dsperse.proving.run, ezkl"], check=True)
    res["import_s"] = time.perf_counter() - t0
    table("Fixed costs, seconds", ["what", "s"], [
        ["fresh python + import dsperse, ezkl", f"{res['import_s']:.1f}"],
        ["ray.init (local, no dashboard)", f"{res['ray_init_s']:.1f}"],
        *[[f"start + warm a pool of {k} actor(s)", f"{v:.1f}"] for k, v in res["pool_start_s"].items()],
        ["cold process: mean wall per input", f"{np.mean([p for _, p in cold_internal]):.1f}"],
        ["cold process: mean proving inside it", f"{np.mean([p for p, _ in cold_internal]):.1f}"],
    ])
    if first_vs_rest:
        table("Warm actors (x3): EZKL prove seconds, first call in each actor vs later calls", ["calls", "mean s", "n"], [
            ["first", f"{np.mean(first_vs_rest['first']):.1f}", len(first_vs_rest["first"])],
            ["later", f"{np.mean(first_vs_rest['later']):.1f}", len(first_vs_rest["later"])],
        ])
    res.update(wall_s=rows, per_proof_s=per_proof, cold=cold_internal, first_vs_rest=first_vs_rest)
    save(res, a.out, work)


if __name__ == "__main__":
    main()
