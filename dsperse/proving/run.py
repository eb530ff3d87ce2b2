"""prove(): slice plan + input -> witnesses -> slice proofs -> receipt, resumable.

The run directory's ``manifest.json`` records each finished witness and proof
with its hash. Re-running with the same workdir, keys and input skips what is
already done, so a killed run resumes where it stopped.
"""
from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from dsperse.artifacts import Circuit, Run, SlicePlan, SliceProof, Witness
from dsperse.circuits.build import CircuitConfig, compile_plan
from dsperse.errors import DsperseError, InputShapeError, MissingArtifactError
from dsperse.linking.receipts import make_receipt
from dsperse.proving.backends import LocalBackend, ProverBackend
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
from dsperse.tools import ledger as ledger_mod
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


def load_inputs(inputs) -> list[np.ndarray]:
    """Accept an EZKL-style JSON file ({"input_data": [[...]]}), a .npy file, an array or a list of them (a batch)."""
    if isinstance(inputs, (str, Path)):
        p = Path(inputs)
        if not p.exists():
            raise MissingArtifactError("input file", p)
        if p.suffix == ".npy":
            return [np.load(p)]
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise InputShapeError((), f"{p} is not JSON ({exc})") from exc
        rows = data["input_data"] if isinstance(data, dict) else data
        return [np.asarray(r, np.float32) for r in rows] if isinstance(rows[0], list) else [np.asarray(rows, np.float32)]
    if isinstance(inputs, np.ndarray):
        return [inputs]
    if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], (np.ndarray, list, tuple, str, Path)):
        return [x for item in inputs for x in load_inputs(item)] if not _is_flat_numbers(inputs) else [np.asarray(inputs, np.float32)]
    return [np.asarray(inputs, np.float32)]


def _is_flat_numbers(xs) -> bool:
    return all(isinstance(x, (int, float)) for x in xs)


def prove(
    plan: SlicePlan | Path | str,
    inputs,
    workdir: Path | str | None = None,
    *,
    srs: Path | str | None = None,
    cache: Path | str | None = None,
    config: CircuitConfig = CircuitConfig(),
    circuits: Sequence[Circuit] | None = None,
    job_id: str | None = None,
    backend: ProverBackend | None = None,
    cluster: str | None = None,
    progress: bool = True,
    on_slice_proven: Callable[[SliceProof], None] | None = None,
    aggregate: bool = False,
    aggregator_memory_bytes: float | None = None,
    device: str | None = None,
    ledger: "ledger_mod.LedgerLike" = None,
) -> Run | list[Run]:
    """Prove ``inputs`` through every slice of ``plan``; returns a Run (or one per input for a batch).

    ``cluster`` ("auto" or a Ray address) proves each slice on its own Ray actor, and runs the aggregation
    steps there as Ray tasks; without it, everything runs in this process. A batch writes ``workdir/<n>/``
    per input.
    ``aggregate=True`` first plans the aggregation (memory, time, tree; AggregationError before any work
    when no node can hold it), proves the slices for aggregation with the aggregator's SRS, then folds
    them into one proof, recorded in ``run.aggregate``. See docs/aggregation.md.
    ``device`` ("auto", "cpu", "gpu") picks the Ray actors' device (default: $DSPERSE_DEVICE, else auto: GPU
    actors where the cluster has GPUs); it needs ``cluster``.
    ``ledger`` (a path or a :class:`~dsperse.tools.ledger.Ledger`; default ``$DSPERSE_LEDGER`` or ``<cache>/ledger``;
    False: off) gets one Parquet file per run with a row per slice proof made (and per aggregation step);
    a failure to write it is logged, never raised. See docs/ledger.md.
    """
    if device is not None and cluster is None:
        raise DsperseError(f"device={device!r} chooses the Ray prover actors' device; pass cluster= too")
    if not isinstance(plan, SlicePlan):
        plan = SlicePlan.load(plan)
    xs = load_inputs(inputs)
    ledger = ledger_mod.resolve(ledger) or False  # a bad ledger= fails here, before any work
    made: list[SliceProof] = []  # proofs made by this call (not resumed): the ledger's prove rows

    def landed(p: SliceProof) -> None:
        made.append(p)
        if on_slice_proven:
            on_slice_proven(p)

    with _connected(cluster):  # one Ray connection for the slices and the aggregation: both run on this cluster
        if aggregate:
            if circuits is not None:
                raise DsperseError(
                    "aggregate=True builds its own circuits (Poseidon transcript, aggregator SRS); drop circuits="
                )
            agg_plan, config, srs = _plan_aggregation(plan, config, srs, cache, cluster, aggregator_memory_bytes)
        workdir = Path(workdir) if workdir is not None else plan.root.parent / "runs" / "latest"
        if circuits is None:
            for x in xs:  # reject a wrong input before any slow work
                coerce_input(plan.input_shape, x)
            # calibrate on the plan's seeded default data, not on this input: keys (and so the model id) must not
            # depend on which input happens to be proven first
            circuits = compile_plan(plan, srs=srs, cache=cache, config=config)
        if cluster is not None:
            from dsperse.distributed import RayOptions, prove_on_ray

            result = prove_on_ray(plan, xs, workdir, circuits=list(circuits), job_id=job_id, cluster=cluster,
                                  config=config, progress=progress, on_slice_proven=landed,
                                  options=RayOptions.from_env(device=device))  # fmt: skip
            runs = result if isinstance(result, list) else [result]
        else:
            backend = backend or LocalBackend()
            runs = [
                prove_one(plan, list(circuits), x, workdir if len(xs) == 1 else workdir / str(n),
                          job_id=job_id if len(xs) == 1 else (f"{job_id}/{n}" if job_id else None), backend=backend,
                          config=config, progress=progress, on_slice_proven=landed)
                for n, x in enumerate(xs)
            ]
        for r in runs:  # one ledger file per run
            ledger_mod.record(ledger_mod.prove_rows(r, [p for p in made if p in r.proofs]), ledger)
        if aggregate:
            runs = [_aggregate_run(r, agg_plan, srs, cache, on_ray=cluster is not None, ledger=ledger) for r in runs]
        return runs[0] if len(xs) == 1 else runs


