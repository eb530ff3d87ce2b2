"""prove_dataset: prove every row of a Ray Dataset (or Parquet file) on warm SliceProver actors.

    import dsperse
    summary = dsperse.prove_dataset(plan, "inputs.parquet", "proven.parquet", cluster="auto")
    table = pyarrow.parquet.read_table("proven.parquet")        # any Arrow reader: no Ray needed

Three passes, so that nothing slow starts on bad data and the provers never starve Ray Data:

1. **Stage.** Ray Data streams the input column (``iter_batches``, order preserved) into one local
   Parquet file, checking every row's shape: a bad row fails with ``InputShapeError`` naming it
   before any witness or proof exists. This runs before the provers take their CPUs; a Ray Data read
   task asks for a whole CPU, which a small cluster full of prover actors would never free.
2. **Prove.** The staged rows stream back in batches through ONE ``RayBackend`` (a warm ``ProverPool``), in
   the same loop as ``dsperse.prove_batch`` (:class:`dsperse.proving.runs.Pipeline`), with at most
   ``max_in_flight`` rows open. Row ``i``
   lands in ``workdir/<i>/`` with job id ``f"{job_id}/{i}"`` (or its ``job_id_column`` value). A row
   whose directory already holds a finished run for the same keys, input and job id is not touched.
3. **Write.** Each finished row is verified (``dsperse.verify``, ~0.1 s per slice) and written, in row
   order, as Parquet parts into a hidden temp directory that replaces ``out`` at the end. Tensors use
   Arrow's native ``arrow.fixed_shape_tensor`` extension type, which pyarrow, pandas, Polars and
   DuckDB read, not Ray's own tensor type.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dsperse.artifacts import Circuit, Run, SlicePlan
from dsperse.circuits.build import compile_plan
from dsperse.config import CircuitConfig, DsperseConfig, ProverConfig
from dsperse.config import resolve as resolve_config
from dsperse.distributed.backend import RayBackend
from dsperse.distributed.cluster import connect
from dsperse.errors import DsperseError, InputShapeError, VerificationError
from dsperse.linking.verification import verify
from dsperse.proving.runs import Manifest, Pipeline, RunState, input_digest
from dsperse.slicing.model import coerce_input
from dsperse.tools import ledger as ledger_mod
from dsperse.util import storage

if TYPE_CHECKING:
    import ray

log = logging.getLogger(__name__)

STAGED = "_dataset_inputs.parquet"
"""The staged input rows in ``workdir`` (row order = row ids); kept as a record of what was proven."""


def output_schema(plan: SlicePlan) -> pa.Schema:
    """The output dataset's columns; the tensor columns use Arrow's native fixed-shape tensor type."""
    return pa.schema([
        pa.field("row_id", pa.int64(), nullable=False),
        pa.field("job_id", pa.string()),
        pa.field("model_id", pa.string()),
        pa.field("input", pa.fixed_shape_tensor(pa.float32(), list(plan.input_shape))),
        pa.field("output", pa.fixed_shape_tensor(pa.float32(), list(plan.output_shape))),
        pa.field("output_scale", pa.int32()),
        pa.field("input_hash", pa.string()),
        pa.field("proof_sha256", pa.list_(pa.string())),
        pa.field("run_dir", pa.string()),
        pa.field("verified", pa.bool_()),
        pa.field("verify_error", pa.string()),
        pa.field("seconds", pa.float64()),
        pa.field("resumed", pa.bool_()),
    ], metadata={b"dsperse": json.dumps({"plan": str(plan.root), "input_shape": list(plan.input_shape),
                                         "output_shape": list(plan.output_shape)}).encode()})


@dataclass(frozen=True)
class DatasetResult:
    """What ``prove_dataset`` did; the rows themselves are in the Parquet dataset at ``out``."""

    out: Path
    workdir: Path
    rows: int
    proven: int
    """Rows proven by this call (the rest were finished runs, skipped)."""
    resumed: int
    verified: int
    seconds: float

    @property
    def rows_per_minute(self) -> float:
        return 60.0 * self.rows / self.seconds if self.seconds > 0 else float("inf")


def prove_dataset(
    plan: SlicePlan | Path | str,
    dataset: "ray.data.Dataset | Path | str",
    out: Path | str,
    *,
    column: str = "input",
    job_id_column: str | None = None,
    job_id: str | None = None,
    workdir: Path | str | None = None,
    config: "DsperseConfig | CircuitConfig | Mapping | None" = None,
    cluster: str | None = None,
    circuits: Sequence[Circuit] | None = None,
    batch_size: int = 64,
    max_in_flight: int | None = None,
) -> DatasetResult:
    """Prove each row of ``dataset`` (a ``ray.data.Dataset`` or a Parquet path) and write a Parquet dataset at ``out``.

    ``column`` holds each input: a fixed-shape tensor (Arrow native or Ray's), or (nested) lists of numbers
    with ``plan.input_shape``'s element count. Job ids come from ``job_id_column``, else ``f"{job_id}/{row}"``
    (``job_id`` defaults to the name of ``out`` without its suffix). Run directories go to ``workdir/<row>/`` (default:
    ``<out>.runs`` next to ``out``). Rerunning the same call proves only rows without a finished run.
    ``max_in_flight`` bounds rows open at once (default: twice the number of slices, at least 4).
    ``config`` and ``circuits`` are :func:`dsperse.prove`'s: ``prover`` (device, actors, ...), ``circuit`` and
    ``paths`` (srs, cache; the ledger gets the prove rows of each row's new proofs and its verify row).
    ``cluster`` (shortcut for ``prover.cluster``; default "auto"): the Ray cluster the rows are proven on.
    """
    if not isinstance(plan, SlicePlan):
        plan = SlicePlan.load(plan)
    out = Path(out).expanduser().resolve()
    workdir = Path(workdir).expanduser().resolve() if workdir is not None else out.with_name(out.name + ".runs")
    prefix = job_id if job_id is not None else out.stem
    cfg = resolve_config(config)
    ledger = ledger_mod.resolve(cfg.paths.ledger_dir or False) or False  # a bad ledger fails here, before any work
    t0 = time.perf_counter()
    with connect(cluster or cfg.prover.cluster or "auto"):
        staged = workdir / STAGED
        n_rows = _stage(plan, dataset, column, job_id_column, staged, batch_size)
        if circuits is None:  # calibrated on the plan's seeded data, as dsperse.prove does: keys must not depend on rows
            circuits = compile_plan(plan, srs=cfg.paths.srs, cache=cfg.paths.cache, config=cfg.circuit)
        circuits = list(circuits)
        limit = max_in_flight or max(4, 2 * len(circuits))
        prover = _Prover(plan, circuits, cfg.circuit, workdir, prefix, cfg.prover, ledger)
        with prover, _PartWriter(out, output_schema(plan), batch_size) as w:
            for rid, x, jid in _staged_rows(staged, batch_size):
                prover.add(rid, x, jid)
                while prover.open_rows() >= limit:
                    prover.wait(block=True)
                prover.wait(block=False)
                w.extend(prover.take_in_order())
            while prover.open_rows():
                prover.wait(block=True)
                w.extend(prover.take_in_order())
            w.extend(prover.take_in_order())
            stats = dict(prover.stats)
    result = DatasetResult(out, workdir, n_rows, stats["proven"], stats["resumed"], stats["verified"], time.perf_counter() - t0)
    log.info("prove_dataset: %d rows (%d proven, %d resumed, %d verified) in %.1fs -> %s",
             result.rows, result.proven, result.resumed, result.verified, result.seconds, out)
    return result


# -- pass 1: stage ---------------------------------------------------------------------------------------------------

def _stage(plan: SlicePlan, dataset, column: str, job_id_column: str | None, dest: Path, batch_size: int) -> int:
    """Stream ``column`` (and the job ids) into ``dest`` as checked float32 tensors; returns the row count."""
    import ray.data  # noqa: F401 - only here: importing dsperse.distributed stays light

    ds = ray.data.read_parquet(str(Path(dataset).expanduser().resolve())) if isinstance(dataset, (str, Path)) else dataset
    names = ds.schema().names
    wanted = [column] + ([job_id_column] if job_id_column else [])
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DsperseError(f"the dataset has no column {missing[0]!r}; its columns are {names}")
    shape = tuple(plan.input_shape)
    fields = [pa.field("input", pa.fixed_shape_tensor(pa.float32(), list(shape)))]
    if job_id_column:
        fields.append(pa.field("job_id", pa.string()))
    schema = pa.schema(fields)
    ctx = ds.context.execution_options
    keep, ctx.preserve_order = ctx.preserve_order, True  # row ids must be the same on every run (resume)
    n = 0
    seen: dict[str, int] = {}  # job id -> first row: two receipts under one job id would collide on chain
    try:
        with storage.atomic_path(dest) as tmp, pq.ParquetWriter(tmp, schema) as writer:
            for batch in ds.select_columns(wanted).iter_batches(batch_size=batch_size, batch_format="numpy"):
                xs = [_row_input(shape, v, n + k) for k, v in enumerate(batch[column])]
                cols = [pa.FixedShapeTensorArray.from_numpy_ndarray(np.stack(xs) if xs else np.zeros((0, *shape), np.float32))]
                if job_id_column:
                    jids = [_row_job_id(v, n + k, job_id_column) for k, v in enumerate(batch[job_id_column])]
                    for k, jid in enumerate(jids):
                        if seen.setdefault(jid, n + k) != n + k:
                            raise DsperseError(f"rows {seen[jid]} and {n + k} share the job id {jid!r} ({job_id_column!r})")
                    cols.append(pa.array(jids, pa.string()))
                writer.write_table(pa.Table.from_arrays(cols, schema=schema))
                n += len(xs)
    finally:
        ctx.preserve_order = keep
    return n


def _row_input(shape: tuple[int, ...], value, row: int) -> np.ndarray:
    """One row's input as a float32 array of ``shape``, or InputShapeError naming the row."""
    try:
        if value is None:
            raise InputShapeError(shape, "no value (null)")
        return coerce_input(shape, _dense(value))
    except InputShapeError as exc:
        raise InputShapeError(shape, f"{exc.got} in row {row}") from None
    except (ValueError, TypeError) as exc:  # ragged nested lists, strings
        raise InputShapeError(shape, f"a value numpy cannot make a tensor of in row {row} ({exc})") from None


def _dense(value) -> np.ndarray:
    """Ray hands list columns over as object arrays of arrays; make them one numeric array."""
    arr = np.asarray(value)
    if arr.dtype == object:
        return np.asarray([_dense(v) for v in arr], np.float32)
    return arr.astype(np.float32, copy=False)


def _row_job_id(value, row: int, column: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value) == "":
        raise DsperseError(f"row {row} has no job id in column {column!r}")
    return value.decode() if isinstance(value, bytes) else str(value)


def _staged_rows(path: Path, batch_size: int) -> Iterator[tuple[int, np.ndarray, str | None]]:
    rid = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
        xs = batch.column("input").to_numpy_ndarray()
        jids = batch.column("job_id").to_pylist() if "job_id" in batch.schema.names else [None] * len(xs)
        for x, jid in zip(xs, jids):
            yield rid, x, jid
            rid += 1


# -- pass 2: prove ---------------------------------------------------------------------------------------------------

class _Prover:
    """Rows in flight on one RayBackend; finished rows come out verified, as output records, in row order."""

    def __init__(self, plan: SlicePlan, circuits: list[Circuit], config: CircuitConfig, workdir: Path, prefix: str,
                 options: ProverConfig, ledger: "ledger_mod.LedgerLike"):
        self.ledger = ledger
        self.plan, self.circuits, self.config, self.workdir, self.prefix = plan, circuits, config, workdir, prefix
        self.options = options
        self.key_ids = [c.key_id for c in circuits]
        self._pipe: Pipeline | None = None  # started on the first row that needs proving: a full resume starts none
        self.rows: dict[int, tuple[RunState, np.ndarray]] = {}
        self.row_of: dict[RunState, int] = {}
        self.made: dict[int, list] = {}  # row id -> slice proofs made by this call (the ledger's prove rows)
        self.done: dict[int, dict] = {}
        self.next_out = 0
        self.stats = {"proven": 0, "resumed": 0, "verified": 0}

    @property
    def pipe(self) -> Pipeline:
        if self._pipe is None:
            self._pipe = Pipeline(RayBackend(self.circuits, self.options))
        return self._pipe

    def open_rows(self) -> int:
        return len(self.rows)

    def add(self, rid: int, x: np.ndarray, jid: str | None) -> None:
        jid = jid if jid is not None else f"{self.prefix}/{rid}"
        wd = self.workdir / str(rid)
        if self._finished(wd, x, jid):
            self.stats["resumed"] += 1
            self._record(rid, Run.load(wd), x, resumed=True)
            return
        st = RunState(self.plan, self.circuits, x, wd, jid, self.config, False,
                      lambda p, rid=rid: self.made.setdefault(rid, []).append(p))  # fmt: skip
        self.rows[rid] = (st, x)
        self.row_of[st] = rid
        if not st.todo:  # every proof is there, only run.json was missing
            self._finish(rid)
            return
        self.pipe.add(st)

    def _finished(self, wd: Path, x: np.ndarray, jid: str) -> bool:
        """True when ``wd`` holds a finished run of these keys, this input and this job id (then it is not touched)."""
        if not (wd / Run.FILE).exists():
            return False
        try:
            m = Manifest.existing(wd / "manifest.json", self.key_ids, input_digest(x, self.circuits[0].input_scale), jid)
        except DsperseError as exc:
            raise DsperseError(f"row {wd.name}: {exc} (reordered or changed dataset?)") from exc
        return m is not None and len(m.proofs) == len(self.circuits)

    def wait(self, block: bool) -> None:
        """Record landed proofs (wait for one when ``block``); finish rows whose last proof landed."""
        if self._pipe is None:
            return
        for st in self._pipe.poll(block=block):
            self._finish(self.row_of[st])

    def _finish(self, rid: int) -> None:
        st, x = self.rows.pop(rid)
        del self.row_of[st]
        self.stats["proven"] += 1
        run = st.finish()
        ledger_mod.record(ledger_mod.prove_rows(run, self.made.pop(rid, [])), self.ledger)
        self._record(rid, run, x, resumed=False)
        log.info("row %d proven (%s)", rid, st.workdir)

    def _record(self, rid: int, run: Run, x: np.ndarray, resumed: bool) -> None:
        r = run.receipt
        try:
            ok, err = verify(run, job_id=r.job_id, expected_input=x, ledger=self.ledger), None
        except VerificationError as exc:
            ok, err = False, f"{type(exc).__name__}: {exc}"
            log.warning("row %d (%s) did not verify: %s", rid, run.workdir, err)
        self.stats["verified"] += ok
        self.done[rid] = {
            "row_id": rid, "job_id": r.job_id, "model_id": r.model_id,
            "input": np.asarray(x, np.float32).reshape(self.plan.input_shape),
            "output": np.asarray(r.output, np.float32).reshape(self.plan.output_shape),
            "output_scale": r.output_scale, "input_hash": r.input_hash, "proof_sha256": list(r.proof_hashes),
            "run_dir": str(run.workdir), "verified": bool(ok), "verify_error": err,
            "seconds": float(sum(p.seconds for p in run.proofs)), "resumed": resumed,
        }

    def take_in_order(self) -> list[dict]:
        """Finished rows from the next unwritten row id on, stopping at the first still open."""
        out = []
        while self.next_out in self.done:
            out.append(self.done.pop(self.next_out))
            self.next_out += 1
        return out

    def __enter__(self) -> "_Prover":
        return self

    def __exit__(self, *exc) -> None:
        for st, _ in self.rows.values():
            st.bar.close()
        if self._pipe is not None:
            self._pipe.backend.close()  # cancels what is in flight, then stops the actors


# -- pass 3: write ---------------------------------------------------------------------------------------------------

class _PartWriter:
    """Parquet parts of ``batch_size`` rows in a hidden temp dir, moved onto ``out`` only when every row is in."""

    def __init__(self, out: Path, schema: pa.Schema, batch_size: int):
        self.out, self.schema, self.batch_size = out, schema, max(1, batch_size)
        self.tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
        self.buf: list[dict] = []
        self.parts = 0

    def __enter__(self) -> "_PartWriter":
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir()
        return self

    def extend(self, rows: list[dict]) -> None:
        self.buf.extend(rows)
        while len(self.buf) >= self.batch_size:
            self._flush(self.buf[: self.batch_size])
            self.buf = self.buf[self.batch_size:]

    def _flush(self, rows: list[dict]) -> None:
        cols = []
        for f in self.schema:
            vals = [r[f.name] for r in rows]
            if isinstance(f.type, pa.FixedShapeTensorType):
                shape = tuple(f.type.shape)
                arr = np.stack(vals) if vals else np.zeros((0, *shape), np.float32)
                cols.append(pa.FixedShapeTensorArray.from_numpy_ndarray(arr))
            else:
                cols.append(pa.array(vals, f.type))
        pq.write_table(pa.Table.from_arrays(cols, schema=self.schema), self.tmp / f"part-{self.parts:06d}.parquet")
        self.parts += 1

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if self.buf or self.parts == 0:  # an empty dataset still gets one file: readers learn the schema from it
            self._flush(self.buf)
            self.buf = []
        old = None
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
