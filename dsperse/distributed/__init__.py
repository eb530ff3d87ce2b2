"""Slice proving on a Ray cluster: one SliceProver actor per slice, inputs pipelined.

    from dsperse.distributed import prove_on_ray, RayOptions
    runs = dsperse.prove(plan, inputs=[x1, x2], workdir="runs/b", cluster="auto")
    dsperse.prove_dataset(plan, "inputs.parquet", "proven.parquet")   # a Ray Dataset / Parquet of inputs

This package is the only place (with ``pipelines/``) that imports Ray; the core
reaches it lazily through ``dsperse.prove(..., cluster=...)``.
"""
from __future__ import annotations

from .cluster import ActorResources, ClusterError, NoGPUError, ProverPlacementError, connect, plan_resources
from .dataset import DatasetResult, output_schema, prove_dataset
from .pool import ProverPool, RayOptions
from .runner import prove_on_ray

__all__ = [
    "ActorResources", "ClusterError", "DatasetResult", "NoGPUError", "ProverPlacementError", "ProverPool", "RayOptions",
    "connect", "output_schema", "plan_resources", "prove_dataset", "prove_on_ray",
]
