"""Plan the aggregation of N slice proofs into ONE proof: tree, memory and time, before any work.

Aggregation folds slice proofs into one EZKL proof (one on-chain verifier for the whole model). It is a
big-memory job: one proof per step needs k=21 and ~20 GB (setup 11 GB, prove 19.7 GB, ~11 min measured on a
2-core box), two proofs per step k=22 and ~40 GB. dsperse.aggregation.plan turns the measured figures and a
node's memory into a plan (how many proofs each step folds, the tree, peak memory, time) or refuses with an
AggregationError that says what node would do. This script only plans: nothing is proven, it runs anywhere.
A real aggregation is dsperse.prove(plan, x, aggregate=True) on a >= 24 GiB node (docs/aggregation.md).

    .venv/bin/python examples/aggregation_plan.py [--proofs N] [--memory-gb GB ...]

About 2 s.
"""
import argparse

from dsperse import aggregation as agg
from dsperse.errors import AggregationError

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--proofs", type=int, default=3, help="slice proofs to aggregate (default 3: the zoo MLP's slices)")
p.add_argument("--memory-gb", type=float, nargs="+", default=[24, 64, 128], help="node sizes to plan for")
args = p.parse_args()

here = agg.machine_memory_bytes() / 1e9
for gb in [*args.memory_gb, here]:
    label = f"this machine ({gb:.1f} GB)" if gb == here else f"a {gb:g} GB node"
    print(f"== {args.proofs} slice proofs on {label}")
    try:
        plan = agg.plan(n_proofs=args.proofs, node_memory_bytes=gb * 1e9)
    except AggregationError as exc:
        print(f"   refused: {exc}\n")
        continue
    print(plan.describe())
    print(f"   tree (inputs of each step, level by level): {plan.tree}")
    print(f"   peak memory {plan.peak_bytes / 1e9:.1f} GB; time ~{plan.critical_path_seconds / 60:.0f} min with one "
          f"node per step, ~{plan.total_seconds / 60:.0f} min on one node (first run; cached keys skip setup)\n")
