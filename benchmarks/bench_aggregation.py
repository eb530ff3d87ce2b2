"""Aggregation cost: the plan table, and measured time / peak memory of what fits on this machine.

    python benchmarks/bench_aggregation.py --plan                 # instant: estimates per proof count and node size
    python benchmarks/bench_aggregation.py --mock 2               # mock_aggregate of a real 2-slice chain (k=22, ~7 GB)
    python benchmarks/bench_aggregation.py --real --gas           # setup + aggregate 1 proof at k=21 (~20 GB), EVM gas
    python benchmarks/bench_aggregation.py --recursion            # is a tree of aggregates sound? (~1 h, ~20 GB)

Each measured stage runs in its own child process, which reports its own peak RSS, so figures do not mix.
A stage whose estimated peak (+2 GB) exceeds MemAvailable is skipped, not attempted: the machine is shared.
Results go to benchmarks/out/aggregation.json; copy the tables to benchmarks/RESULTS.md by hand.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsperse.aggregation import planning as pl  # noqa: E402

GiB = 1024**3


def mem_available() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0.0


def machine() -> str:
    import ezkl

    with open("/proc/meminfo") as f:
        total = int(next(line for line in f if line.startswith("MemTotal")).split()[1]) * 1024
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {total / GiB:.0f} GiB, ezkl {ezkl.__version__}, load {os.getloadavg()[0]:.1f}"


def plan_table() -> list[dict]:
    rows = []
    print("\n| proofs | k | setup | setup peak | prove | prove peak | pk | basis |")
    print("|---|---|---|---|---|---|---|---|")
    for n in (1, 2, 4, 8, 16):
        e = pl.estimate(n)
        basis = "measured" if e.prove.measured and e.setup.measured else "extrapolated"
        print(f"| {n} | {e.logrows} | {e.setup.seconds / 60:.0f} min | {e.setup.peak_bytes / 1e9:.1f} GB | "
              f"{e.prove.seconds / 60:.0f} min | {e.prove.peak_bytes / 1e9:.1f} GB | {e.pk_bytes / 1e9:.1f} GB | {basis} |")  # fmt: skip
        rows.append({"n": n, "k": e.logrows, "setup_s": e.setup.seconds, "setup_peak": e.setup.peak_bytes,
                     "prove_s": e.prove.seconds, "prove_peak": e.prove.peak_bytes, "basis": basis})  # fmt: skip
    print("\n| node memory | fan-in | 3 slices | 8 slices |")
    print("|---|---|---|---|")
    for mem in (24 * GiB, 64e9, 128e9, 256e9):
        shapes = []
        for n in (3, 8):
            try:
                p = pl.plan(n, mem)
                shapes.append(f"{[len(lvl) for lvl in p.levels]} steps/level, peak {p.peak_bytes / 1e9:.0f} GB, ~{p.critical_path_seconds / 60:.0f} min")
            except Exception as exc:  # noqa: BLE001 - the refusal is the result
                shapes.append(f"refused: {str(exc)[:60]}...")
        print(f"| {mem / 1e9:.0f} GB | {pl.max_fan_in(mem)} | {shapes[0]} | {shapes[1]} |")
    return rows


# -- measured stages (child processes) -------------------------------------------------------------


def _seeded_input():
    import numpy as np

    return np.random.default_rng(42).standard_normal((1, 4)).astype(np.float32)


def _prove_mlp(work: Path, n: int):
    """The zoo MLP in ``n`` slices, proven for aggregation on the k=21 dev SRS's secret: (plan, circuits, run, srs)."""
    import dsperse
    from dsperse.circuits import srs as srs_mod
    from dsperse.circuits.build import CircuitConfig
    from dsperse.tools import zoo

    zoo.export("mlp", work / "mlp.onnx", 0)
    plan = dsperse.slice(work / "mlp.onnx", work / f"slices{n}", max_slices=n, strategy="layers")
    srs = srs_mod.dev_srs(21)
    circuits = dsperse.compile(plan, srs=srs.path)  # cut to the slices' k with the same secret (srs_shrink)
    cfg = CircuitConfig(proof_type="for-aggr")
    run = dsperse.prove(plan, _seeded_input(), work / f"run{n}", circuits=circuits, config=cfg, progress=False)
    return plan, circuits, run, srs


