"""RayBackend: the ProverBackend of a ProverPool (warm SliceProver actors, one per slice by default).

``submit`` sends a proof to its slice's actor and returns at once; Ray runs an actor's calls in order, so
when the driver opens the next input while the actors still prove the last one, slice 0 of input k+1 is
proven while slice 1 of input k is on the next actor (``window = None``: every input is pipelined).
``collect`` writes each landed proof on the driver's disk; waiting also moves work off actors whose node
left the cluster (:meth:`ProverPool.wait`). ``cancel`` stops what is in flight, ``close`` also kills the actors
of a pool this backend started.

    with RayBackend(circuits, ProverConfig(device="cpu")) as backend:      # actors start and warm up once
        for batch in batches:
            runs = dsperse.prove_batch(plan, batch, workdir, circuits=circuits, backend=backend)
"""
from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Sequence

import ray

from dsperse.artifacts import Circuit, SliceProof
from dsperse.config import ProverConfig
from dsperse.distributed.pool import ProverPool
from dsperse.errors import DsperseError
from dsperse.proving.tasks import ProveTask

log = logging.getLogger(__name__)


class RayBackend:
    """Proves on the SliceProver actors of ``pool``, or of a pool it starts for ``circuits`` (needs ray.init)."""

    window: int | None = None

    def __init__(self, circuits: Sequence[Circuit] | None = None, prover: ProverConfig | None = None, *,
                 pool: ProverPool | None = None):
        if (circuits is None) == (pool is None):
            raise DsperseError("RayBackend takes circuits (it starts its own ProverPool) or pool=, not both")
        self.own = pool is None
        self.pool = pool if pool is not None else ProverPool(list(circuits), prover)
        self._ids = itertools.count(1)
        self._pending: dict = {}  # ObjectRef -> (handle, task); ProverPool.wait may swap a ref when it moves work

    def submit(self, task: ProveTask) -> int:
        c = self.pool.circuits.get(task.slice_index)
        if c is None or not _same(c.pk, task.pk) or not _same(c.compiled, task.compiled):
            raise DsperseError(
                f"slice {task.slice_index}: the ProverPool was built for other circuits (keys differ); "
                "build one (or a RayBackend) for these circuits"
            )
        handle = next(self._ids)
        self._pending[self.pool.submit(task)] = (handle, task)
        return handle

    def collect(self, block: bool = False) -> list[tuple[int, SliceProof]]:
        if not self._pending:
            return []
        out = []
        for ref in self.pool.wait(self._pending, block=block):
            handle, task = self._pending.pop(ref)
            out.append((handle, self.pool.collect(ref, task)))
        return out

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def cancel(self) -> None:
        for ref in self._pending:
            self.pool._sent.pop(ref, None)  # the pool's record of where it went: nothing will collect it now
            try:
                ray.cancel(ref)
            except Exception:  # already finished or its actor is gone: nothing left to stop
                pass
        self._pending = {}

    def close(self) -> None:
        self.cancel()
        if self.own:
            self.pool.close()

    def __enter__(self) -> "RayBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _same(a, b) -> bool:
    return Path(a).resolve() == Path(b).resolve()