def _connected(cluster: str | None):
    if cluster is None:
        return contextlib.nullcontext()
    from dsperse.distributed.cluster import connect  # Ray stays out of the core import path

    return connect(cluster)


def _plan_aggregation(plan: SlicePlan, config: CircuitConfig, srs, cache, cluster, memory: float | None):
    """Decide the aggregation before any work, and the slice settings it needs."""
    import dataclasses

    from dsperse import aggregation
    from dsperse.circuits import srs as srs_mod
    from dsperse.errors import AggregationError

    if not plan.is_chain:
        raise AggregationError(
            f"aggregate=True folds a chain of slices; {plan.root} is a graph plan ({len(plan.slices)} slices, "
            f"{len(plan.edges)} edges, tiled ops). Prove it without aggregate= (a linked receipt checks every edge), "
            "or slice a chain (--max-slices) to aggregate. See docs/aggregation.md."
        )
    n = len(plan.slices)
    if memory is not None:
        agg_plan = aggregation.plan(n, memory)
    elif cluster is not None:  # connected by prove(): the cluster's aggregator nodes
        agg_plan = aggregation.plan_for_cluster(n)
    else:
        agg_plan = aggregation.plan(n, aggregation.machine_memory_bytes())  # this process runs every step
    log.warning("aggregation plan:\n%s", agg_plan.describe())
    config = dataclasses.replace(
        config, proof_type="for-aggr", per_slice=tuple(aggregation.boundary_visibilities(n, agg_plan.exposed_boundaries))
    )
    k = max(node.logrows for lvl in agg_plan.levels for node in lvl)
    the_srs = srs_mod.resolve(k, srs, cache)  # one SRS (one secret) for the slices and every aggregation step
    return agg_plan, config, the_srs.path


def _aggregate_run(run: Run, agg_plan, srs: Path, cache, on_ray: bool, ledger: "ledger_mod.LedgerLike" = None) -> Run:
    from dsperse import aggregation
    from dsperse.artifacts import RunAggregate

    proofs = [p.path for p in sorted(run.proofs, key=lambda p: p.slice_index)]
    result = aggregation.aggregate_proofs(proofs, run.workdir / "aggregate", agg_plan, srs=srs, cache=cache,
                                          use_ray=on_ray)  # fmt: skip
    ledger_mod.record(ledger_mod.aggregation_rows(run, result.steps, local=not on_ray), ledger)
    # the receipt layout needs the tree
    run.aggregate = RunAggregate(root=result.root, levels=agg_plan.tree, plan=agg_plan.describe())
    run.save()
    return run


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
    """One input's run directory: manifest, witnesses, the proofs still to make, its progress bar.

    Shared by the in-process path and the Ray path, so a run started by either resumes in the other.
    """

    def __init__(self, plan: SlicePlan, circuits: list[Circuit], x: np.ndarray, workdir: Path, job_id: str | None,
                 config: CircuitConfig, progress: bool, on_slice_proven: Callable[[SliceProof], None] | None):
        x = coerce_input(plan.input_shape, x)
        self.plan, self.circuits, self.job_id, self.on_slice_proven = plan, circuits, job_id, on_slice_proven
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


def prove_one(
    plan: SlicePlan,
    circuits: list[Circuit],
    x: np.ndarray,
    workdir: Path,
    *,
    job_id: str | None,
    backend: ProverBackend,
    config: CircuitConfig,
    progress: bool = True,
    on_slice_proven: Callable[[SliceProof], None] | None = None,
) -> Run:
    state = RunState(plan, circuits, x, workdir, job_id, config, progress, on_slice_proven)
    try:
        backend.prove(state.todo, state.landed)
    finally:
        state.bar.close()
    return state.finish()


def finish_run(plan, circuits, witnesses, records, workdir: Path, job_id: str | None) -> Run:
    proofs = [read_proof(r.path) for r in records]
    fallback = witness_outputs(witnesses[-1].path)
    receipt = make_receipt(proofs, records, circuits, plan.input_shape, plan.output_shape, job_id, fallback)
    run = Run(workdir=workdir, plan=plan, circuits=list(circuits), witnesses=list(witnesses), proofs=list(records), receipt=receipt)
    run.save()
    return run
