"""ProverPool: the SliceProver actors of one model (``RayBackend`` makes them a ProverBackend).

One actor per slice by default (``actors=None``); with fewer actors, actor j serves
slices j, j+m, j+2m, ... Each call to ``submit`` goes to the slice's actor; Ray runs
an actor's calls in order, so with a batch slice 0 of input k+1 is proven while
slice 1 of input k is on the next actor.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Sequence

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from dsperse.artifacts import Circuit, SliceProof
from dsperse.distributed.actors import RemoteSliceProver
from dsperse.config import DsperseConfig, ProverConfig
from dsperse.distributed.cluster import ActorResources, plan_resources, single_node
from dsperse.errors import DsperseError, ProofError, ProverPlacementError
from dsperse.proving.tasks import ProveTask
from dsperse.util import storage

log = logging.getLogger(__name__)

NODE_CHECK_S = 2.0
"""While waiting for proofs, how often the pool looks for actors whose node left the cluster."""
LOST_NODE_GRACE_S = 180.0
"""How long a call that failed with RayActorError waits for its actor's node to be declared dead (then the call
moves to a live actor); after that it fails in collect as before. Ray's own health checks take ~30 s by default."""


RayOptions = ProverConfig
"""The old name of :class:`dsperse.config.ProverConfig` (how proving is laid out on the cluster); kept for user code."""


