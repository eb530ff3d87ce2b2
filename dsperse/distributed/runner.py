"""prove_on_ray: the core's prove(), with slice proofs on Ray actors and inputs pipelined.

Per input the driver generates witnesses in order (slice i+1 eats slice i's output
felts), then submits every slice's proof to its actor and moves on to the next
input at once. Proofs of different slices and different inputs overlap; the run
directories, manifests (resume) and receipts are exactly the core's.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import ray

from dsperse.artifacts import Circuit, Run, SlicePlan, SliceProof
from dsperse.circuits.build import CircuitConfig
from dsperse.distributed.cluster import connect
from dsperse.distributed.pool import ProverPool, RayOptions
from dsperse.errors import DsperseError
from dsperse.proving.run import RunState

log = logging.getLogger(__name__)


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
    options: RayOptions | None = None,
    pool: ProverPool | None = None,
) -> Run | list[Run]:
    """Prove every input of ``xs`` with slices on SliceProver actors; one input -> Run, several -> list of Runs.

    A batch writes ``workdir/<n>/`` with job ids ``f"{job_id}/{n}"``, as the core does. Pass ``pool`` to reuse
    warm actors across calls (then it is left open), ``options`` for device / actor count / artifact shipping.
    """
    if not xs:
        raise ValueError("prove_on_ray needs at least one input")
    workdir = Path(workdir).expanduser().resolve()
    circuits = list(circuits)
    if pool is not None and [pool.circuits[i].key_id for i in sorted(pool.circuits)] != [c.key_id for c in circuits]:
        raise DsperseError("the ProverPool was built for other circuits (keys differ); build one for these circuits")
    with connect(cluster):
        own = pool is None
        pool = pool or ProverPool(circuits, options or RayOptions.from_env())
        try:
            runs = _prove_batch(plan, circuits, list(xs), workdir, job_id, config, progress, on_slice_proven, pool)
        finally:
            if own:
                pool.close()
    return runs[0] if len(xs) == 1 else runs


def _prove_batch(plan, circuits, xs, workdir, job_id, config, progress, on_slice_proven, pool: ProverPool) -> list[Run]:
    states: list[RunState] = []
    pending: dict = {}  # ObjectRef -> (run state, task)
    try:
        for n, x in enumerate(xs):
            wd, jid = (workdir, job_id) if len(xs) == 1 else (workdir / str(n), f"{job_id}/{n}" if job_id else None)
            st = RunState(plan, circuits, x, wd, jid, config, progress, on_slice_proven)
            states.append(st)
            for task in st.todo:
                pending[pool.submit(task)] = (st, task)
            _drain(pending, pool, timeout=0)  # record what landed while this input's witnesses were made
        while pending:
            _drain(pending, pool, timeout=None)
    except BaseException:
        for st in states:
            st.bar.close()
        for ref in pending:
            try:
                ray.cancel(ref)
            except Exception:  # already finished or its actor is gone: nothing left to stop
                pass
        raise
    return [st.finish() for st in states]


def _drain(pending: dict, pool: ProverPool, timeout: float | None) -> None:
    if not pending:
        return
    ready, _ = ray.wait(list(pending), num_returns=1 if timeout is None else len(pending), timeout=timeout)
    for ref in ready:
        st, task = pending.pop(ref)
        st.landed(pool.collect(ref, task))
