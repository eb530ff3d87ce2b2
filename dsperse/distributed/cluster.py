"""Connecting to Ray and deciding what each prover actor asks for.

The resource decision is pure logic on ``ray.cluster_resources()`` so it can be
checked without a cluster: a request the cluster can never satisfy (a GPU on a
GPU-less cluster) fails at once instead of leaving an actor pending forever.
"""
from __future__ import annotations

import logging
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Literal, Mapping

from dsperse.errors import ClusterError, NoGPUError, ProverPlacementError  # noqa: F401 - re-exported (dsperse.distributed)

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "gpu"]


@dataclass(frozen=True)
class ActorResources:
    """What one SliceProver actor reserves for its whole life."""

    device: Literal["cpu", "gpu"]
    num_cpus: float
    num_gpus: float = 0.0
    resources: dict[str, float] = field(default_factory=dict)

    def as_options(self) -> dict:
        opts: dict = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.resources:
            opts["resources"] = dict(self.resources)
        return opts


def _share(total: float, n: int) -> float:
    """Largest per-actor amount (1, 1/2, 1/3, ...) such that ``n`` actors fit on ``total`` whole units.

    Fractions of the form 1/m pack onto nodes with integer counts, so no actor is
    left waiting for a remainder that no single node has.
    """
    if total >= n:
        return 1.0
    if total < 1:
        return 1.0  # nothing there yet (autoscaling cluster): ask for a whole unit and let placement wait
    return math.floor(10_000 / math.ceil(n / math.floor(total))) / 10_000


def plan_resources(
    cluster: Mapping[str, float], n_actors: int, device: Device = "auto", extra: Mapping[str, float] | None = None
) -> ActorResources:
    """Decide each prover's request from the cluster's totals.

    auto -> GPU when the cluster has one, else CPU; gpu on a GPU-less cluster -> NoGPUError.
    Actors share CPUs/GPUs evenly when there are more actors than units.
    """
    if device not in ("auto", "cpu", "gpu"):
        raise ClusterError(f"device must be 'auto', 'cpu' or 'gpu', not {device!r}")
    gpus = float(cluster.get("GPU", 0.0))
    if device == "gpu" and gpus <= 0:
        raise NoGPUError(cluster)
    use_gpu = device == "gpu" or (device == "auto" and gpus > 0)
    cpus = _share(float(cluster.get("CPU", 0.0)), n_actors)
    if use_gpu:
        return ActorResources("gpu", num_cpus=cpus, num_gpus=_share(gpus, n_actors), resources=dict(extra or {}))
    return ActorResources("cpu", num_cpus=cpus, resources=dict(extra or {}))


@contextmanager
def connect(cluster: str | None) -> Iterator[bool]:
    """Use the Ray connection this process already has, or open one; yields True if we started it.

    ``"auto"``: $RAY_ADDRESS or a cluster running on this machine, else a new local one.
    ``"local"``: always a new local cluster. Anything else is a Ray address. A cluster
    this call started is shut down when the block ends.
    """
    import ray

    if ray.is_initialized():
        yield False
        return
    cluster = cluster or "auto"
    if cluster == "auto":
        try:
            ray.init(address=os.environ.get("RAY_ADDRESS") or "auto")
        except ConnectionError:
            log.info("no running Ray cluster found: starting a local one")
            ray.init(address="local")
    elif cluster == "local":
        ray.init(address="local")
    else:
        try:
            ray.init(address=cluster)
        except ConnectionError as exc:
            raise ClusterError(f"cannot connect to the Ray cluster at {cluster!r}: {exc}") from exc
    try:
        yield True
    finally:
        ray.shutdown()


def single_node() -> bool:
    """True when every alive node is this driver's node: then the driver's paths are the actors' paths."""
    import ray

    here = ray.get_runtime_context().get_node_id()
    alive = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    return alive == [here]
