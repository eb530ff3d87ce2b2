"""Gas of on-chain receipts for 1-4 slices: deploy per model, gas per receipt, and how many slices fit a block.

    .venv/bin/python benchmarks/bench_gas.py                # 1,2,3,4 slices, prints tables
    .venv/bin/python benchmarks/bench_gas.py --record       # also writes "## Gas (issue 4)" in benchmarks/RESULTS.md

A seeded 4-layer MLP (4 Gemm) is cut into n = 1..4 slices ("layers" strategy), each proven with EZKL
(k=15, dev SRS), then registered and submitted on a fresh local anvil (30M block gas limit). Gas is
what the chain reports (receipt gasUsed), so it does not depend on the machine. The marginal gas per
slice comes from a least-squares line through the receipts; the block gas limit divided by it caps
the slice count of a single-transaction receipt. ``--reusable`` also measures EZKL's reusable verifier.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECTION = "## Gas (issue 11: commit, reveal, parts)"
PART_BLOCK_GAS = 1_000_000
"""Block gas limit the parts measurement lowers anvil to: one Gemm slice (~0.6 M) per part."""


def build_model(path: Path) -> Path:
    """Four Linear layers with ReLU: four Gemm nodes, so up to four 'layers' slices."""
    import warnings

    import torch
    from torch import nn

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, torch.randn(1, 4), str(path), dynamo=False, opset_version=18,
                          input_names=["input"], output_names=["output"])  # fmt: skip
    return path


def _gas_of_blocks(w3, start: int, end: int) -> list[int]:
    """gasUsed of every transaction mined in blocks start..end (anvil mines one per block)."""
    out = []
    for b in range(start, end + 1):
        for tx in w3.eth.get_block(b, full_transactions=True)["transactions"]:
            out.append(int(w3.eth.get_transaction_receipt(tx["hash"])["gasUsed"]))
    return out


def measure(slices: list[int], workdir: Path, reusable: bool) -> dict:
    import dsperse
    import dsperse.chain
    from dsperse.chain.client import submission_from_run
    from dsperse.chain.deployments import Deployments
    from dsperse.chain.verifiers import slice_verifier

    model = build_model(workdir / "mlp4.onnx")
    x = np.random.default_rng(0).standard_normal((1, 4)).astype(np.float32)
    rows, runs = [], {}
    with dsperse.chain.local(deployments=workdir / "deployments.json") as chain:
        w3 = chain.w3
        b0 = w3.eth.block_number
        chain.registry(deploy=True)
        registry_gas = sum(_gas_of_blocks(w3, b0 + 1, w3.eth.block_number))
        block_limit = int(w3.eth.get_block("latest")["gasLimit"])
        for n in slices:
            plan = dsperse.slice(model, workdir / f"slices{n}", max_slices=n, strategy="layers")
            if len(plan.slices) != n:
                raise SystemExit(f"asked for {n} slices, slicer made {len(plan.slices)}")
            run = dsperse.prove(plan, x, workdir / f"run{n}", job_id=f"bench-{n}", progress=False)
            runs[n] = run
            # a fresh address book per model: slices shared between the n-slice models (same key) would
            # otherwise be deployed once and make later models look cheaper than they are
            chain.deployments = Deployments(workdir / f"deployments-{n}.json")
            b0 = w3.eth.block_number
            chain.register_model(run)
            gas = _gas_of_blocks(w3, b0 + 1, w3.eth.block_number)
            deploys, register = gas[:-1], gas[-1]
            b1 = w3.eth.block_number
            res = chain.submit(run)
            commit_gas, reveal_gas = _gas_of_blocks(w3, b1 + 1, w3.eth.block_number)
            parts = _in_parts(chain, run, f"bench-parts-{n}")
            sub = submission_from_run(run)
            verify_alone = []
            for c, addr, proof, inst in zip(run.circuits, chain.model(chain.register_model(run))["verifiers"], sub.proofs, sub.instances):
                v = chain.contract(addr, slice_verifier(c.vk, c.settings, c.srs).contract.abi)
                verify_alone.append(int(v.functions.verifyProof(bytes.fromhex(proof[2:]), list(inst)).estimate_gas()))
            runtime = [slice_verifier(c.vk, c.settings, c.srs).contract.runtime_size for c in run.circuits]
            rows.append({
                "slices": n, "verifier_deploy_gas": deploys, "register_gas": register, "receipt_gas": res.gas_used,
                "commit_gas": commit_gas, "reveal_gas": reveal_gas, "parts_gas": parts,
                "verify_alone_gas": verify_alone, "proof_bytes": [len(p) // 2 - 1 for p in sub.proofs],
                "verifier_runtime_bytes": runtime,
            })  # fmt: skip
            print(f"  {n} slice(s): receipt {res.gas_used:,} gas", flush=True)
        result = {"rows": rows, "registry_deploy_gas": registry_gas, "block_gas_limit": block_limit}
        if reusable:
            result["reusable"] = measure_reusable(chain, runs[max(slices)], workdir / "reusable")
    ns = np.array([r["slices"] for r in rows], float)
    gas = np.array([r["receipt_gas"] for r in rows], float)
    if len(rows) >= 2:
        slope, intercept = np.polyfit(ns, gas, 1)
        result["fit"] = {"per_slice": slope, "fixed": intercept, "max_slices": int((block_limit - intercept) // slope)}
    return result


def _in_parts(chain, run, job_id: str) -> list[int]:
    """Gas of each transaction (commitment first) of the same receipt on blocks of PART_BLOCK_GAS."""
    w3 = chain.w3
    limit = chain._block_gas_limit()
    w3.provider.make_request("anvil_setBlockGasLimit", [hex(PART_BLOCK_GAS)])
    w3.provider.make_request("evm_mine", [])
    try:
        b = w3.eth.block_number
        chain.submit(run, job_id=job_id, register=False)
        return _gas_of_blocks(w3, b + 1, w3.eth.block_number)
    finally:
        w3.provider.make_request("anvil_setBlockGasLimit", [hex(limit)])
        w3.provider.make_request("evm_mine", [])


def measure_reusable(chain, run, workdir: Path) -> dict:
    """EZKL's reusable verifier: one contract for every slice, plus a registered VK artifact per slice."""
    from dsperse.chain.client import submission_from_run
    from dsperse.chain.toolchain import compile_solidity

    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, RUST_LOG="error", PYTHONPATH=str(ROOT))
    sources, vkas = [], []
    for c in run.circuits:
        sol, vka = workdir / f"reusable{c.slice_index}.sol", workdir / f"vka{c.slice_index}.bin"
        subprocess.run([sys.executable, "-m", "dsperse.proofsystem._evm_verifier", "--vk", str(c.vk), "--settings", str(c.settings),
                        "--srs", str(c.srs), "--out", str(sol), "--reusable", "--vka", str(vka)], env=env, check=True)  # fmt: skip
        sources.append(sol.read_text())
        raw = vka.read_bytes()
        count = int.from_bytes(raw[:8], "little")  # bincode Vec<[u8; 32]>: u64 length, then the words
        vkas.append([raw[8 + 32 * i : 8 + 32 * (i + 1)] for i in range(count)])
    same = all(s == sources[0] for s in sources)
    compiled = next(iter(compile_solidity({"Reusable.sol": sources[0]}).values()))
    w3 = chain.w3
    b0 = w3.eth.block_number
    addr = chain.deploy(compiled)
    deploy = sum(_gas_of_blocks(w3, b0 + 1, w3.eth.block_number))
    v = chain.contract(addr, compiled.abi)
    sub = submission_from_run(run)
    register, verify = [], []
    for words, proof, inst in zip(vkas, sub.proofs, sub.instances):
        register.append(int(chain.transact(v.functions.registerVka(words))["gasUsed"]))
        fn = v.functions.verifyProof(bytes.fromhex(proof[2:]), list(inst), words)
        data = fn._encode_transaction_data()
        ok = w3.eth.call({"to": addr, "data": data})[:32]
        verify.append(int(w3.eth.estimate_gas({"to": addr, "data": data, "from": chain.address})) if int.from_bytes(ok, "big") == 1 else -1)
    return {"same_contract_for_all_slices": same, "deploy_gas": deploy, "runtime_bytes": compiled.runtime_size,
            "register_vka_gas": register, "verify_gas": verify, "vka_words": [len(w) for w in vkas]}  # fmt: skip