def child(stage: str, args: dict) -> dict:
    """Run ``stage`` in a child process; returns its JSON report (seconds, peak_rss)."""
    cmd = [sys.executable, __file__, "_child", stage, json.dumps(args)]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, RUST_LOG="error"))
    if proc.returncode != 0:
        return {"stage": stage, "error": (proc.stderr or proc.stdout)[-600:], "wall_s": time.time() - t0}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child_main(stage: str, args: dict) -> None:
    out: dict = {"stage": stage}
    t0 = time.time()
    if stage == "chain":
        plan, circuits, run, srs = _prove_mlp(Path(args["work"]), args["n"])
        out.update(proofs=[str(p.path) for p in sorted(run.proofs, key=lambda p: p.slice_index)],
                   settings=str(circuits[0].settings), slice_prove_s=[p.seconds for p in run.proofs],
                   logrows=circuits[0].logrows, srs=str(srs.path))  # fmt: skip
    elif stage == "leaf":
        out.update(_leaf(Path(args["work"])))
    elif stage == "aggr":
        out.update(_aggr_step(args))
    elif stage == "evm_roots":
        out.update(_evm_roots(args))
    elif stage == "mock":
        from dsperse.aggregation import aggregate as A

        try:
            A.mock(args["proofs"], args["work"], logrows=args["k"], split_proofs=len(args["proofs"]) > 1)
            out["ok"] = True
        except Exception as exc:  # noqa: BLE001
            out.update(ok=False, error=str(exc)[-300:])
    elif stage in ("setup", "prove"):
        from dsperse.aggregation import aggregate as A

        keys = A.setup(args["proofs"], args["work"], logrows=args["k"], srs=args["srs"], split_proofs=len(args["proofs"]) > 1)
        out.update(setup_s=keys.seconds, reused=keys.reused, pk_bytes=keys.pk.stat().st_size)
        if stage == "prove":
            t1 = time.time()
            p = A.aggregate(args["proofs"], Path(args["work"]) / "aggr.json", keys, transcript="evm")
            out.update(prove_s=time.time() - t1, proof=str(p.path))
            t1 = time.time()
            out["verify_aggr_ok"] = A.verify_aggr(p, keys)
            out["verify_aggr_s"] = time.time() - t1
    out["seconds"] = time.time() - t0
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out), flush=True)
    sys.stdout.flush()
    os._exit(0)


# -- recursion: does a root over aggregates check the leaves? ------------------------------------------------


def _leaf(work: Path) -> dict:
    """The zoo MLP as one for-aggr slice on the k=21 SRS's secret, and a forged copy of its proof."""
    import ezkl

    from dsperse.aggregation import proofs as P
    from dsperse.errors import ProofError
    from dsperse.proofsystem import _ezkl

    plan, circuits, run, srs = _prove_mlp(work, 1)
    c = circuits[0]
    honest = run.proofs[0].path
    forged = P.load(honest)
    pb = list(forged["proof"])
    pb[-32:] = pb[:32]  # replace the last G1 point: the file still parses, the proof is false
    forged["proof"], forged["hex_proof"] = pb, "0x" + bytes(pb).hex()
    bad = work / "leaf_forged.json"
    bad.write_text(json.dumps(forged))
    try:
        ok = _ezkl.call("verify", ProofError, ezkl.verify, str(bad), str(c.settings), str(c.vk), str(c.srs))
        forged_native = "accepted" if ok else "rejected"
    except ProofError as exc:
        forged_native = "rejected: " + str(exc)[-80:]
    return {"leaf": str(honest), "forged": str(bad), "settings": str(c.settings), "srs": str(srs.path),
            "slice_k": c.logrows, "slice_prove_s": run.proofs[0].seconds, "forged_native_verify": forged_native,
            "plan": str(plan.root)}  # fmt: skip


