"""A run directory's state, and the ONE proving loop every backend goes through.

``RunState`` is one input's run directory: its ``manifest.json`` (what is finished, with hashes), its
witnesses (made in slice order: slice i+1 eats slice i's output felts), the proofs still to make and its
progress bar. ``Pipeline`` drives runs through a :class:`~dsperse.proving.backends.ProverBackend`: per input
it opens a RunState, submits the proofs it lacks, records what landed; then it drains. The backend's
``window`` says how many inputs are open at once: 1 in-process (input after input), unbounded on Ray
(inputs pipelined through the actors). So a run started on either backend resumes on the other.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Hashable, Sequence

import numpy as np

from dsperse.artifacts import Circuit, Run, SlicePlan, SliceProof, Witness
from dsperse.config import CircuitConfig
from dsperse.errors import DsperseError
from dsperse.linking.receipts import make_receipt
from dsperse.proving.backends import ProverBackend
from dsperse.proving.tasks import (
    ProveTask,
    generate_witness,
    quantize_input,
    read_proof,
    witness_output_tensors,
    witness_outputs,
    witness_record,
)
from dsperse.slicing.model import coerce_input
from dsperse.util import storage
from dsperse.util.progress import Progress

log = logging.getLogger(__name__)


@dataclass
class Manifest:
    """What a run has finished so far; written atomically after every step."""

    path: Path
    key_ids: list[str]
    input_digest: str
    job_id: str | None
    witnesses: dict[str, str] = field(default_factory=dict)
    proofs: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def existing(cls, path: Path, key_ids: list[str], input_digest: str, job_id: str | None) -> "Manifest | None":
        """The manifest at ``path`` if there is one; it must be for these keys, this input and this job."""
        if not path.exists():
            return None
        data = storage.read_json(path)
        if data["key_ids"] != key_ids or data["input_digest"] != input_digest or data.get("job_id") != job_id:
            raise DsperseError(
                f"{path.parent} holds a run of another model, input or job; use a fresh workdir or delete it"
            )
        return cls(path, key_ids, input_digest, job_id, data.get("witnesses", {}), data.get("proofs", {}))

    @classmethod
    def open(cls, path: Path, key_ids: list[str], input_digest: str, job_id: str | None) -> "Manifest":
        if (m := cls.existing(path, key_ids, input_digest, job_id)) is not None:
            return m
        m = cls(path, key_ids, input_digest, job_id)
        m.save()
        return m

    def save(self) -> None:
        storage.write_json(
            self.path,
            {"key_ids": self.key_ids, "input_digest": self.input_digest, "job_id": self.job_id,
             "witnesses": self.witnesses, "proofs": self.proofs},
        )

    def done_witness(self, i: int, path: Path) -> bool:
        return path.exists() and self.witnesses.get(str(i)) == storage.sha256_file(path)

    def done_proof(self, i: int, path: Path) -> SliceProof | None:
        rec = self.proofs.get(str(i))
        if rec and path.exists() and rec["sha256"] == storage.sha256_file(path):
            return SliceProof(i, path, rec["sha256"], rec["seconds"], rec.get("prover", ""))
        return None


def input_digest(x: np.ndarray, scale: int) -> str:
    """What a run's manifest records of its input: the sha256 of its quantized field elements."""
    return storage.sha256_bytes(*(f.encode() for f in quantize_input(x, scale)))


def prepare_witnesses(plan: SlicePlan, circuits: list[Circuit], x: np.ndarray, workdir: Path, manifest: Manifest) -> list[Witness]:
    """Generate (or reuse) every slice's witness in plan order; each slice eats its producers' output felts."""
    witnesses: list[Witness] = []
    values: dict[str, list] = {plan.input_name: np.asarray(x, np.float64).flatten().tolist()}
    for s, c in zip(plan.slices, circuits):
        path = workdir / f"witness_{c.slice_index}.json"
        if not manifest.done_witness(c.slice_index, path):
            generate_witness(c, [values[t] for t in s.inputs], path)
            manifest.witnesses[str(c.slice_index)] = storage.sha256_file(path)
            manifest.save()
        witnesses.append(witness_record(c.slice_index, path))
        values.update(zip(s.outputs, witness_output_tensors(path)))
    return witnesses


