"""Slice proving on a Ray cluster: one SliceProver actor per slice, inputs pipelined.

    from dsperse.distributed import prove_on_ray, RayOptions
    runs = dsperse.prove(plan, inputs=[x1, x2], workdir="runs/b", cluster="auto")
    dsperse.prove_dataset(plan, "inputs.parquet", "proven.parquet")   # a Ray Dataset / Parquet of inputs

This package is the only place (with ``pipelines/``) that imports Ray; the core
reaches it lazily through ``dsperse.prove(..., cluster=...)``.
"""
from __future__ import annotations

from dsperse.distributed.cluster import (
    ActorResources,
    ClusterError,
    NoGPUError,
    ProverPlacementError,
    connect,
    plan_resources,
)
from dsperse.distributed.dataset import DatasetResult, output_schema, prove_dataset
from dsperse.distributed.pool import ProverPool, RayOptions
from dsperse.distributed.runner import prove_on_ray

__all__ = [
    "ActorResources", "ClusterError", "DatasetResult", "NoGPUError", "ProverPlacementError", "ProverPool", "RayOptions",
    "connect", "output_schema", "plan_resources", "prove_dataset", "prove_on_ray",
]
