"""Slice proving on a Ray cluster: one SliceProver actor per slice, inputs pipelined.

    runs = dsperse.prove_batch(plan, [x1, x2], workdir="runs/b", cluster="auto")   # a pool per call
    with RayBackend(circuits, ProverConfig(device="cpu")) as backend:              # warm actors across calls
        runs = dsperse.prove_batch(plan, xs, "runs/c", circuits=circuits, backend=backend)
    dsperse.prove_dataset(plan, "inputs.parquet", "proven.parquet")   # a Ray Dataset / Parquet of inputs

This package is the only place (with ``pipelines/``) that imports Ray; the core reaches it lazily through
``cluster=`` (a RayBackend built for the call). It uses the core's proving loop (:mod:`dsperse.proving.runs`),
never :mod:`dsperse.proving.run`. ``RayOptions`` is the old name of :class:`dsperse.config.ProverConfig`.
"""
from __future__ import annotations

from dsperse.config import ProverConfig
from dsperse.distributed.backend import RayBackend
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
    "ActorResources", "ClusterError", "DatasetResult", "NoGPUError", "ProverConfig", "ProverPlacementError", "ProverPool",
    "RayBackend", "RayOptions", "connect", "output_schema", "plan_resources", "prove_dataset", "prove_on_ray",
]