class RunState:
    """One input's run directory: manifest, witnesses, the proofs still to make (``todo``), its progress bar.

    Every backend goes through it, so a run started on one backend resumes on another.
    """

    def __init__(self, plan: SlicePlan, circuits: list[Circuit], x: np.ndarray, workdir: Path, job_id: str | None,
                 config: CircuitConfig, progress: bool, on_slice_proven: Callable[[SliceProof], None] | None):
        x = coerce_input(plan.input_shape, x)
        self.plan, self.circuits, self.job_id, self.on_slice_proven = plan, circuits, job_id, on_slice_proven
        self.run: Run | None = None
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        storage.write_json(self.workdir / "input.json", {"input_data": [x.flatten().tolist()]})
        self.manifest = Manifest.open(self.workdir / "manifest.json", [c.key_id for c in circuits],
                                      input_digest(x, circuits[0].input_scale), job_id)  # fmt: skip
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
        if self.records:
            log.info("resuming %s: %d of %d slices already proven", self.workdir, len(self.records), len(circuits))
        self.bar = Progress(total=len(circuits), initial=len(self.records), desc=f"proving {self.workdir.name}", enabled=progress)

    @property
    def complete(self) -> bool:
        return len(self.records) == len(self.circuits)

    def landed(self, p: SliceProof) -> None:
        self.records[p.slice_index] = p
        self.manifest.proofs[str(p.slice_index)] = {"sha256": p.sha256, "seconds": p.seconds, "prover": p.prover}
        self.manifest.save()
        self.bar.update()
        if self.on_slice_proven:
            self.on_slice_proven(p)

    def finish(self) -> Run:
        """The receipt and run.json, once every proof is in (idempotent)."""
        if self.run is None:
            self.bar.close()
            self.run = finish_run(self.plan, self.circuits, self.witnesses,
                                  [self.records[c.slice_index] for c in self.circuits], self.workdir, self.job_id)  # fmt: skip
        return self.run


def finish_run(plan, circuits, witnesses, records, workdir: Path, job_id: str | None) -> Run:
    proofs = [read_proof(r.path) for r in records]
    fallback = witness_outputs(witnesses[-1].path)
    receipt = make_receipt(proofs, records, circuits, plan.input_shape, plan.output_shape, job_id, fallback)
    run = Run(workdir=workdir, plan=plan, circuits=list(circuits), witnesses=list(witnesses), proofs=list(records), receipt=receipt)
    run.save()
    return run


class Pipeline:
    """Runs in flight on one backend: the proving loop of ``dsperse.prove``, ``prove_batch`` and ``prove_dataset``.

    ``add`` submits a run's missing proofs; ``poll`` records what landed (manifest, progress bar, callback)
    and returns the runs it completed, each finished (``RunState.run``). ``window`` bounds the runs open at
    once (default: the backend's; None: no bound). Leaving the block on an error closes every open bar and
    cancels what is still in flight on the backend (the backend itself stays open: its owner closes it).
    """

    def __init__(self, backend: ProverBackend, window: int | None = None):
        self.backend = backend
        self.window = window if window is not None else getattr(backend, "window", None)
        self.handles: dict[Hashable, RunState] = {}
        self.open: list[RunState] = []

    def full(self) -> bool:
        return self.window is not None and len(self.open) >= self.window

    def add(self, st: RunState) -> list[RunState]:
        """Submit ``st``'s missing proofs; a run with none left is finished at once (returned)."""
        if not st.todo:
            st.finish()
            return [st]
        self.open.append(st)
        for task in st.todo:
            self.handles[self.backend.submit(task)] = st
        return []

    def poll(self, block: bool = False) -> list[RunState]:
        """Record the proofs that landed (``block``: wait for at least one); return the runs now complete."""
        done = []
        if not self.handles:
            return done
        for handle, proof in self.backend.collect(block=block):
            st = self.handles.pop(handle)
            st.landed(proof)
            if st.complete:
                self.open.remove(st)
                st.finish()
                done.append(st)
        return done

    def room(self) -> list[RunState]:
        """Wait until the window has room for another run; return the runs completed meanwhile."""
        done = []
        while self.full():
            done += self.poll(block=True)
        return done

    def drain(self) -> list[RunState]:
        done = []
        while self.handles:
            done += self.poll(block=True)
        return done

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is None:
            return
        for st in self.open:
            st.bar.close()
        self.open, self.handles = [], {}
        self.backend.cancel()


def prove_runs(
    plan: SlicePlan,
    circuits: Sequence[Circuit],
    xs: Sequence[np.ndarray],
    workdirs: Sequence[Path],
    job_ids: Sequence[str | None],
    backend: ProverBackend,
    *,
    config: CircuitConfig = CircuitConfig(),
    progress: bool = True,
    on_slice_proven: Callable[[SliceProof], None] | None = None,
) -> list[Run]:
    """The one loop: per input a RunState (witnesses, resume), its missing proofs submitted, landed ones
    recorded; then drain. Returns one finished Run per input, in input order."""
    circuits = list(circuits)
    states: list[RunState] = []
    with Pipeline(backend) as pipe:
        for x, wd, jid in zip(xs, workdirs, job_ids):
            pipe.room()
            st = RunState(plan, circuits, x, wd, jid, config, progress, on_slice_proven)
            states.append(st)
            pipe.add(st)
            pipe.poll(block=False)  # record what landed while this input's witnesses were made
        pipe.drain()
    return [st.finish() for st in states]
