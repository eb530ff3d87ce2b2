"""prove() / prove_batch(): slice plan + input(s) -> witnesses -> slice proofs -> receipt, resumable.

The run directory's ``manifest.json`` records each finished witness and proof with its hash. Re-running with
the same workdir, keys and input skips what is already done, so a killed run resumes where it stopped, on
either backend: the loop itself (``RunState``, ``Pipeline``, ``prove_runs``) is in :mod:`dsperse.proving.runs`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence, TypedDict

import numpy as np

from dsperse.artifacts import Circuit, Run, SlicePlan, SliceProof
from dsperse.circuits.build import compile_plan
from dsperse.config import CircuitConfig, DsperseConfig, ProverConfig
from dsperse.config import resolve as resolve_config
from dsperse.errors import DsperseError, InputDataError, MissingArtifactError
from dsperse.proving.backends import LocalBackend, ProverBackend
from dsperse.proving.runs import (  # noqa: F401 - re-exported: their home before dsperse.proving.runs
    Manifest,
    Pipeline,
    RunState,
    finish_run,
    input_digest,
    prepare_witnesses,
    prove_runs,
)
from dsperse.slicing.model import coerce_input
from dsperse.tools import ledger as ledger_mod

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)


def load_inputs(inputs) -> list[np.ndarray]:
    """Accept an EZKL-style JSON file ({"input_data": [[...]]}), a .npy file, an array or a list of them (a batch)."""
    if isinstance(inputs, (str, Path)):
        p = Path(inputs)
        try:
            exists = p.is_file()
        except (OSError, ValueError) as exc:  # a NUL byte, a name too long
            raise InputDataError(repr(str(inputs))[:80], f"not a usable path: {exc}") from exc
        if not exists:
            raise MissingArtifactError("input file", p)
        if p.suffix == ".npy":
            try:
                return [np.load(p)]
            except (OSError, ValueError, EOFError) as exc:
                raise InputDataError(p, f"not a .npy array: {str(exc)[:200]}") from exc
        try:
            data = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputDataError(p, f"not JSON: {exc}") from exc
        if isinstance(data, dict) and "input_data" not in data:
            raise InputDataError(p, f"a JSON object needs an input_data key, got keys {sorted(data)[:5]}")
        rows = data["input_data"] if isinstance(data, dict) else data
        if not isinstance(rows, list) or not rows:
            raise InputDataError(p, f"input_data must be a non-empty list, got {type(rows).__name__}")
        return [_array(r, p) for r in rows] if isinstance(rows[0], list) else [_array(rows, p)]
    if isinstance(inputs, np.ndarray):
        return [inputs]
    if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], (np.ndarray, list, tuple, str, Path)):
        return [x for item in inputs for x in load_inputs(item)] if not _is_flat_numbers(inputs) else [_array(inputs)]
    return [_array(inputs)]


def _array(value, source="input") -> np.ndarray:
    """float32 array of user data; anything that is not (nested lists of) numbers is an InputDataError."""
    if isinstance(value, (dict, str, bytes)) or value is None:
        raise InputDataError(source, f"expected numbers, got {type(value).__name__}")
    try:
        with np.errstate(over="ignore"):  # a too-large number becomes inf, which coerce_input refuses by name
            return np.asarray(value, np.float32)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise InputDataError(source, f"expected (nested lists of) numbers: {str(exc)[:200]}") from exc


def _is_flat_numbers(xs) -> bool:
    return all(isinstance(x, (int, float)) for x in xs)


class ProveOptions(TypedDict, total=False):
    """The keyword options of :func:`prove` and :func:`prove_batch` (one list for both; documented in prove())."""

    config: DsperseConfig | CircuitConfig | Mapping | None
    cluster: str | None
    aggregate: bool | None
    job_id: str | None
    circuits: Sequence[Circuit] | None
    backend: ProverBackend | None
    progress: bool
    on_slice_proven: Callable[[SliceProof], None] | None


def prove(plan: SlicePlan | Path | str, input, workdir: Path | str | None = None, **options: Unpack[ProveOptions]) -> Run:  # noqa: A002
    """Prove ONE input through every slice of ``plan``: witnesses, slice proofs, receipt, in ``workdir``.

    ``input``: an array, a list of numbers, an EZKL-style JSON file or a .npy file holding one input (several
    inputs are a batch: :func:`prove_batch`). ``workdir``: the run directory (default ``<plan>/../runs/latest``);
    rerunning on it resumes from its ``manifest.json``. The keyword ``options`` (:class:`ProveOptions`):

    ``config``: a :class:`~dsperse.config.DsperseConfig` (or a mapping of its sections, or a bare CircuitConfig
    for its ``circuit`` section; default :meth:`DsperseConfig.from_env`). Each stage takes its own section:
    ``circuit`` to compile, ``prover`` for where proofs run (``cluster``, ``device``, ``actors``, ...),
    ``aggregation`` (``enabled``, ``memory_gb``), ``paths`` (``srs``, ``cache``, ``ledger``; a failure to write
    the ledger is logged, never raised: docs/ledger.md).
    ``cluster`` (shortcut for ``prover.cluster``): "auto", "local" or a Ray address proves each slice on its own
    Ray actor (and runs aggregation steps there); None proves in this process.
    ``aggregate`` (shortcut for ``aggregation.enabled``): plan the aggregation first (AggregationError before any
    work when no node can hold it), prove for aggregation, fold into one proof in ``run.aggregate``
    (docs/aggregation.md).
    ``job_id``: bound into the receipt. ``circuits``: compiled circuits to use (default: ``compile_plan``, cached).
    ``backend``: a :class:`~dsperse.proving.backends.ProverBackend` to prove on (e.g. a warm
    :class:`dsperse.distributed.RayBackend`), left open; exclusive with ``cluster``.
    ``progress``: a progress bar per run (default True). ``on_slice_proven``: called with each SliceProof as it lands.
    """
    xs = load_inputs(input)
    if len(xs) != 1:
        raise DsperseError(
            f"prove() proves one input and got {len(xs)}; for a batch call dsperse.prove_batch(plan, inputs, workdir) "
            "(runs in workdir/<n>/, job ids '<job_id>/<n>')"
        )
    return _prove(plan, xs, workdir, False, options)[0]


def prove_batch(plan: SlicePlan | Path | str, inputs, workdir: Path | str | None = None,
                **options: Unpack[ProveOptions]) -> list[Run]:  # fmt: skip
    """Prove every input of ``inputs`` (a list of arrays, or a JSON / .npy file of rows); one Run per input.

    Input ``n`` lands in ``workdir/<n>/`` with job id ``f"{job_id}/{n}"``. On Ray (``cluster=`` or a RayBackend)
    the inputs are pipelined through the slice actors; in-process they run one after another. ``workdir`` and
    the keyword ``options`` are :func:`prove`'s.
    """
    if isinstance(inputs, (list, tuple)) and not inputs:
        raise DsperseError("prove_batch needs at least one input")
    return _prove(plan, load_inputs(inputs), workdir, True, options)


def _prove(plan, xs: list[np.ndarray], workdir, batch: bool, options: ProveOptions) -> list[Run]:
    unknown = sorted(set(options) - ProveOptions.__optional_keys__)
    if unknown:
        raise TypeError(f"{'prove_batch' if batch else 'prove'}() got unknown keyword option(s) {unknown}; "
                        f"it takes {sorted(ProveOptions.__optional_keys__)}")  # fmt: skip
    config, cluster, aggregate, job_id = (options.get(k) for k in ("config", "cluster", "aggregate", "job_id"))
    circuits, backend, on_slice_proven = options.get("circuits"), options.get("backend"), options.get("on_slice_proven")
    progress = options.get("progress", True)
    cfg = resolve_config(config)
    if cluster is not None:
        cfg = dataclasses.replace(cfg, prover=dataclasses.replace(cfg.prover, cluster=cluster))
    if aggregate is not None:
        cfg = dataclasses.replace(cfg, aggregation=dataclasses.replace(cfg.aggregation, enabled=aggregate))
    cluster = cfg.prover.cluster
    if backend is not None and cluster is not None:
        raise DsperseError(
            f"backend= and cluster={cluster!r} both say where proofs run; pick one: cluster= to have prove() start "
            "Ray actors, or backend= (e.g. a warm dsperse.distributed.RayBackend) without cluster="
        )
    if not isinstance(plan, SlicePlan):
        plan = SlicePlan.load(plan)
    srs, cache = cfg.paths.srs, cfg.paths.cache
    ledger = ledger_mod.resolve(cfg.paths.ledger_dir or False) or False  # a bad ledger fails here, before any work
    made: list[SliceProof] = []  # proofs made by this call (not resumed): the ledger's prove rows

    def landed(p: SliceProof) -> None:
        made.append(p)
        if on_slice_proven:
            on_slice_proven(p)

    with _connected(cluster):  # one Ray connection for the slices and the aggregation: both run on this cluster
        circuit_cfg = cfg.circuit
        if cfg.aggregation.enabled:
            if circuits is not None:
                raise DsperseError(
                    "aggregate=True builds its own circuits (Poseidon transcript, aggregator SRS); drop circuits="
                )
            memory = cfg.aggregation.memory_gb * 1e9 if cfg.aggregation.memory_gb is not None else None
            agg_plan, circuit_cfg, srs = _plan_aggregation(plan, circuit_cfg, srs, cache, cluster, memory)
        workdir = Path(workdir) if workdir is not None else plan.root.parent / "runs" / "latest"
        if circuits is None:
            for x in xs:  # reject a wrong input before any slow work
                coerce_input(plan.input_shape, x)
            # calibrate on the plan's seeded default data, not on this input: keys (and so the model id) must not
            # depend on which input happens to be proven first
            circuits = compile_plan(plan, srs=srs, cache=cache, config=circuit_cfg)
        circuits = list(circuits)
        dirs = [workdir / str(n) for n in range(len(xs))] if batch else [workdir]
        job_ids = [f"{job_id}/{n}" if job_id else None for n in range(len(xs))] if batch else [job_id]
        with contextlib.ExitStack() as owned:
            if backend is None:  # ours: closed (actors released) when proving ends
                backend = owned.enter_context(_backend_for(cfg.prover, circuits))
            runs = prove_runs(plan, circuits, xs, dirs, job_ids, backend, config=circuit_cfg, progress=progress,
                              on_slice_proven=landed)  # fmt: skip
        for r in runs:  # one ledger file per run
            ledger_mod.record(ledger_mod.prove_rows(r, [p for p in made if p in r.proofs]), ledger)
        if cfg.aggregation.enabled:
            runs = [_aggregate_run(r, agg_plan, srs, cache, on_ray=cluster is not None, ledger=ledger) for r in runs]
        return runs


def _backend_for(prover: ProverConfig, circuits: list[Circuit]) -> ProverBackend:
    """This process, or (``prover.cluster`` set) SliceProver actors on the connected Ray cluster."""
    if prover.cluster is None:
        return LocalBackend()
    from dsperse.distributed.backend import RayBackend  # Ray stays out of the core import path

    return RayBackend(circuits, prover)


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
