"""Rows per minute: dsperse.prove_dataset over a Parquet file vs one dsperse.prove_batch(plan, [...], cluster=) call.

    RAY_AUTH_MODE=token .venv/bin/python benchmarks/bench_dataset.py [--rows 6] [--cache DIR]

Same work and same Ray cluster for both: the zoo "mlp" cut into 3 slices (k=15, keys from the cache),
N seeded inputs, 3N EZKL proofs. One local cluster (2 CPUs here) serves every config in turn.

  prove        dsperse.prove_batch(plan, xs, cluster="auto"): a fresh ProverPool, the batch pipelined, then
               dsperse.verify on each run (timed apart: prove_dataset verifies inside its wall time)
  dataset      dsperse.prove_dataset(plan, "inputs.parquet", out): stage with Ray Data, a fresh ProverPool,
               rows pipelined, each row verified, the Parquet output written
  resume       the same prove_dataset call again: every row already finished, nothing proven

The proof ledger is off for both (ledger=False). --dataset-first swaps the order, to see how much of
a difference is the machine's load drifting. Prints one table and writes benchmarks/out/dataset.json.
``wall / sum EZKL`` divides each config's wall time by the seconds EZKL itself spent proving in it, which
survives load drifting between configs: ~1.0 means no overhead beyond proving, below 1 means proofs overlapped.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dsperse  # noqa: E402
from dsperse.tools import zoo  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ray import machine, save, table  # noqa: E402  (one machine record, saver and table for the Ray benchmarks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=6)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    ap.add_argument("--dataset-first", action="store_true", help="run prove_dataset (and its resume) before prove, "
                    "to see how much of a difference is load drifting between configs")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "dataset.json")
    a = ap.parse_args()
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    work = Path(tempfile.mkdtemp(prefix="bench-dataset-"))
    res: dict = {"machine_start": machine(), "rows": a.rows}
    plan = dsperse.slice(zoo.export("mlp", work / "mlp.onnx"), work / "slices", max_slices=3, strategy="layers")
    xs = np.random.default_rng(7).standard_normal((a.rows, *plan.input_shape)).astype(np.float32)
    circuits = dsperse.compile(plan, cache=a.cache)
    src = work / "inputs.parquet"
    pq.write_table(pa.table({"input": pa.FixedShapeTensorArray.from_numpy_ndarray(xs)}), src)
    print(f"machine {res['machine_start']}; {len(circuits)} slices, k={circuits[0].logrows}, {a.rows} rows")

    ray.init(address="local", num_cpus=a.cpus, include_dashboard=False, log_to_driver=False)
    wall: dict[str, float] = {}
    ezkl: dict[str, float] = {}

    def bench_prove() -> None:
        t0 = time.perf_counter()
        runs = dsperse.prove_batch(plan, list(xs), work / "prove", circuits=circuits, cluster="auto", job_id="bench",
                                   progress=False, config={"paths": {"ledger_enabled": False}})  # fmt: skip
        wall["prove"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert all(dsperse.verify(r, expected_input=x, ledger=False) for r, x in zip(runs, xs))
        res["prove_verify_s"] = time.perf_counter() - t0
        ezkl["prove"] = sum(p.seconds for r in runs for p in r.proofs)

    def bench_dataset() -> None:
        for name in ("dataset", "resume"):
            t0 = time.perf_counter()
            out = dsperse.prove_dataset(plan, src, work / "proven.parquet", circuits=circuits, cluster="auto",
                                        config={"paths": {"ledger_enabled": False}})  # fmt: skip
            wall[name] = time.perf_counter() - t0
            assert out.verified == a.rows, out
            ezkl[name] = 0.0 if out.proven == 0 else float(pq.read_table(out.out).column("seconds").to_numpy().sum())
            res[f"{name}_result"] = {"proven": out.proven, "resumed": out.resumed, "verified": out.verified}

    try:
        for step in ((bench_dataset, bench_prove) if a.dataset_first else (bench_prove, bench_dataset)):
            step()
    finally:
        ray.shutdown()

    rows = []
    for k, v in sorted(wall.items(), key=lambda kv: ["prove", "dataset", "resume"].index(kv[0])):
        ratio = f"{v / ezkl[k]:.2f}" if ezkl[k] else "-"
        rows.append([k, f"{v:.1f}", f"{60 * a.rows / v:.2f}", f"{v / wall['prove']:.2f}x", f"{ezkl[k]:.1f}", ratio])
    table(f"{a.rows} inputs x {len(circuits)} slices on one local Ray cluster ({a.cpus} CPUs); pools started inside "
          f"each call", ["config", "wall s", "rows/min", "vs prove", "sum EZKL s", "wall / sum EZKL"], rows)
    print(f"\nprove: dsperse.verify of the {a.rows} runs afterwards took {res['prove_verify_s']:.1f}s (outside its wall)")
    res.update(order="dataset first" if a.dataset_first else "prove first", wall_s=wall, ezkl_s=ezkl)
    save(res, a.out, work)


if __name__ == "__main__":
    main()
