"""Plots from the proof ledger: prove time per slice and per k, receipt gas per slice count.

    .venv/bin/python benchmarks/plot_ledger.py                       # the default ledger
    .venv/bin/python benchmarks/plot_ledger.py --ledger runs/ledger --model 3fa2 --out benchmarks/out

Every figure comes from the ledger's rows (docs/ledger.md), so any prove/verify/submit run anywhere
(SDK, CLI, Ray, the benchmarks) feeds it; nothing is measured here. PNGs go to ``--out``
(benchmarks/out/ by default, not committed). Headless: matplotlib's Agg backend.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dsperse.tools.ledger import Ledger, format_table  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def _label(model: str | None, slices: int | None) -> str:
    return f"{(model or '?')[:8]} ({slices or '?'} slices)"


def prove_per_slice(rows: list[dict], dest: Path) -> Path:
    """Each model's prove seconds by slice index: every proof a dot, the mean a line."""
    by_model: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_model[(r["model_id"], r["slice_count"])][r["slice_index"]].append(r["seconds"])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for (model, n), per in sorted(by_model.items(), key=lambda kv: str(kv[0])):
        xs = sorted(per)
        line = ax.plot(xs, [sum(per[x]) / len(per[x]) for x in xs], marker="o", label=_label(model, n))[0]
        for x in xs:
            ax.scatter([x] * len(per[x]), per[x], s=12, alpha=0.35, color=line.get_color())
    ax.set(xlabel="slice index", ylabel="prove time (s)", title="Prove time per slice (dots: proofs, line: mean)")
    ax.set_ylim(bottom=0, top=max(v for per in by_model.values() for vs in per.values() for v in vs) * 1.15)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8, title="model", title_fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, dest)


def prove_per_k(rows: list[dict], dest: Path) -> Path:
    """Prove seconds by circuit size k = logrows, across every model: a box per k with its proof count."""
    per_k: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        if r["logrows"] is not None:
            per_k[r["logrows"]].append(r["seconds"])
    ks = sorted(per_k)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.boxplot([per_k[k] for k in ks], positions=ks, widths=0.5)
    for k in ks:
        ax.annotate(f"n={len(per_k[k])}", (k, max(per_k[k])), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set(xlabel="k (circuit has 2^k rows)", ylabel="prove time (s)", title="Prove time per circuit size k (all slices)")
    ax.set_xlim(min(ks) - 1, max(ks) + 1)
    ax.set_ylim(bottom=0, top=max(max(v) for v in per_k.values()) * 1.15)
    ax.grid(alpha=0.3)
    return _save(fig, dest)


def gas_per_slice_count(rows: list[dict], dest: Path) -> Path:
    """Receipt gas (every transaction of a submission) against the run's slice count."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    xs, ys = [r["slice_count"] for r in rows], [r["gas"] / 1e6 for r in rows]
    ax.scatter(xs, ys, s=24)
    ax.set(xlabel="slices in the run", ylabel="gas (millions)", title=f"Receipt gas per slice count ({len(rows)} submission{'s' * (len(rows) != 1)})")
    ax.set_xlim(0, max(xs) + 1)
    ax.set_ylim(bottom=0, top=max(ys) * 1.15)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    return _save(fig, dest)


def _save(fig, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(dest, dpi=120)
    plt.close(fig)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ledger", type=Path, help="ledger directory (default: $DSPERSE_LEDGER, else <cache>/ledger)")
    p.add_argument("--model", metavar="ID", help="only this model (an id prefix)")
    p.add_argument("--out", type=Path, default=OUT, help=f"where the PNGs go (default {OUT})")
    a = p.parse_args(argv)
    led = Ledger(a.ledger)
    table = led.read(model_id=a.model)
    print(format_table(led.summary(table)))
    proofs = [r for r in led.read(event="prove", model_id=a.model).to_pylist() if r["seconds"] is not None]
    subs = [r for r in led.read(event="submit", model_id=a.model).to_pylist() if r["gas"] and r["slice_count"]]
    if not proofs:
        print(f"no prove rows in {led.path}: nothing to plot")
        return 1
    made = [prove_per_slice(proofs, a.out / "prove_time_per_slice.png"), prove_per_k(proofs, a.out / "prove_time_per_k.png")]
    if subs:
        made.append(gas_per_slice_count(subs, a.out / "gas_per_slice_count.png"))
    else:
        print("no submit rows with a slice count (record_submission(result, run=...)): no gas plot")
    for path in made:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
