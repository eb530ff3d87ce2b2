"""prove_on_ray: the older name for proving a batch on Ray; now a thin wrapper over the one proving loop.

``dsperse.prove(plan, x, cluster=...)`` / ``dsperse.prove_batch(plan, xs, cluster=...)``, or ``backend=RayBackend(...)``
for warm actors across calls, are the SDK's way. This keeps the old call shape (one input -> Run, several ->
list of Runs) for user code; it goes through :func:`dsperse.proving.runs.prove_runs` with a
:class:`~dsperse.distributed.backend.RayBackend`, exactly as ``prove_batch`` does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from dsperse.artifacts import Circuit, Run, SlicePlan, SliceProof
from dsperse.config import CircuitConfig, ProverConfig
from dsperse.distributed.backend import RayBackend
from dsperse.distributed.cluster import connect
from dsperse.distributed.pool import ProverPool
from dsperse.errors import DsperseError
from dsperse.proving.runs import prove_runs


def prove_on_ray(
    plan: SlicePlan,
    xs: Sequence[np.ndarray],
    workdir: Path | str,
    *,
    circuits: Sequence[Circuit],
    job_id: str | None = None,
    cluster: str | None = "auto",
    config: CircuitConfig = CircuitConfig(),
    progress: bool = True,
    on_slice_proven: Callable[[SliceProof], None] | None = None,
    options: ProverConfig | None = None,
    pool: ProverPool | None = None,
) -> Run | list[Run]:
    """Prove every input of ``xs`` with slices on SliceProver actors; one input -> Run, several -> list of Runs.

    A batch writes ``workdir/<n>/`` with job ids ``f"{job_id}/{n}"``. ``pool`` reuses warm actors (left open);
    ``options`` (a ProverConfig) lays out a pool of its own. No ledger rows and no aggregation: use
    ``dsperse.prove_batch(..., backend=RayBackend(pool=pool))`` for those.
    """
    if not xs:
        raise ValueError("prove_on_ray needs at least one input")
    workdir = Path(workdir).expanduser().resolve()
    circuits = list(circuits)
    if pool is not None and [pool.circuits[i].key_id for i in sorted(pool.circuits)] != [c.key_id for c in circuits]:
        raise DsperseError("the ProverPool was built for other circuits (keys differ); build one for these circuits")
    one = len(xs) == 1
    dirs = [workdir] if one else [workdir / str(n) for n in range(len(xs))]
    job_ids = [job_id] if one else [f"{job_id}/{n}" if job_id else None for n in range(len(xs))]
    with connect(cluster), (RayBackend(pool=pool) if pool is not None else RayBackend(circuits, options)) as backend:
        runs = prove_runs(plan, circuits, list(xs), dirs, job_ids, backend, config=config, progress=progress,
                          on_slice_proven=on_slice_proven)  # fmt: skip
    return runs[0] if one else runs