def _aggr_step(args: dict) -> dict:
    """setup (cached) + aggregate of one proof; ``stock`` strips the declared accumulator as EZKL 22.3 ships it."""
    from dsperse.aggregation import aggregate as A
    from dsperse.aggregation import proofs as P

    inputs = args["proofs"]
    if args.get("stock"):
        stripped = []
        for p in inputs:
            d = P.load(p)
            d["protocol"]["accumulator_indices"] = []
            q = Path(args["work"]) / f"stock_{Path(p).name}"
            q.parent.mkdir(parents=True, exist_ok=True)
            q.write_text(json.dumps(d))
            stripped.append(str(q))
        inputs = stripped
    keys = A.setup(inputs, args["work"], logrows=21, srs=args["srs"], split_proofs=False)
    p = A.aggregate(inputs, args["out"], keys, transcript=args["transcript"])
    return {"setup_s": keys.seconds, "reused": keys.reused, "prove_s": p.seconds, "proof": str(p.path), "inputs": inputs}


def _evm_roots(args: dict) -> dict:
    """Deploy the root verifier for ``shape`` (an inner aggregate) and call verifyProof on each root."""
    import dsperse.chain as C
    from dsperse.aggregation import aggregate as A

    keys = A.setup([args["shape"]], args["work"], logrows=21, srs=args["srs"], split_proofs=False)
    sol = A.evm_verifier(keys, args["settings"], Path(args["work"]) / "RootVerifier.sol")
    ver = next(iter(C.compile_solidity({"V.sol": sol}).values()))
    res = {}
    with C.local() as chain:
        v = chain.contract(chain.deploy(ver, what="root verifier"), ver.abi)
        for name, path in args["roots"].items():
            pb, inst = A.evm_calldata(path)
            try:
                ok = v.functions.verifyProof(pb, inst).call()
                res[name] = {"accepted": bool(ok), "gas": v.functions.verifyProof(pb, inst).estimate_gas()}
            except Exception as exc:  # noqa: BLE001 - a revert is the verdict
                res[name] = {"accepted": False, "revert": str(exc)[:120]}
        if "receipt_root" in args:
            res["receipt_gas"] = _receipt_gas(chain, sol, args)
    return {"verdicts": res}


def _receipt_gas(chain, root_sol: Path, args: dict) -> dict:
    """Gas for the same model and input: the AggregatedReceipt over the 2-level root vs the linked receipt."""
    import dsperse
    from dsperse.aggregation import aggregate as A
    from dsperse.aggregation import proofs as P
    from dsperse.aggregation import receipt as R

    io = R.slice_io(P.load(args["leaf"]), json.loads(Path(args["settings"]).read_text()))
    lay = R.layout([io], [[[0]], [[0]]], R.slice_instances([args["leaf"]]))
    _, r = R.deploy(chain, root_sol, lay, b"\x00" * 31 + b"\x01")
    pb, inst = A.evm_calldata(args["receipt_root"])
    agg_gas = R.submit(chain, r, b"\x01" * 32, pb, inst, expected_input_hash=R.input_hash(inst, lay))["gasUsed"]
    # the linked receipt of the issue-4 path: the same slice, EVM-transcript proof, ProofOfInference
    plan = dsperse.SlicePlan.load(args["plan"])
    run = dsperse.prove(plan, _seeded_input(), Path(args["work"]) / "linked-run", config={"paths": {"srs": args["srs"]}},
                        progress=False)  # fmt: skip
    chain.register_model(run)
    linked_gas = chain.submit(run, job_id="linked").gas_used
    return {"aggregated_receipt": agg_gas, "linked_receipt": linked_gas, "slices": 1}