def machine() -> str:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    from dsperse.chain.toolchain import find_toolchain

    anvil = subprocess.run([str(find_toolchain().anvil), "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    import ezkl

    return (f"{platform.node() or 'host'}: {cpu or platform.processor()}, {os.cpu_count()} cores, {mem:.0f} GiB RAM; "
            f"{anvil}, solc-js 0.8.20 (optimizer 200 runs), EZKL {getattr(ezkl, '__version__', '22.3.0')}, k=15 dev SRS")  # fmt: skip


def table(result: dict) -> str:
    lines = [
        "| slices | verifier deploys (gas) | registerModel | deploy per model | receipt: commit + reveal = total | "
        f"same receipt on {PART_BLOCK_GAS // 10**6} M-gas blocks: transactions (total) | sum of standalone verifyProof | "
        "proof bytes | verifier runtime bytes |",
        "|---:|---|---:|---:|---|---|---:|---|---|",
    ]
    for r in result["rows"]:
        per_model = sum(r["verifier_deploy_gas"]) + r["register_gas"]
        lines.append(
            f"| {r['slices']} | {' + '.join(f'{g:,}' for g in r['verifier_deploy_gas'])} | {r['register_gas']:,} | "
            f"{per_model:,} | {r['commit_gas']:,} + {r['reveal_gas']:,} = {r['receipt_gas']:,} | "
            f"{' + '.join(f'{g:,}' for g in r['parts_gas'])} ({sum(r['parts_gas']):,}) | {sum(r['verify_alone_gas']):,} | "
            f"{', '.join(map(str, r['proof_bytes']))} | {', '.join(map(str, r['verifier_runtime_bytes']))} |"
        )
    out = "\n".join(lines)
    out += f"\n\nRegistry (ProofOfInference) deploy, once per chain: {result['registry_deploy_gas']:,} gas."
    if fit := result.get("fit"):
        out += (f"\nLeast-squares fit: receipt gas = {fit['fixed']:,.0f} + {fit['per_slice']:,.0f} x slices; with the "
                f"{result['block_gas_limit']:,} block gas limit one reveal transaction holds at most **{fit['max_slices']} slices** "
                "like these (Gemm/ReLU slices at k=15; slices with more columns or lookups have bigger proofs and dearer "
                "verifiers: measure them); a longer plan is sent in parts. Calldata caps a part earlier on public networks: geth's txpool refuses "
                f"transactions over 128 KiB, i.e. about {128 * 1024 // (max(max(r['proof_bytes']) for r in result['rows']) + 160)} "
                "slices of this proof size.")  # fmt: skip
    if ru := result.get("reusable"):
        out += (
            "\n\nEZKL reusable verifier (measured on the largest model above): "
            f"same contract for every slice: {ru['same_contract_for_all_slices']}; deploy once {ru['deploy_gas']:,} gas "
            f"(runtime {ru['runtime_bytes']:,} bytes); registerVka per slice {', '.join(f'{g:,}' for g in ru['register_vka_gas'])}; "
            f"verifyProof per slice {', '.join(f'{g:,}' for g in ru['verify_gas'])} (VK artifact of "
            f"{', '.join(map(str, ru['vka_words']))} words passed as calldata on every call)."
        )
    return out


def record(text: str, path: Path, section: str = SECTION) -> None:
    """Replace (or append) only the ``section`` of RESULTS.md (this benchmark's by default)."""
    body = path.read_text() if path.exists() else "# Benchmark results\n"
    start = body.find(section)
    if start == -1:
        body = body.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        nxt = body.find("\n## ", start + len(section))
        body = body[:start] + text.rstrip("\n") + "\n" + (body[nxt:] if nxt != -1 else "")
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(body)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slices", default="1,2,3,4", help="comma-separated slice counts (default 1,2,3,4)")
    p.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "out" / "gas")
    p.add_argument("--reusable", action="store_true", help="also measure EZKL's reusable verifier")
    p.add_argument("--record", action="store_true", help="write the tables into benchmarks/RESULTS.md")
    a = p.parse_args(argv)
    os.environ.setdefault("RUST_LOG", "error")
    result = measure([int(s) for s in a.slices.split(",")], a.workdir, a.reusable)
    (a.workdir / "gas.json").write_text(json.dumps(result, indent=2, default=float))
    text = table(result)
    print("\n" + text)
    if a.record:
        md = f"{SECTION}\n\nMachine: {machine()}; {time.strftime('%Y-%m-%d')}. Gas is what the chain reports, independent of machine load. Command: `.venv/bin/python benchmarks/bench_gas.py{' --reusable' if a.reusable else ''} --record`.\n\n{text}\n"
        record(md, ROOT / "benchmarks" / "RESULTS.md")
        print(f"\nrecorded in {ROOT / 'benchmarks' / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
