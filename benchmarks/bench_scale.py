"""Scale: the whole model, a `layers` chain and tiled graph plans at several k, side by side on one model.

    .venv/bin/python benchmarks/bench_scale.py --model lenet_cifar --modes tiled:16,tiled:15 --gas
    .venv/bin/python benchmarks/bench_scale.py --model lenet_cifar --modes whole,layers:5,tiled:17   # needs ~23 GB
    .venv/bin/python benchmarks/bench_scale.py --model cifar16 --modes whole-rows,tiled:16 --gas

``whole-rows`` counts the whole model's rows with EZKL's ``gen_settings`` and sets nothing up: for a model too
big to set up on this machine. ``--gas`` submits each proven run as one receipt to a fresh local anvil.

Per mode: slices and distinct circuits, logrows per slice, total and largest rows, pk bytes, compile+setup
time, the largest slice's prove time (the critical path on a cluster), the sum of prove times (the work on
one box), and the peak RSS of the largest prover. Every slice is proven in its own child process, one at a
time, so each peak RSS is that proof's own and no two proofs share the 2 cores. Keys go to a fresh cache
(setup is measured); dev SRS files are shared from the normal cache. Results: benchmarks/out/scale-*.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, resource, sys
from pathlib import Path
from dsperse.proving.tasks import ProveTask, prove_slice
t = json.loads(sys.argv[1])
p = prove_slice(ProveTask(t["slice_index"], Path(t["witness"]), Path(t["compiled"]), Path(t["pk"]), Path(t["srs"]), Path(t["out"])))
print(json.dumps({"seconds": p.seconds, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def _plan(mode: str, path: Path, out: Path):
    import dsperse

    kind, _, arg = mode.partition(":")
    if kind == "whole":
        return dsperse.slice(path, out, cuts=[])
    if kind == "layers":
        return dsperse.slice(path, out, strategy="layers", max_slices=int(arg or 5))
    if kind == "tiled":
        return dsperse.slice(path, out, max_logrows=int(arg))
    raise SystemExit(f"unknown mode {mode!r}: whole, layers[:N], tiled:K")


def whole_rows(model: str, workdir: Path) -> dict:
    """The whole model as one circuit, counted by EZKL (public input and output, fixed weights); no setup."""
    import ezkl

    from dsperse.proofsystem import _ezkl
    from dsperse.slicing import sizing
    from dsperse.tools import zoo
    from dsperse.util import storage
    wd = workdir / model / "whole-rows"
    wd.mkdir(parents=True, exist_ok=True)
    path = zoo.export(model, wd / f"{model}.onnx")
    ra = _ezkl.run_args(input_visibility="public", output_visibility="public", param_visibility="fixed")
    ezkl.gen_settings(str(path), str(wd / "settings.json"), py_run_args=ra)
    rows = int(storage.read_json(wd / "settings.json")["num_rows"])
    k = sizing.logrows_for(rows)
    print(f"whole {model}: {rows:,} rows, k={k}; proving peak ~{sizing.peak_bytes(k) / 1e9:.0f} GB (sizing.PEAK_BYTES)", flush=True)
    return {"model": model, "mode": "whole-rows", "slices": 1, "circuits": 1, "edges": 0, "logrows": [k], "rows": [rows],
            "est_peak_rss": sizing.peak_bytes(k)}


def measure(model: str, mode: str, workdir: Path, gas: bool = False) -> dict:
    import dsperse
    from dsperse.circuits import srs as srs_mod
    from dsperse.circuits.build import compile_plan
    from dsperse.proving.runs import Manifest, prepare_witnesses
    from dsperse.tools import zoo

    wd = workdir / model / mode.replace(":", "-")
    cache = wd / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / "srs").exists():
        (cache / "srs").symlink_to(srs_mod.cache_dir() / "srs", target_is_directory=True)
    path = zoo.export(model, wd / f"{model}.onnx")
    t0 = time.perf_counter()
    plan = _plan(mode, path, wd / "slices")
    t_slice = time.perf_counter() - t0
    print(plan.describe(), flush=True)
    x = np.random.default_rng(0).standard_normal(plan.input_shape).astype(np.float32)
    t0 = time.perf_counter()
    circuits = compile_plan(plan, cache=cache)
    t_compile = time.perf_counter() - t0
    run_dir = wd / "run"
    run_dir.mkdir(exist_ok=True)
    manifest = Manifest.open(run_dir / "manifest.json", [c.key_id for c in circuits], "bench", None)
    t0 = time.perf_counter()
    witnesses = prepare_witnesses(plan, circuits, x, run_dir, manifest)
    t_witness = time.perf_counter() - t0
    proofs = []
    for c, w in zip(circuits, witnesses):
        task = {"slice_index": c.slice_index, "witness": str(w.path), "compiled": str(c.compiled), "pk": str(c.pk),
                "srs": str(c.srs), "out": str(run_dir / f"proof_{c.slice_index}.json")}  # fmt: skip
        res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(task)], capture_output=True, text=True, cwd=ROOT)
        if res.returncode != 0:
            raise SystemExit(f"slice {c.slice_index} failed: {res.stderr[-2000:]}")
        proofs.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"  slice {c.slice_index}: k={c.logrows} rows={c.num_rows:,} prove {proofs[-1]['seconds']:.1f}s "
              f"peak {proofs[-1]['peak_rss'] / 1e9:.2f} GB", flush=True)
    from dsperse.artifacts import SliceProof
    from dsperse.proving.runs import finish_run
    from dsperse.util import storage

    records = [SliceProof(c.slice_index, run_dir / f"proof_{c.slice_index}.json",
                          storage.sha256_file(run_dir / f"proof_{c.slice_index}.json"), p["seconds"])
               for c, p in zip(circuits, proofs)]  # fmt: skip
    run = finish_run(plan, circuits, witnesses, records, run_dir, None)
    t0 = time.perf_counter()
    dsperse.verify(run, reference=True)
    t_verify = time.perf_counter() - t0
    largest = max(range(len(circuits)), key=lambda i: (circuits[i].num_rows, proofs[i]["seconds"]))
    gas_used = None
    if gas:
        from dsperse import chain as chain_mod

        with chain_mod.local(gas_limit=300_000_000, code_size_limit=10**6, deployments=wd / "deployments.json") as rc:
            gas_used = rc.submit(run).gas_used
        print(f"  receipt gas ({len(plan.slices)} slices, {len(plan.edges)} edges): {gas_used:,}", flush=True)
    return {
        "model": model, "mode": mode, "slices": len(plan.slices), "circuits": len({c.key_id for c in circuits}),
        "edges": len(plan.edges), "logrows": [c.logrows for c in circuits], "rows": [c.num_rows for c in circuits],
        "pk_bytes": sum(c.pk.stat().st_size for c in {c.key_id: c for c in circuits}.values()),
        "slice_s": t_slice, "compile_setup_s": t_compile, "witness_s": t_witness, "verify_s": t_verify,
        "prove_s": [p["seconds"] for p in proofs], "largest_rows_prove_s": proofs[largest]["seconds"],
        "max_prove_s": max(p["seconds"] for p in proofs), "sum_prove_s": sum(p["seconds"] for p in proofs),
        "max_peak_rss": max(p["peak_rss"] for p in proofs), "receipt_gas": gas_used,
    }


def table(results: list[dict]) -> str:
    head = ("| mode | slices / circuits / edges | logrows | total rows | largest rows | pk total | compile+setup | largest slice prove "
            "| sum of proves | peak RSS (largest prover) | receipt gas |\n|---|---|---|---|---|---|---|---|---|---|---|")

    def f(r: dict, key: str, fmt: str, scale: float = 1.0) -> str:
        return "not run" if r.get(key) is None else format(r[key] / scale if scale != 1 else r[key], fmt)

    rows = [
        f"| {r['mode']} | {r['slices']} / {r['circuits']} / {r['edges']} | {sorted(set(r['logrows']))} | {sum(r['rows']):,} | "
        f"{max(r['rows']):,} | {f(r, 'pk_bytes', '.2f', 1e9)} GB | {f(r, 'compile_setup_s', '.0f')} s | {f(r, 'max_prove_s', '.1f')} s | "
        f"{f(r, 'sum_prove_s', '.0f')} s | {f(r, 'max_peak_rss', '.2f', 1e9)} GB | {f(r, 'receipt_gas', ',')} |"
        for r in results
    ]
    return "\n".join([head, *rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lenet_cifar")
    p.add_argument("--modes", default="tiled:16,tiled:15", help="comma list of whole, whole-rows, layers[:N], tiled:K")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/dsperse-bench-scale"))
    p.add_argument("--gas", action="store_true", help="submit each run's receipt to a local anvil and record its gas")
    a = p.parse_args()
    results = []
    for mode in a.modes.split(","):
        results.append(whole_rows(a.model, a.workdir) if mode == "whole-rows" else measure(a.model, mode, a.workdir, a.gas))
        print(table(results), flush=True)
    out = ROOT / "benchmarks" / "out" / f"scale-{a.model}.json"
    out.parent.mkdir(exist_ok=True)
    old = json.loads(out.read_text())["results"] if out.exists() else []  # keep other modes' earlier runs
    merged = [r for r in old if r["mode"] not in {x["mode"] for x in results}] + results
    out.write_text(json.dumps({"machine": f"{platform.node()} {platform.processor()} {resource.getpagesize()}",
                               "results": merged}, indent=1))  # fmt: skip
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