def recursion(work: Path) -> dict:
    """Leaf -> aggregate (Poseidon) -> root (EVM), for an honest and a forged leaf, stock EZKL vs dsperse."""
    work.mkdir(parents=True, exist_ok=True)
    steps: dict = {}

    def step(name: str, stage: str, args: dict) -> dict:
        r = child(stage, args)
        steps[name] = r
        secs = r.get("prove_s", r.get("seconds", 0))
        print(f"  {name:<24} {secs:7.0f} s  peak {r.get('peak_rss', 0) / 1e9:5.1f} GB  {r.get('error', '')[-200:]}", flush=True)
        if "error" in r:
            raise SystemExit(f"recursion: step {name} failed")
        return r

    leaf = step("leaf", "leaf", {"work": str(work)})
    common = {"srs": leaf["srs"]}
    a = step("aggregate(leaf)", "aggr", {**common, "proofs": [leaf["leaf"]], "out": str(work / "A.json"),
                                         "transcript": "poseidon", "work": str(work / "A")})  # fmt: skip
    a_bad = step("aggregate(forged)", "aggr", {**common, "proofs": [leaf["forged"]], "out": str(work / "A_bad.json"),
                                               "transcript": "poseidon", "work": str(work / "A")})  # fmt: skip
    r_good = step("root(A)", "aggr", {**common, "proofs": [a["proof"]], "out": str(work / "R_good.json"),
                                      "transcript": "evm", "work": str(work / "R")})  # fmt: skip
    r_bad = step("root(A_bad)", "aggr", {**common, "proofs": [a_bad["proof"]], "out": str(work / "R_bad.json"),
                                         "transcript": "evm", "work": str(work / "R")})  # fmt: skip
    r_stock = step("stock root(A_bad)", "aggr", {**common, "proofs": [a_bad["proof"]], "out": str(work / "Rstock_bad.json"),
                                                 "transcript": "evm", "work": str(work / "Rstock"), "stock": True})  # fmt: skip
    ev = step("evm dsperse", "evm_roots", {**common, "shape": a["proof"], "settings": leaf["settings"], "work": str(work / "R"),
                                           "roots": {"R_good": r_good["proof"], "R_bad": r_bad["proof"]},
                                           "receipt_root": r_good["proof"], "leaf": leaf["leaf"], "plan": leaf["plan"]})  # fmt: skip
    ev_stock = step("evm stock", "evm_roots", {**common, "shape": r_stock["inputs"][0], "settings": leaf["settings"],
                                               "work": str(work / "Rstock"), "roots": {"Rstock_bad": r_stock["proof"]}})  # fmt: skip
    verdicts = {**ev["verdicts"], **ev_stock["verdicts"]}
    gas = verdicts.pop("receipt_gas")
    print(f"\nforged leaf alone, ezkl.verify: {leaf['forged_native_verify']}")
    print("\n| root | inner aggregate | declared accumulator | EVM verifier | gas |")
    print("|---|---|---|---|---|")
    for name, inner, decl in (("R_good", "A (honest leaf)", "yes (dsperse)"), ("R_bad", "A_bad (forged leaf)", "yes (dsperse)"),
                              ("Rstock_bad", "A_bad (forged leaf)", "no (stock EZKL 22.3)")):  # fmt: skip
        v = verdicts[name]
        print(f"| {name} | {inner} | {decl} | {'accepts' if v['accepted'] else 'rejects'} | {v.get('gas', '-')} |")
    sound = verdicts["R_good"]["accepted"] and not verdicts["R_bad"]["accepted"]
    print(f"\ndsperse tree sound on this test: {sound}; stock EZKL accepts the forged leaf: {verdicts['Rstock_bad']['accepted']}")
    print(f"receipt gas, same model and input: aggregated {gas['aggregated_receipt']:,} vs linked {gas['linked_receipt']:,} (1 slice)")
    return {"steps": steps, "verdicts": verdicts, "sound": sound, "receipt_gas": gas}


