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

from .. import storage
from ..artifacts import Circuit, Run, SlicePlan, SliceProof
from ..circuits import CircuitConfig
from ..errors import DsperseError
from ..model import coerce_input
from ..pipeline import Manifest, finish_run, prepare_witnesses
from ..progress import Progress
from ..proving import ProveTask, quantize_input
from .cluster import connect
from .pool import ProverPool, RayOptions

log = logging.getLogger(__name__)


class _RunState:
    """One input's run directory: manifest, witnesses, the proofs still to make, its progress bar."""

    def __init__(self, plan: SlicePlan, circuits: list[Circuit], x: np.ndarray, workdir: Path, job_id: str | None,
                 config: CircuitConfig, progress: bool, on_slice_proven: Callable[[SliceProof], None] | None):
        # Same layout and manifest as pipeline.prove_one, so a run started by either path resumes in the other.
        x = coerce_input(plan.input_shape, x)
        self.plan, self.circuits, self.job_id, self.on_slice_proven = plan, circuits, job_id, on_slice_proven
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        storage.write_json(self.workdir / "input.json", {"input_data": [x.flatten().tolist()]})
        digest = storage.sha256_bytes(*(f.encode() for f in quantize_input(x, circuits[0].input_scale)))
        self.manifest = Manifest.open(self.workdir / "manifest.json", [c.key_id for c in circuits], digest, job_id)
        self.witnesses = prepare_witnesses(plan, circuits, x, self.workdir, self.manifest)
        self.records: dict[int, SliceProof] = {}
        self.todo: list[ProveTask] = []
        for c, w in zip(circuits, self.witnesses):
            out = self.workdir / f"proof_{c.slice_index}.json"
            done = self.manifest.done_proof(c.slice_index, out)
            if done:
                self.records[c.slice_index] = done
            else:
                self.todo.append(ProveTask.for_slice(c, w.path, out, config.proof_type))
        self.bar = Progress(total=len(circuits), initial=len(self.records), desc=f"proving {self.workdir.name}", enabled=progress)

    def landed(self, p: SliceProof) -> None:
        self.records[p.slice_index] = p
        self.manifest.proofs[str(p.slice_index)] = {"sha256": p.sha256, "seconds": p.seconds, "prover": p.prover}
        self.manifest.save()
        self.bar.update()
        if self.on_slice_proven:
            self.on_slice_proven(p)

    def finish(self) -> Run:
        self.bar.close()
        return finish_run(self.plan, self.circuits, self.witnesses, [self.records[c.slice_index] for c in self.circuits],
                          self.workdir, self.job_id)


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
    states: list[_RunState] = []
    pending: dict = {}  # ObjectRef -> (run state, task)
    try:
        for n, x in enumerate(xs):
            wd, jid = (workdir, job_id) if len(xs) == 1 else (workdir / str(n), f"{job_id}/{n}" if job_id else None)
            st = _RunState(plan, circuits, x, wd, jid, config, progress, on_slice_proven)
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