class ProverPool:
    """SliceProver actors for ``circuits``, started and warmed on construction (needs ray.init).

    ``options``: the config's ``prover`` section (default: ``DsperseConfig.from_env().prover``); its ``cluster``
    is not used here (the caller connects).
    """

    def __init__(self, circuits: Sequence[Circuit], options: ProverConfig | None = None):
        options = options if options is not None else DsperseConfig.from_env().prover
        self.circuits = {c.slice_index: c for c in circuits}
        self.options = options
        n = len(self.circuits)
        m = max(1, min(options.actors or n, n))
        self.request: ActorResources = plan_resources(ray.cluster_resources(), m, options.device, dict(options.resources))
        ship = options.artifacts == "ship" or (options.artifacts == "auto" and not single_node())
        self._refs: list = []  # keep shipped blobs alive as long as actors may restart and need them
        blobs = self._ship(circuits) if ship else {}
        self.owner = {c.slice_index: k % m for k, c in enumerate(sorted(circuits, key=lambda c: c.slice_index))}
        # what any actor needs to prove slice i: the driver's paths and, when shipping, the blobs' refs
        self.sources = {i: (_files(c), blobs.get(i)) for i, c in self.circuits.items()}
        self.lost: set[int] = set()  # actors dropped because their node left the cluster (see recover)
        self._checked = time.monotonic()
        self._sent: dict = {}  # ObjectRef -> index of the actor it went to, until collected
        self.actors = []
        for j in range(m):
            mine = {i: _files(self.circuits[i]) for i, a in self.owner.items() if a == j}
            self.actors.append(
                RemoteSliceProver.options(
                    max_restarts=options.max_restarts, max_task_retries=options.max_task_retries,
                    **self.request.as_options(),
                ).remote(mine, {i: blobs[i] for i in mine} if ship else None, self.request.device,
                         str(options.node_cache) if options.node_cache else None)
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
                f"free now {ray.available_resources()}. Lower the prover config's actors (--actors), or add nodes."
            ) from None

    def _live(self) -> list[int]:
        return [j for j in range(len(self.actors)) if j not in self.lost]

    def _ask(self, key: str) -> dict[int, object]:
        live = self._live()
        infos = dict(zip(live, ray.get([self.actors[j].info.remote() for j in live])))
        return {i: infos[j][key] for i, j in self.owner.items()}

    def pids(self) -> dict[int, int]:
        """Slice index -> pid of the process proving it now (asks the actors: restarts change it)."""
        return self._ask("pid")

    def placement(self) -> dict[int, str]:
        """Slice index -> Ray node id of the actor proving it now (asks the actors: restarts and recover change it)."""
        return self._ask("node_id")

    def actor_for(self, slice_index: int):
        return self.actors[self.owner[slice_index]]

    def submit(self, task: ProveTask):
        """Start proving ``task`` on its slice's actor; returns an ObjectRef of the result."""
        witness = Path(task.witness).read_bytes()
        i = task.slice_index
        j = self.owner[i]
        ref = self.actors[j].prove.remote(i, witness, task.proof_type, self.sources[i])
        self._sent[ref] = j
        return ref

    def wait(self, pending: dict, block: bool = True) -> list:
        """The refs of ``pending`` that are done: at least one if ``block``, else whatever is done now.

        ``pending`` maps each ObjectRef from :meth:`submit` to a tuple whose last item is its ProveTask. While
        waiting, every few seconds :meth:`recover` moves work off actors whose node left the cluster (it
        updates ``pending`` in place), so a lost node never leaves a batch waiting forever.
        """
        while True:
            if time.monotonic() - self._checked >= NODE_CHECK_S:
                self.recover(pending)
            if not pending:
                return []
            ready, _ = ray.wait(list(pending), num_returns=1 if block else len(pending),
                                timeout=NODE_CHECK_S if block else 0)  # fmt: skip
            died = [r for r in ready if _actor_died(r)]
            if died:
                # Ray spends an actor's task retries within seconds when its node vanishes, before the cluster
                # declares the node dead (health checks: ~30 s by default). Wait for that verdict, then move.
                deadline = time.monotonic() + LOST_NODE_GRACE_S
                while any(r in pending for r in died) and time.monotonic() < deadline:
                    if not self.recover(pending):
                        time.sleep(1.0)
                ready = [r for r in ready if r in pending]  # what is left fails in collect, naming the slice
            if ready or not block:
                return ready

    def recover(self, pending: dict) -> list[int]:
        """Drop the actors whose node left the cluster; their slices go to live actors, their queued proofs too.

        Ray would restart such an actor, but only where its resources are free; on a fixed cluster that may be
        never (the survivors hold theirs). So the slices move to the live actors with the fewest slices, which
        fetch the files on first use (``sources``), and every call in ``pending`` (ObjectRef -> tuple ending in
        the ProveTask) that went to a dropped actor and has no result is submitted again (a proof that came back
        before the node went is kept). Returns the moved slice indices.
        """
        self._checked = time.monotonic()
        alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
        gone = [j for j in self._live() if self.infos[j]["node_id"] not in alive]
        if gone:
            survivors = [j for j in self._live() if j not in gone]
            if not survivors:
                raise ProofError(f"the nodes of all {len(self.actors)} SliceProver actors left the cluster")
            for j in gone:
                self.lost.add(j)
                ray.kill(self.actors[j], no_restart=True)
            moved = sorted(i for i, j in self.owner.items() if j in gone)
            load = {j: sum(1 for a in self.owner.values() if a == j) for j in survivors}
            for i in moved:
                self.owner[i] = k = min(survivors, key=lambda j: (load[j], j))
                load[k] += 1
            log.warning("node(s) %s left the cluster: slices %s moved to actors %s",
                        sorted({self.infos[j]["node_id"][:12] for j in gone}), moved, sorted({self.owner[i] for i in moved}))
        else:
            moved = []
        for ref, entry in list(pending.items()):
            if self._sent.get(ref) in self.lost and (not ray.wait([ref], timeout=0)[0] or _actor_died(ref)):
                del pending[ref]
                self._sent.pop(ref, None)
                pending[self.submit(entry[-1])] = entry
        return moved

    def collect(self, ref, task: ProveTask) -> SliceProof:
        """Wait for ``ref`` and write its proof to ``task.out`` atomically (on the driver's disk)."""
        self._sent.pop(ref, None)
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
        """Prove independent tasks in parallel, reporting each as it lands (a convenience; ``RayBackend`` is the backend)."""
        pending = {self.submit(t): (t,) for t in tasks}
        done = []
        while pending:
            for ref in self.wait(pending):
                p = self.collect(ref, pending.pop(ref)[0])
                on_done(p)
                done.append(p)
        return done

    def close(self) -> None:
        for j in self._live():
            ray.kill(self.actors[j], no_restart=True)
        self.actors = []
        self._refs = []
        self._sent = {}

    def __enter__(self) -> "ProverPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _actor_died(ref) -> bool:
    """True when the finished ``ref`` holds a RayActorError (its actor died under it)."""
    try:
        ray.get(ref, timeout=0)
    except RayActorError:
        return True
    except Exception:  # any other failure is collect()'s to report
        return False
    return False


def _files(c: Circuit) -> dict[str, str]:
    return {"compiled": str(Path(c.compiled).resolve()), "pk": str(Path(c.pk).resolve()), "srs": str(Path(c.srs).resolve())}
