"""ProverPool: the SliceProver actors of one model, and the ProverBackend on top of them.

One actor per slice by default (``actors=None``); with fewer actors, actor j serves
slices j, j+m, j+2m, ... Each call to ``submit`` goes to the slice's actor; Ray runs
an actor's calls in order, so with a batch slice 0 of input k+1 is proven while
slice 1 of input k is on the next actor.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from dsperse.artifacts import Circuit, SliceProof
from dsperse.distributed.actors import RemoteSliceProver
from dsperse.distributed.cluster import ActorResources, Device, plan_resources, single_node
from dsperse.errors import DsperseError, ProofError, ProverPlacementError
from dsperse.proving.tasks import ProveTask
from dsperse.util import storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayOptions:
    """How proving is laid out on the cluster."""

    device: Device = "auto"
    """auto: GPU when the cluster has one, else CPU. gpu on a GPU-less cluster fails at once."""
    actors: int | None = None
    """Number of SliceProver actors; None: one per slice."""
    artifacts: Literal["auto", "shared", "ship"] = "auto"
    """shared: actors read circuit files at the driver's paths (one node, or a shared filesystem).
    ship: send them once through the object store into each node's cache. auto: shared on one node."""
    max_restarts: int = 3
    max_task_retries: int = 3
    ready_timeout_s: float = 600.0
    """How long to wait for all actors to start before failing with the resources asked and available."""
    resources: dict[str, float] = field(default_factory=dict)
    """Extra custom resources per actor, e.g. {"prover": 1} on the clusters/ configs."""
    node_cache: str | None = None
    """Where shipped files land on each node; default $DSPERSE_NODE_CACHE or <tmp>/dsperse-node-cache."""

    @classmethod
    def from_env(cls, **overrides) -> "RayOptions":
        """Defaults, with $DSPERSE_DEVICE / $DSPERSE_RAY_ACTORS applied (the SDK's dsperse.prove passes no options)."""
        kw: dict = {}
        if os.environ.get("DSPERSE_DEVICE"):
            kw["device"] = os.environ["DSPERSE_DEVICE"]
        if os.environ.get("DSPERSE_RAY_ACTORS"):
            kw["actors"] = int(os.environ["DSPERSE_RAY_ACTORS"])
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)


class ProverPool:
    """SliceProver actors for ``circuits``, started and warmed on construction (needs ray.init)."""

    def __init__(self, circuits: Sequence[Circuit], options: RayOptions = RayOptions()):
        self.circuits = {c.slice_index: c for c in circuits}
        self.options = options
        n = len(self.circuits)
        m = max(1, min(options.actors or n, n))
        self.request: ActorResources = plan_resources(ray.cluster_resources(), m, options.device, options.resources)
        ship = options.artifacts == "ship" or (options.artifacts == "auto" and not single_node())
        self._refs: list = []  # keep shipped blobs alive as long as actors may restart and need them
        blobs = self._ship(circuits) if ship else {}
        self.owner = {c.slice_index: k % m for k, c in enumerate(sorted(circuits, key=lambda c: c.slice_index))}
        self.actors = []
        for j in range(m):
            mine = {i: _files(self.circuits[i]) for i, a in self.owner.items() if a == j}
            self.actors.append(
                RemoteSliceProver.options(
                    max_restarts=options.max_restarts, max_task_retries=options.max_task_retries,
                    **self.request.as_options(),
                ).remote(mine, {i: blobs[i] for i in mine} if ship else None, self.request.device, options.node_cache)
            )
        self.infos = self._wait_ready()
        log.info("%d SliceProver actors ready (%s, %s)", m, self.request, "shipped" if ship else "shared paths")

    def _ship(self, circuits: Sequence[Circuit]) -> dict[int, dict]:
        """Put each distinct file into the object store once; name it by content for the node cache."""
        by_path: dict[Path, tuple[str, object]] = {}
        out: dict[int, dict] = {}
        for c in circuits:
            out[c.slice_index] = {}
            for what, name in (("compiled", "circuit.ezkl"), ("pk", "pk.key"), ("srs", "k.srs")):
                p = Path(getattr(c, what)).resolve()
                if p not in by_path:
                    digest = storage.sha256_file(p)
                    ref = ray.put(p.read_bytes())
                    self._refs.append(ref)
                    by_path[p] = (f"{digest}/{name}", ref)
                out[c.slice_index][what] = by_path[p]
        return out

    def _wait_ready(self) -> list[dict]:
        refs = [a.info.remote() for a in self.actors]
        try:
            return ray.get(refs, timeout=self.options.ready_timeout_s)
        except GetTimeoutError:
            self.close()
            raise ProverPlacementError(
                f"{len(self.actors)} SliceProver actors were not all placed within {self.options.ready_timeout_s:g}s: "
                f"each asks {self.request.as_options()}; cluster total {ray.cluster_resources()}, "
                f"free now {ray.available_resources()}. Lower RayOptions.actors, or add nodes."
            ) from None

    def pids(self) -> dict[int, int]:
        """Slice index -> pid of the process proving it now (asks the actors: restarts change it)."""
        infos = ray.get([a.info.remote() for a in self.actors])
        return {i: infos[j]["pid"] for i, j in self.owner.items()}

    def actor_for(self, slice_index: int):
        return self.actors[self.owner[slice_index]]

    def submit(self, task: ProveTask):
        """Start proving ``task`` on its slice's actor; returns an ObjectRef of the result."""
        witness = Path(task.witness).read_bytes()
        return self.actor_for(task.slice_index).prove.remote(task.slice_index, witness, task.proof_type)

    def collect(self, ref, task: ProveTask) -> SliceProof:
        """Wait for ``ref`` and write its proof to ``task.out`` atomically (on the driver's disk)."""
        try:
            res = ray.get(ref)
        except RayTaskError as exc:
            cause = exc.cause if isinstance(getattr(exc, "cause", None), DsperseError) else None
            if cause is not None:
                raise cause from None
            raise ProofError(f"slice {task.slice_index}: prover task failed: {exc}") from exc
        except RayActorError as exc:
            raise ProofError(
                f"slice {task.slice_index}: its SliceProver actor died and was not recovered after "
                f"{self.options.max_restarts} restarts / {self.options.max_task_retries} retries ({exc})"
            ) from exc
        out = Path(task.out)
        storage.write_bytes(out, res["proof"])
        return SliceProof(task.slice_index, out, storage.sha256_file(out), res["seconds"], res["prover"])

    def prove(self, tasks: Sequence[ProveTask], on_done: Callable[[SliceProof], None]) -> list[SliceProof]:
        """ProverBackend: prove independent tasks in parallel, reporting each as it lands."""
        pending = {self.submit(t): t for t in tasks}
        done = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                p = self.collect(ref, pending.pop(ref))
                on_done(p)
                done.append(p)
        return done

    def close(self) -> None:
        for a in self.actors:
            ray.kill(a, no_restart=True)
        self.actors = []
        self._refs = []

    def __enter__(self) -> "ProverPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _files(c: Circuit) -> dict[str, str]:
    return {"compiled": str(Path(c.compiled).resolve()), "pk": str(Path(c.pk).resolve()), "srs": str(Path(c.srs).resolve())}
