"""dsperse: distributed proof of inference.

    import dsperse
    plan = dsperse.slice("model.onnx", max_logrows=16)   # every slice within 2^16 rows (tiled where needed)
    print(plan.describe())
    run = dsperse.prove(plan, "input.json", "runs/x")     # one input -> Run
    runs = dsperse.prove_batch(plan, [x1, x2], "runs/b", cluster="auto")   # several -> list[Run] (runs/b/<n>/)
    assert dsperse.verify(run)
    print(run.output, run.receipt)

The core (slicing, circuits, proving, linking, verification) needs no Ray;
``cluster=`` hands slice proving to Ray actors (``backend=`` to bring your own), ``dsperse.chain`` puts receipts on an EVM chain.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from dsperse.artifacts import Circuit, Edge, Receipt, Run, Slice, SlicePlan, SliceProof, Witness
from dsperse.circuits.build import compile_plan
from dsperse.config import CircuitConfig, DsperseConfig, ProverConfig
from dsperse.errors import DsperseError
from dsperse.linking.verification import Tolerance, verify
from dsperse.proving.run import prove, prove_batch
from dsperse.slicing.chain import Strategy, slice_model

__version__ = "0.1.0"


def slice(  # noqa: A001 - the SDK verb is the point
    model: Path | str,
    out_dir: Path | str | None = None,
    *,
    max_slices: int | None = None,
    strategy: Strategy = "balanced",
    cuts: Sequence[int] | None = None,
    input_shape: Sequence[int] | None = None,
    estimate: str | None = None,
    max_logrows: int | None = None,
    max_memory: str | float | None = None,
) -> SlicePlan:
    """Cut ``model`` into slices; see :func:`dsperse.slicing.chain.slice_model`.

    ``max_logrows=16`` (or ``max_memory="4GB"``) plans a graph of slices that all fit 2^16 rows, tiling ops
    too big for that; without a target, a chain of ``max_slices`` by ``strategy``.
    """
    return slice_model(
        model, out_dir, max_slices=max_slices, strategy=strategy, cuts=cuts, input_shape=input_shape, estimate=estimate,
        max_logrows=max_logrows, max_memory=max_memory,
    )


def compile(plan: SlicePlan | Path | str, **kwargs) -> list[Circuit]:  # noqa: A001
    """Circuits and keys for every slice (cached); see :func:`dsperse.circuits.build.compile_plan`."""
    if not isinstance(plan, SlicePlan):
        plan = SlicePlan.load(plan)
    return compile_plan(plan, **kwargs)


def prove_dataset(plan: SlicePlan | Path | str, dataset, out: Path | str, **kwargs):
    """Prove every row of a Ray Dataset or Parquet file on Ray, into a Parquet dataset at ``out``.

    See :func:`dsperse.distributed.dataset.prove_dataset`; Ray is imported only when this is called.
    """
    from dsperse.distributed.dataset import prove_dataset as on_ray

    return on_ray(plan, dataset, out, **kwargs)


__all__ = [
    "Circuit", "CircuitConfig", "DsperseConfig", "DsperseError", "Edge", "ProverConfig", "Receipt", "Run", "Slice", "SlicePlan",
    "SliceProof", "Tolerance", "Witness", "compile", "prove", "prove_batch", "prove_dataset", "slice", "verify",
]
