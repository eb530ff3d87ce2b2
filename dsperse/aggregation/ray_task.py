"""Run aggregation steps as Ray tasks that reserve the memory they need.

Each step asks Ray for ``memory=<estimated peak>`` and, when the cluster has
nodes offering the custom resource ``"aggregator"`` (the big-memory node type
in clusters/*.yaml), for ``resources={"aggregator": 1}`` too. A request no node
can satisfy would wait forever, so it is refused up front with the numbers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from dsperse.aggregation.planning import GB, AggregationEstimate
from dsperse.artifacts import AggregationStep
from dsperse.errors import AggregationError

log = logging.getLogger(__name__)

AGGREGATOR_RESOURCE = "aggregator"


@dataclass(frozen=True)
class NodeMemory:
    node_id: str
    memory_bytes: float
    """Ray's schedulable ``memory`` resource of the node (less than its RAM: Ray keeps the object store apart)."""
    aggregator: bool


def nodes_from_ray(nodes: Sequence[Mapping[str, Any]]) -> list[NodeMemory]:
    """Alive nodes with their memory, from ``ray.nodes()`` output (pure: testable without a cluster)."""
    out = []
    for n in nodes:
        if not n.get("Alive", False):
            continue
        res = n.get("Resources", {}) or {}
        out.append(NodeMemory(str(n.get("NodeID", "")), float(res.get("memory", 0.0)), res.get(AGGREGATOR_RESOURCE, 0) > 0))
    return out


def cluster_nodes() -> list[NodeMemory]:
    import ray

    if not ray.is_initialized():
        raise AggregationError("Ray is not initialized: call ray.init() (or pass node_memory_bytes explicitly)")
    return nodes_from_ray(ray.nodes())


def candidate_memory(nodes: Sequence[NodeMemory]) -> list[float]:
    """Memory of the nodes aggregation may use: the 'aggregator' nodes if the cluster has any, else all."""
    aggs = [n.memory_bytes for n in nodes if n.aggregator]
    return aggs or [n.memory_bytes for n in nodes]


def task_options(estimate: AggregationEstimate, nodes: Sequence[NodeMemory], *, num_cpus: float = 1) -> dict:
    """Ray options for one aggregation step, or AggregationError when no node can ever hold it."""
    need = estimate.peak_bytes
    pool = candidate_memory(nodes)
    if not pool or max(pool) < need:
        biggest = max(pool) / GB if pool else 0.0
        raise AggregationError(
            f"no Ray node can hold this aggregation step: it needs ~{need / GB:.1f} GB ({estimate.describe()}), "
            f"the largest {'aggregator ' if any(n.aggregator for n in nodes) else ''}node offers {biggest:.1f} GB of "
            f"Ray memory. Add a node type with more memory and resources: {{{AGGREGATOR_RESOURCE}: 1}}."
        )
    opts: dict = {"num_cpus": num_cpus, "memory": int(need), "max_retries": 1}
    if any(n.aggregator for n in nodes):
        opts["resources"] = {AGGREGATOR_RESOURCE: 1}
    return opts


@dataclass(frozen=True)
class StepSpec:
    """Everything one aggregation step needs; plain data so it travels to a Ray worker."""

    proofs: tuple[str, ...]
    out: str
    workdir: str
    logrows: int
    srs: str
    split_proofs: bool
    transcript: str
    cache: str | None = None
    level: int = 0
    index: int = 0
    """The step's place in the tree (AggregationNode.level, .index)."""


def run_step(spec: StepSpec) -> AggregationStep:
    """Setup (cached) + aggregate for one step, in this process."""
    from dsperse.aggregation import aggregate as A

    keys = A.setup(list(spec.proofs), spec.workdir, logrows=spec.logrows, srs=spec.srs,
                   split_proofs=spec.split_proofs, cache=spec.cache)  # fmt: skip
    proof = A.aggregate(list(spec.proofs), spec.out, keys, transcript=spec.transcript)
    return AggregationStep(proof, keys, spec.level, spec.index, tuple(Path(p) for p in spec.proofs))


def submit_step(spec: StepSpec, estimate: AggregationEstimate, nodes: Sequence[NodeMemory] | None = None):
    """Start one step as a Ray task reserving its memory; returns the ObjectRef of :func:`run_step`'s AggregationStep."""
    import ray

    opts = task_options(estimate, nodes if nodes is not None else cluster_nodes())
    log.info("aggregation step %s: ray options %s", spec.out, opts)
    return ray.remote(run_step).options(**opts).remote(spec)
