"""Recursive aggregation of slice proofs into one proof for the whole model (issue 6).

    from dsperse import aggregation as agg
    p = agg.plan(n_proofs=3, node_memory_bytes=64e9)   # before any work: k, memory, time, tree
    print(p.describe())                                # or AggregationError: no node can hold it
    result = agg.aggregate_proofs(slice_proof_paths, workdir, p, srs=srs_path)

Slice proofs must be made with ``proof_type="for-aggr"`` (Poseidon transcript) and the SAME SRS file
as the aggregator (k >= the plan's largest k). The binding of the aggregate to the job's input and
output, and why the tree is sound, are in docs/aggregation.md.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from dsperse.aggregation import (
    aggregate,  # the module (its aggregate() is aggregate.aggregate); setup etc. re-exported below
)
from dsperse.aggregation.aggregate import (
    evm_calldata,
    evm_verifier,
    mock,
    setup,
    verify_aggr,
)
from dsperse.aggregation.planning import (
    AggregationEstimate,
    AggregationNode,
    AggregationPlan,
    boundary_visibilities,
    estimate,
    logrows_for,
    machine_memory_bytes,
    max_fan_in,
    plan,
)
from dsperse.artifacts import AggregateProof, AggregationKeys, AggregationStep, RunAggregate
from dsperse.errors import AggregationError

log = logging.getLogger(__name__)


@dataclass
class AggregationResult:
    plan: AggregationPlan
    root: AggregationStep
    """The root step: its proof (EVM transcript) and the keys that made it."""
    steps: list[list[AggregationStep]] = field(default_factory=list)
    """Every step, level by level."""

    @property
    def proof_path(self) -> Path:
        return self.root.path


def plan_for_cluster(n_proofs: int, *, node_memory_bytes: float | Sequence[float] | None = None, **kw) -> AggregationPlan:
    """:func:`plan` with node memory from the connected Ray cluster (its 'aggregator' nodes if any) unless given."""
    if node_memory_bytes is None:
        from dsperse.aggregation.ray_task import candidate_memory, cluster_nodes

        node_memory_bytes = candidate_memory(cluster_nodes())
    return plan(n_proofs, node_memory_bytes, **kw)


def aggregate_proofs(
    proof_paths: Sequence[Path | str],
    workdir: Path | str,
    the_plan: AggregationPlan,
    *,
    srs: Path | str,
    cache: Path | str | None = None,
    use_ray: bool | None = None,
) -> AggregationResult:
    """Run every step of ``the_plan`` (level by level; steps of a level in parallel on Ray) and return the root.

    ``use_ray=None``: use Ray when it is initialized. Level-0 steps link their slices in-circuit
    (split proofs); higher levels fold the aggregates below them.
    """
    from dsperse.aggregation import ray_task as R

    if len(proof_paths) != the_plan.n_proofs:
        raise AggregationError(f"plan is for {the_plan.n_proofs} proofs, got {len(proof_paths)}")
    if use_ray is None:
        import ray

        use_ray = ray.is_initialized()
    workdir = Path(workdir)
    inputs = [str(p) for p in proof_paths]
    steps: list[list[AggregationStep]] = []
    nodes = R.cluster_nodes() if use_ray else None
    for lvl in the_plan.levels:
        specs = [
            R.StepSpec(
                proofs=tuple(inputs[i] for i in node.inputs),
                out=str(workdir / f"aggr_l{node.level}_{node.index}.json"),
                workdir=str(workdir / f"aggr_l{node.level}_{node.index}"),
                logrows=node.logrows,
                srs=str(srs),
                split_proofs=node.level == 0 and len(node.inputs) > 1,
                transcript=node.transcript,
                cache=str(cache) if cache is not None else None,
                level=node.level,
                index=node.index,
            )
            for node in lvl
        ]
        if use_ray:
            import ray

            refs = [R.submit_step(s, n.estimate, nodes) for s, n in zip(specs, lvl)]
            done = ray.get(refs)
        else:
            done = [R.run_step(s) for s in specs]
        steps.append(done)
        inputs = [str(d.path) for d in done]
    return AggregationResult(plan=the_plan, root=steps[-1][0], steps=steps)


__all__ = [
    "AggregateProof", "AggregationEstimate", "AggregationKeys", "AggregationNode", "AggregationPlan",
    "AggregationResult", "AggregationStep", "RunAggregate", "aggregate", "aggregate_proofs", "boundary_visibilities",
    "estimate", "evm_calldata", "evm_verifier", "logrows_for", "machine_memory_bytes", "max_fan_in", "mock", "plan",
    "plan_for_cluster", "setup", "verify_aggr",
]