def gas(agg: dict, chain_info: dict, work: Path) -> dict:
    """Gas of the aggregated receipt vs EVM verification of the slice proof alone (anvil)."""
    import dsperse.chain as C
    from dsperse.aggregation import aggregate as A
    from dsperse.aggregation import receipt as R

    keys = A.setup(chain_info["proofs"], work / "keys", logrows=pl.logrows_for(len(chain_info["proofs"])),
                   srs=chain_info["srs"], split_proofs=len(chain_info["proofs"]) > 1)  # fmt: skip
    sol = A.evm_verifier(keys, chain_info["settings"], work / "AggregateVerifier.sol")
    slices = [R.slice_io(json.loads(Path(p).read_text()), json.loads(Path(chain_info["settings"]).read_text())) for p in chain_info["proofs"]]
    lay = R.layout(slices, [[list(range(len(slices)))]], R.slice_instances(chain_info["proofs"]))
    pb, inst = A.evm_calldata(agg["proof"])
    with C.local() as chain:
        v, r = R.deploy(chain, sol, lay, b"\x00" * 31 + b"\x01")
        rc = R.submit(chain, r, b"\x07" * 32, pb, inst)
        ver = next(iter(C.compile_solidity({"V.sol": sol}).values()))
        verify_gas = chain.contract(v, ver.abi).functions.verifyProof(pb, inst).estimate_gas()
    return {"aggregated_receipt_gas": rc["gasUsed"], "aggregate_verifyProof_gas": verify_gas,
            "verifier_runtime_bytes": ver.runtime_size}  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        _child_main(sys.argv[2], json.loads(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", action="store_true", help="print the estimate tables (instant)")
    ap.add_argument("--mock", type=int, nargs="*", default=[], help="mock_aggregate real chains of these slice counts")
    ap.add_argument("--real", action="store_true", help="setup + aggregate one proof at k=21 (needs ~22 GB free)")
    ap.add_argument("--gas", action="store_true", help="with --real: gas of the aggregated receipt on anvil")
    ap.add_argument("--recursion", action="store_true",
                    help="aggregate an aggregate of an honest and of a forged leaf, stock EZKL vs dsperse; EVM verdicts")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "aggregation")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "aggregation.json")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    report: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    print(f"machine: {report['machine']}")
    if a.plan or not (a.mock or a.real or a.recursion):
        report["plan"] = plan_table()
    report["mock"] = []
    for n in a.mock:
        k = pl.logrows_for(n)
        need = pl.estimate(n).mock.peak_bytes
        if mem_available() < need + 2e9:
            print(f"mock {n} proofs (k={k}): skipped, needs ~{need / 1e9:.0f}+2 GB, {mem_available() / 1e9:.1f} GB available")
            continue
        ch = child("chain", {"n": n, "work": str(a.work)})
        if "error" in ch:
            print(f"chain of {n}: {ch['error']}")
            continue
        r = child("mock", {"proofs": ch["proofs"], "k": k, "work": str(a.work / f"mock{n}")})
        r.update(n=n, k=k, slice_prove_s=ch.get("slice_prove_s"))
        report["mock"].append(r)
        print(f"mock {n} proofs k={k}: ok={r.get('ok')} {r.get('seconds', 0):.0f} s, peak {r.get('peak_rss', 0) / 1e9:.1f} GB")
    if a.real:
        e = pl.estimate(1)
        if mem_available() < e.peak_bytes + 2e9:
            print(f"real aggregation: skipped, needs ~{e.peak_bytes / 1e9:.0f}+2 GB, {mem_available() / 1e9:.1f} GB available")
        else:
            ch = child("chain", {"n": 1, "work": str(a.work)})
            setup = child("setup", {"proofs": ch["proofs"], "k": 21, "srs": ch["srs"], "work": str(a.work / "real")})
            prove = child("prove", {"proofs": ch["proofs"], "k": 21, "srs": ch["srs"], "work": str(a.work / "real")})
            report["real"] = {"setup": setup, "prove": prove}
            print(f"setup k=21: {setup.get('setup_s', 0):.0f} s (reused={setup.get('reused')}), peak {setup.get('peak_rss', 0) / 1e9:.1f} GB")
            print(f"prove k=21: {prove.get('prove_s', 0):.0f} s, peak {prove.get('peak_rss', 0) / 1e9:.1f} GB, "
                  f"verify_aggr {prove.get('verify_aggr_s', 0):.1f} s")  # fmt: skip
            if a.gas and "proof" in prove:
                report["gas"] = gas(prove, ch, a.work / "gas")
                print(f"gas: {report['gas']}")
    if a.recursion:
        need = pl.estimate(1).peak_bytes
        if mem_available() < need + 2e9:
            print(f"recursion: skipped, needs ~{need / 1e9:.0f}+2 GB, {mem_available() / 1e9:.1f} GB available")
        else:
            report["recursion"] = recursion(a.work / "recursion")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
