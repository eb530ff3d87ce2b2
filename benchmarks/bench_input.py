"""Public vs hashed model input: rows, k, proof time and gas against input size (issue 11, item 4).

    .venv/bin/python benchmarks/bench_input.py                      # sizes 16,64,256,1024,3072
    .venv/bin/python benchmarks/bench_input.py --sizes 16,256 --record

A one-layer model (Linear n -> 4, so only the input grows) is proven as one slice twice: with the input public (n instances) and hashed
(one Poseidon instance), each at the smallest k EZKL needs. Each proof is submitted as a receipt on a fresh anvil
(the commitment + reveal that ProofOfInference takes); the standalone verifyProof gas isolates what the verifier
pays per public instance. Prints a table; --record writes it into benchmarks/RESULTS.md ("## Model input ...").
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SECTION = "## Model input: public vs hashed (issue 11)"


def build_model(n: int, path: Path) -> Path:
    import warnings

    import torch
    from torch import nn

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        torch.onnx.export(nn.Linear(n, 4).eval(), torch.randn(1, n), str(path), dynamo=False, opset_version=18,
                          input_names=["input"], output_names=["output"])  # fmt: skip
    return path


def measure(sizes: list[int], workdir: Path) -> list[dict]:
    import dsperse
    import dsperse.chain
    from dsperse.chain.client import submission_from_run
    from dsperse.chain.verifiers import slice_verifier
    from dsperse.circuits.build import CircuitConfig
    from dsperse.util import storage

    rows = []
    with dsperse.chain.local(deployments=workdir / "deployments.json", gas_limit=100_000_000) as chain:
        for n in sizes:
            model = build_model(n, workdir / f"linear{n}.onnx")
            x = np.random.default_rng(n).standard_normal((1, n)).astype(np.float32)
            for vis in ("public", "hashed"):
                plan = dsperse.slice(model, workdir / f"{vis}{n}", max_slices=1)
                t0 = time.perf_counter()
                circuits = dsperse.compile(plan, cache=workdir / "cache", calibration_input=x,
                                           config=CircuitConfig(input_visibility=vis))  # fmt: skip
                compile_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                run = dsperse.prove(plan, x, workdir / f"run-{vis}{n}", circuits=circuits, job_id=f"{vis}-{n}", progress=False)
                prove_s = time.perf_counter() - t0
                assert dsperse.verify(run, expected_input=x)
                key = chain.register_model(run)
                res = chain.submit(run, register=False)
                c = circuits[0]
                sub = submission_from_run(run)
                v = chain.contract(chain.model(key)["verifiers"][0], slice_verifier(c.vk, c.settings, c.srs, size_limit=None).contract.abi)
                verify_gas = int(v.functions.verifyProof(bytes.fromhex(sub.proofs[0][2:]), list(sub.instances[0])).estimate_gas())
                st = storage.read_json(Path(c.settings))
                rows.append({"n": n, "input": vis, "rows": st["num_rows"], "k": c.logrows, "instances": len(sub.instances[0]),
                             "compile_s": compile_s, "prove_s": prove_s, "pk_bytes": Path(c.pk).stat().st_size,
                             "verify_gas": verify_gas, "receipt_gas": res.gas_used})  # fmt: skip
                print(f"  n={n} {vis}: rows {st['num_rows']:,} k={c.logrows} prove {prove_s:.1f}s verifyProof {verify_gas:,} "
                      f"receipt {res.gas_used:,}", flush=True)  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    out = ["| input elements | input | public instances | rows | k | pk | prove s | verifyProof gas | receipt gas (commit + reveal) |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        out.append(f"| {r['n']:,} | {r['input']} | {r['instances']:,} | {r['rows']:,} | {r['k']} | {r['pk_bytes'] / 1e6:,.0f} MB | "
                   f"{r['prove_s']:.1f} | {r['verify_gas']:,} | {r['receipt_gas']:,} |")  # fmt: skip
    pub = [r for r in rows if r["input"] == "public"]
    if len(pub) >= 2:
        slope = np.polyfit([r["n"] for r in pub], [r["verify_gas"] for r in pub], 1)[0]
        out.append(f"\nPublic input: verifyProof grows by {slope:,.0f} gas per input element (least squares); hashed: "
                   "one instance whatever the size, paid for with ~41 rows per element (in their own columns).")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="16,64,256,1024,3072", help="comma-separated input sizes")
    p.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "out" / "input")
    p.add_argument("--record", action="store_true", help="write the table into benchmarks/RESULTS.md")
    a = p.parse_args(argv)
    os.environ.setdefault("RUST_LOG", "error")
    a.workdir.mkdir(parents=True, exist_ok=True)
    rows = measure([int(s) for s in a.sizes.split(",")], a.workdir)
    (a.workdir / "input.json").write_text(json.dumps(rows, indent=2))
    text = table(rows)
    print("\n" + text)
    if a.record:
        from bench_gas import machine, record

        record(f"{SECTION}\n\nMachine: {machine()}; {time.strftime('%Y-%m-%d')}. Command: "
               f"`.venv/bin/python benchmarks/bench_input.py --sizes {a.sizes} --record`.\n\n{text}\n", ROOT / "benchmarks" / "RESULTS.md",
               section=SECTION)  # fmt: skip


if __name__ == "__main__":
    main()
