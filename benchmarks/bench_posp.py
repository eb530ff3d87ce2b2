"""Proof of Sampling: verification cost per inference at p = 1%, 5%, 10%, 100% vs proving every job.

Measures, on a fresh anvil and a real EZKL run of the zoo MLP (3 slices, k=15):
- gas of every market step (post, commit, reveal output, reveal seed / draw, settle, challenge, verdicts and
  their settle at the proof deadline, proveWithReceipt),
- gas of the ProofOfInference receipt (links + every slice verified on chain),
- prover CPU-seconds per slice (the run's own proof timings) and re-execution seconds (validators).
Then prints the expected cost per inference at each p (market overhead + p x proof), the same for
proving every job, and runs the Ray simulation (>= 1000 operators) for the profit-vs-p plot, and the
grinding table: a cheater that builds 1, 4 or 16 candidate seed blocks per job, old blockhash seed vs the
requester's commit-reveal secret (issue 7).

    .venv/bin/python benchmarks/bench_posp.py [--out benchmarks/out/posp] [--run RUN_DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

P_VALUES = (0.01, 0.05, 0.10, 1.00)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.node()}: {cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}"


def proven_run(out: Path, run_dir: Path | None):
    """A real 3-slice run of the zoo MLP (keys cached by content, so a second bench skips setup)."""
    import dsperse
    from dsperse.tools import zoo

    if run_dir:
        return dsperse.Run.load(run_dir)
    model = out / "mlp.onnx"
    if not model.exists():
        zoo.export("mlp", model, 0)
    x = np.random.default_rng(42).standard_normal((1, 4)).astype(np.float32)
    plan = dsperse.slice(model, out / "mlp.slices", max_slices=3, strategy="layers")
    circuits = dsperse.compile(plan, calibration_input=x)
    wd = out / "mlp-run"
    if (wd / "run.json").exists():
        return dsperse.Run.load(wd)
    return dsperse.prove(plan, x, wd, circuits=circuits, job_id="bench", progress=False)


def measure_gas(run) -> dict:
    """Gas of each market step and of a ProofOfInference receipt, on a fresh anvil."""
    from web3 import Web3

    from dsperse.chain import LocalChain, ReceiptChain, submission_from_run
    from dsperse.sampling.market import (
        ETHER,
        Challenger,
        Market,
        MarketConfig,
        Operator,
        Requester,
        Validator,
        felt_ints,
        input_commitment,
        mine,
        output_hash,
    )  # fmt: skip
    from dsperse.sampling.reexec import felts_to_ints

    g: dict[str, int] = {}
    with LocalChain() as ch:
        w3 = Web3(Web3.HTTPProvider(ch.url, request_kwargs={"timeout": 120}))
        k = [key for _, key in ch.accounts]
        poi = ReceiptChain(ch.url, private_key=k[2], deployments=Path(ch._tmp.name) / "deployments.json")
        model = bytes.fromhex(poi.register_model(run))
        ih = input_commitment(felt_ints(run.receipt.input_felts))
        out = felts_to_ints(run.receipt.output_felts)
        vals = [ch.accounts[i][0] for i in (5, 6)]
        windows = dict(commit_window=20, audit_delay=2, proof_window=20, challenge_window=10, unstake_delay=2)

        def market(p_bps: int):
            m = Market.deploy(w3, k[0], poi.registry_address, MarketConfig(audit_bps=p_bps, **windows), validators=vals)
            g.setdefault("deploy market", m.deploy_receipt["gasUsed"])
            vs = [Validator(m, k[5]), Validator(m, k[6])]
            for v in vs:
                v.stake(2 * ETHER)
            return m, Requester(m, k[1]), Operator(m, k[2]), Challenger(m, k[4]), vs

        # unsampled job: post, commit, draw (not sampled), settle, withdraw. A first job warms the market's
        # counters (zero -> nonzero storage writes cost 20k more once), so the second one is measured.
        m, req, op, chal, vs = market(0)
        g["operator stake"] = op.stake(2 * ETHER)["gasUsed"]
        op.offer(model, ETHER // 100, 10)
        warm, rc0 = req.post_job(model, ih, op.address, ETHER // 100)
        g["postJob (first job of a market)"] = rc0["gasUsed"]
        op.commit(warm, output_hash(out))
        jid, rc = req.post_job(model, ih, op.address, ETHER // 100)
        g["postJob"] = rc["gasUsed"]
        g["commitOutput"] = op.commit(jid, output_hash(out))["gasUsed"]
        op.reveal_output(warm, out)
        g["revealOutput"] = op.reveal_output(jid, out)["gasUsed"]
        mine(w3, 3)
        chal.draw_audit(warm)
        g["drawAudit (not sampled)"] = chal.draw_audit(jid)[1]["gasUsed"]
        mine(w3, 10)
        chal.settle(warm)
        g["settle (pay)"] = chal.settle(jid)["gasUsed"]
        g["withdrawCredit (any number of jobs)"] = op.withdraw_credit()["gasUsed"]
        # challenged job decided by two validator verdicts at the proof deadline
        jid, _ = req.post_job(model, ih, op.address, ETHER // 100)
        op.commit(jid, output_hash(out))
        op.reveal_output(jid, out)
        g["challenge"] = chal.challenge(jid, ETHER // 10)["gasUsed"]
        g["verdicts (quorum 2)"] = sum(v.submit_verdict(jid, output_hash(out))["gasUsed"] for v in vs)
        mine(w3, windows["proof_window"] + 1)
        g["settle (quorum, at the proof deadline)"] = chal.settle(jid)["gasUsed"]
        # 0 < p < 100%: the requester's secret draws the audit
        m, req, op, chal, vs = market(5_000)
        op.stake(2 * ETHER)
        op.offer(model, ETHER // 100, 10)
        for i in range(2):  # the first warms the counters
            jid, _ = req.post_job(model, ih, op.address, ETHER // 100)
            op.commit(jid, output_hash(out))
            mine(w3, 3)
            rc = req.reveal_seed(jid)[1]
        g["revealSeed (0 < p < 100%)"] = rc["gasUsed"]
        # sampled job decided by a ProofOfInference receipt
        m, req, op, chal, vs = market(10_000)
        op.stake(2 * ETHER)
        op.offer(model, ETHER // 100, 10)
        req.post_job(model, ih, op.address, ETHER // 100)  # warm the counters
        jid, _ = req.post_job(model, ih, op.address, ETHER // 100)
        op.commit(jid, output_hash(out))
        mine(w3, 3)
        g["drawAudit (sampled)"] = chal.draw_audit(jid)[1]["gasUsed"]
        res = poi.submit_raw(submission_from_run(run, jid))
        g["ProofOfInference submit (3 slices)"] = res.gas_used
        g["proveWithReceipt"] = op.prove_with_receipt(jid, bytes.fromhex(res.receipt_id[2:]))["gasUsed"]
    return g


def measure_reexec_seconds(run, x) -> float:
    from dsperse.sampling.reexec import SliceCircuit, reexecute

    circuits = [SliceCircuit(c.compiled, c.vk, c.srs) for c in sorted(run.circuits, key=lambda c: c.slice_index)]
    reexecute(circuits, x)  # warm
    t0 = time.process_time()
    reexecute(circuits, x)
    return time.process_time() - t0


def measure_prove_cpu(run, out: Path) -> tuple[float, float]:
    """(wall s, CPU s) of proving slice 0 once more, now (the run's own timings may come from a busy machine)."""
    import resource

    from dsperse.proving.tasks import ProveTask, prove_slice

    c = min(run.circuits, key=lambda c: c.slice_index)
    w = next(w for w in run.witnesses if w.slice_index == c.slice_index)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    rec = prove_slice(ProveTask.for_slice(c, w.path, out / "reprove-slice0.json"))
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    (out / "reprove-slice0.json").unlink(missing_ok=True)
    return rec.seconds, (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)


def cost_table(g: dict, prove_s: float, reexec_s: float, ref_prove_s: float) -> list[dict]:
    """Expected cost per inference. Sampling: every job pays post+commit+draw; a sampled share p pays the
    receipt (or the validators and their settle); the rest reveal their output and pay settle. The draw is the
    requester's revealSeed for 0 < p < 1 (drawAudit costs about as much). Baseline: every job proven and its
    receipt submitted."""
    base = g["postJob"] + g["commitOutput"]
    unsampled = g["revealSeed (0 < p < 100%)"] + g["revealOutput"] + g["settle (pay)"]
    submit = g["ProofOfInference submit (3 slices)"]
    rows = []
    for p in P_VALUES:
        receipt_gas = base + (1 - p) * unsampled + p * (g["drawAudit (sampled)"] + submit + g["proveWithReceipt"])
        validator_gas = base + (1 - p) * unsampled + p * (
            g["drawAudit (sampled)"] + g["revealOutput"] + g["verdicts (quorum 2)"] + g["settle (quorum, at the proof deadline)"]
        )
        rows.append(dict(p=p, gas_receipt_path=receipt_gas, gas_validator_path=validator_gas,
                         prover_s=p * prove_s, prover_s_ref=p * ref_prove_s, validator_cpu_s=p * 2 * reexec_s))  # fmt: skip
    rows.append(dict(p="prove every job (no market)", gas_receipt_path=submit, gas_validator_path=float("nan"),
                     prover_s=prove_s, prover_s_ref=ref_prove_s, validator_cpu_s=float("nan")))  # fmt: skip
    return rows


def simulate_and_plot(out: Path, operators: int, jobs: int) -> tuple[list, Path]:
    import ray

    from dsperse.sampling.economics import Economics
    from dsperse.sampling.simulation import SimConfig, plot_profit_vs_p, sweep

    # fee 1, a cheater saves 0.8 of it (the inference it skips), stake slashed 20 fees, 30% of colluders' audits covered
    e = Economics(R=1.0, S=20.0, C=0.8, r=0.3, K=0.9)
    base = SimConfig(e, 0.0, n_operators=operators, jobs_per_operator=jobs, seed=0)
    ps = [0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.10, 0.15, 0.20]
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=min(2, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
    t0 = time.perf_counter()
    try:
        results = sweep(base, ps)
    finally:
        if started:
            ray.shutdown()
    print(f"\nRay simulation: {operators} operators x {jobs} jobs x {len(ps)} values of p in {time.perf_counter() - t0:.1f} s; "
          f"p* = {results[0].p_star:.4f} (colluders {e.C / ((1 - e.r) * (e.R + e.S)):.4f})")  # fmt: skip
    print(f"{'p':>5} {'strategy':>8} {'detect':>7} {'caught':>7} {'profit/job':>10} {'expected':>9}")
    for r in results:
        if r.config.p in (0.0, 0.01, 0.05, 0.10, 0.20):
            for row in r.rows():
                print(f"{r.config.p:5.2f} {row['strategy']:>8} {row['detection_rate']:7.4f} {row['caught_share']:7.3f} "
                      f"{row['profit_per_job']:10.4f} {row['expected_profit_per_job']:9.4f}")  # fmt: skip
    return results, plot_profit_vs_p(results, out)


def grinding(p: float = 0.10) -> list[dict]:
    """Issue 7: the audited share of a grinding cheater's jobs, old public seed vs the requester's secret."""
    from dsperse.sampling.economics import Economics
    from dsperse.sampling.simulation import grinding_table

    rows = grinding_table(Economics(R=1.0, S=20.0, C=0.8), p, tries=(1, 4, 16))
    print(f"\ngrinding cheater at p = {p:.0%} (200 operators x 200 jobs each, simulated draw):")
    print(f"{'seed':>14} {'tries':>5} {'audited share':>13} {'expected':>9} {'profit/job':>10}")
    for r in rows:
        print(f"{r['scheme']:>14} {r['tries']:>5} {r['audited_share']:>13.4f} {r['expected']:>9.4f} {r['profit_per_job']:>10.3f}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/posp"))
    ap.add_argument("--run", type=Path, help="reuse a proven run directory instead of proving the zoo MLP")
    ap.add_argument("--operators", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--seconds-per-slice", type=float, default=6.0,
                    help="reference prover seconds per k=15 slice on an idle machine (default 6.0), shown next to this run's")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RUST_LOG", "error")
    print(machine())
    run = proven_run(a.out, a.run)
    per_slice = [round(p.seconds, 2) for p in sorted(run.proofs, key=lambda p: p.slice_index)]
    x = np.random.default_rng(42).standard_normal((1, 4)).astype(np.float32).flatten().tolist()
    reexec_s = measure_reexec_seconds(run, x)
    wall0, cpu0 = measure_prove_cpu(run, a.out)
    print(f"slice 0 proven again now: {wall0:.1f} s wall, {cpu0:.1f} CPU-s (load average {os.getloadavg()[0]:.1f})")
    prove_s = cpu0 * len(run.proofs)  # prover CPU-seconds per inference (every slice ~ the same size here)
    gas = measure_gas(run)
    print(f"prover wall seconds per slice when the run was made (k=15): {per_slice};"
          f" re-execution (witness, 3 slices): {reexec_s:.2f} CPU-s")  # fmt: skip
    print("\ngas per step:")
    for k_, v in gas.items():
        print(f"  {k_:36s} {v:>10,}")
    ref_s = a.seconds_per_slice * len(run.proofs)
    rows = cost_table(gas, prove_s, reexec_s, ref_s)
    prove_all = rows[-1]
    print(f"\n{'p':>28} {'gas/inference (receipt)':>24} {'vs prove-all':>12} {'gas (validators)':>17} "
          f"{'prover CPU-s':>20} {f'prover s ({a.seconds_per_slice:g} s/slice)':>22} {'validator CPU-s':>16}")  # fmt: skip
    for r in rows:
        p = f"{r['p']:.0%}" if isinstance(r["p"], float) else r["p"]
        print(f"{p:>28} {r['gas_receipt_path']:>24,.0f} {r['gas_receipt_path'] / prove_all['gas_receipt_path']:>12.3f} "
              f"{r['gas_validator_path']:>17,.0f} {r['prover_s']:>20.2f} {r['prover_s_ref']:>22.2f} {r['validator_cpu_s']:>16.3f}")  # fmt: skip
    results, png = simulate_and_plot(a.out, a.operators, a.jobs)
    grind_rows = grinding()
    record = {"machine": machine(), "gas": gas, "prove_seconds_per_slice": per_slice, "reexec_cpu_s": reexec_s,
              "reprove_slice0": {"wall_s": wall0, "cpu_s": cpu0},
              "costs": rows, "plot": str(png), "grinding": grind_rows,
              "simulation": [{"p": r.config.p, "rows": r.rows(), "overhead": r.verification_overhead} for r in results]}  # fmt: skip
    (a.out / "posp_results.json").write_text(json.dumps(record, indent=2, default=str))
    print(f"\nplot: {png}\nresults: {a.out / 'posp_results.json'}")


if __name__ == "__main__":
    main()
