"""The proof ledger: every proof, verification, aggregation step and chain submission as Parquet rows.

Each batch of rows is ONE new Parquet file, written to a hidden temporary name and renamed into place;
no file is ever rewritten. Concurrent writers (two processes, two nodes on a shared disk) therefore
cannot corrupt each other, a killed writer leaves at most a ``.*.tmp`` file that readers skip, and the
directory is a plain Parquet dataset that needs no dsperse to read:

    pyarrow.dataset.dataset(path, format="parquet").to_table()
    pandas.read_parquet(path)
    duckdb.sql(f"select * from read_parquet('{path}/*.parquet', union_by_name=true)")

It lives in ``$DSPERSE_LEDGER``, else ``<cache dir>/ledger`` (``$DSPERSE_CACHE`` or ~/.cache/dsperse).
Writing it is bookkeeping: :func:`record` logs a warning instead of failing the proof it describes.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Sequence, Union, get_args, get_origin, get_type_hints

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from dsperse.errors import LedgerError  # defined in errors.py; re-exported here

if TYPE_CHECKING:  # pragma: no cover
    from dsperse.artifacts import AggregationStep, Run, SliceProof

log = logging.getLogger(__name__)

Event = Literal["prove", "verify", "aggregate", "submit"]
EVENTS: tuple[str, ...] = get_args(Event)
SCHEMA_VERSION = "1"

INT32 = {"arrow": pa.int32()}
"""Field metadata: store this integer column as int32 (the rest follow :data:`ARROW_TYPES`)."""
ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_(),
               datetime: pa.timestamp("us", tz="UTC")}  # fmt: skip


@dataclass
class LedgerRow:
    """One event; its fields are the Parquet columns, in order (:data:`SCHEMA` is made from them)."""

    event: Event
    timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    job_id: str | None = None
    model_id: str | None = None
    """The run receipt's model id (sha256 over the verifying keys, hex without 0x)."""
    slice_index: int | None = field(default=None, metadata=INT32)
    slice_count: int | None = field(default=None, metadata=INT32)
    logrows: int | None = field(default=None, metadata=INT32)
    rows: int | None = None
    """Rows EZKL uses in the slice's circuit (``Circuit.num_rows``)."""
    seconds: float | None = None
    peak_rss_bytes: int | None = None
    """Largest resident set of the process that did the work, over its whole life so far (getrusage): an
    UPPER bound for this step; null when the work ran elsewhere (a Ray actor, a remote node)."""
    prover: str | None = None
    proof_sha256: str | None = None
    verified: bool | None = None
    error: str | None = None
    tx_hash: str | None = None
    gas: int | None = None
    block: int | None = None
    chain_id: int | None = None
    workdir: str | None = None
    detail: str | None = None


def _schema() -> pa.Schema:
    """LedgerRow as an Arrow schema: a field that may be None is a nullable column; an ``Event`` is a string."""
    hints = get_type_hints(LedgerRow)
    columns = []
    for f in fields(LedgerRow):
        kinds = [k for k in get_args(hints[f.name]) or (hints[f.name],) if k is not type(None)]
        kind = str if get_origin(hints[f.name]) is Literal else kinds[0]
        columns.append(pa.field(f.name, f.metadata.get("arrow") or ARROW_TYPES[kind],
                                nullable=type(None) in get_args(hints[f.name])))  # fmt: skip
    return pa.schema(columns, metadata={"dsperse.tools.ledger.schema": SCHEMA_VERSION})


SCHEMA = _schema()
"""One fixed schema for every file; a column a row does not know is null."""


def default_path() -> Path:
    """``paths.ledger`` ($DSPERSE_LEDGER), else ``<cache dir>/ledger``."""
    from dsperse.config import DsperseConfig

    paths = DsperseConfig.from_env().paths
    return paths.ledger if paths.ledger is not None else paths.cache / "ledger"


def default_enabled() -> bool:
    """False when $DSPERSE_LEDGER is "off" (``paths.ledger_enabled``): the default ledger is then not written."""
    from dsperse.config import DsperseConfig

    return DsperseConfig.from_env().paths.ledger_enabled


class Ledger:
    """A directory of Parquet files, appended to one file per batch."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path).expanduser() if path is not None else default_path()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    def append(self, rows: Iterable[LedgerRow | dict]) -> Path | None:
        """Write ``rows`` as one new file (temp name, fsync, rename); returns it, or None for no rows."""
        records = [asdict(r) if isinstance(r, LedgerRow) else dict(r) for r in rows]
        if not records:
            return None
        unknown = sorted({k for r in records for k in r} - set(SCHEMA.names))
        if unknown:
            raise LedgerError(f"unknown ledger columns {unknown}; the columns are {SCHEMA.names}")
        bad = sorted({r.get("event") for r in records} - set(EVENTS), key=str)
        if bad:
            raise LedgerError(f"unknown ledger event(s) {bad}; events are {list(EVENTS)}")
        table = pa.Table.from_pylist(records, schema=SCHEMA)
        now = datetime.now(timezone.utc)
        name = f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex}.parquet"
        dest = self.path / name
        tmp = self.path / f".{name}.tmp"  # readers skip dot-files; duckdb's *.parquet glob does not match .tmp
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                pq.write_table(table, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dest)  # the name is unique (time + uuid4), so nothing is ever replaced
        except (OSError, pa.ArrowException) as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise LedgerError(f"cannot write the ledger at {self.path}: {exc}", self.path) from exc
        return dest

    def files(self) -> list[Path]:
        """The ledger's Parquet files, oldest first (names start with their UTC write time)."""
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.glob("*.parquet") if p.is_file() and not p.name.startswith((".", "_")))

    def read(
        self,
        *,
        event: str | Sequence[str] | None = None,
        model_id: str | None = None,
        job_id: str | None = None,
        last: int | None = None,
    ) -> pa.Table:
        """Rows in time order, filtered; ``model_id`` may be a prefix (0x or not); ``last`` keeps the newest N.

        Raises LedgerError naming the file when one of them is not a readable Parquet file.
        """
        files = self.files()
        if not files:
            return SCHEMA.empty_table()
        try:
            table = ds.dataset([str(f) for f in files], schema=SCHEMA, format="parquet").to_table()
        except (pa.ArrowException, OSError) as exc:
            raise self._unreadable(files, exc) from exc
        mask = None
        if event is not None:
            events = [event] if isinstance(event, str) else list(event)
            mask = _and(mask, pc.is_in(table["event"], value_set=pa.array(events, pa.string())))
        if model_id is not None:
            prefix = model_id.lower().removeprefix("0x")
            mask = _and(mask, pc.starts_with(pc.utf8_lower(table["model_id"]), prefix))
        if job_id is not None:
            mask = _and(mask, pc.equal(table["job_id"], job_id))
        if mask is not None:
            table = table.filter(pc.fill_null(mask, False))
        table = table.sort_by([("timestamp", "ascending")])
        if last is not None:
            table = table.slice(max(len(table) - last, 0))
        return table

    def summary(self, table: pa.Table | None = None) -> pa.Table:
        """Per model: jobs, proofs, mean/max prove seconds, verifications (ok/failed), aggregation steps,
        submissions and their gas."""
        t = self.read() if table is None else table
        per: dict[Any, dict] = {}
        cols = [t[c].to_pylist() for c in ("model_id", "event", "job_id", "seconds", "verified", "gas")]
        for model, ev, job, secs, ok, gas in zip(*cols):
            s = per.setdefault(model, {"jobs": set(), "prove": [], "verify_ok": 0, "verify_failed": 0,
                                       "aggregate": 0, "gas": [], "submit": 0})  # fmt: skip
            if job is not None:
                s["jobs"].add(job)
            if ev == "prove" and secs is not None:
                s["prove"].append(secs)
            elif ev == "verify":
                s["verify_ok" if ok else "verify_failed"] += 1
            elif ev == "aggregate":
                s["aggregate"] += 1
            elif ev == "submit":
                s["submit"] += 1
                if gas is not None:
                    s["gas"].append(gas)
        out = []
        for model, s in sorted(per.items(), key=lambda kv: (kv[0] is None, kv[0] or "")):
            p, g = s["prove"], s["gas"]
            out.append({
                "model_id": model, "jobs": len(s["jobs"]), "proofs": len(p),
                "prove_mean_s": sum(p) / len(p) if p else None, "prove_max_s": max(p) if p else None,
                "verified": s["verify_ok"], "verify_failed": s["verify_failed"], "aggregations": s["aggregate"],
                "submissions": s["submit"], "gas_total": sum(g) if g else None,
                "gas_mean": sum(g) / len(g) if g else None,
            })  # fmt: skip
        return pa.Table.from_pylist(out, schema=SUMMARY_SCHEMA)

    def _unreadable(self, files: list[Path], exc: Exception) -> LedgerError:
        for f in files:
            try:
                pq.read_table(f, schema=SCHEMA)
            except (pa.ArrowException, OSError) as bad:
                return LedgerError(
                    f"ledger file {f} is not readable Parquet ({bad}); move it out of {self.path} "
                    "(every other file is intact: the ledger never rewrites a file)", f
                )  # fmt: skip
        return LedgerError(f"cannot read the ledger at {self.path}: {exc}", self.path)


SUMMARY_SCHEMA = pa.schema([
    ("model_id", pa.string()), ("jobs", pa.int64()), ("proofs", pa.int64()), ("prove_mean_s", pa.float64()),
    ("prove_max_s", pa.float64()), ("verified", pa.int64()), ("verify_failed", pa.int64()),
    ("aggregations", pa.int64()), ("submissions", pa.int64()), ("gas_total", pa.int64()), ("gas_mean", pa.float64()),
])  # fmt: skip


def _and(a, b):
    return b if a is None else pc.and_(a, b)


LedgerLike = Union[Ledger, Path, str, bool, None]


def resolve(ledger: LedgerLike) -> Ledger | None:
    """None: the default ledger (none when $DSPERSE_LEDGER is "off"); True: the default one; False: none;
    a path or a Ledger: that one."""
    if ledger is None:
        return Ledger() if default_enabled() else None
    if ledger is True:
        return Ledger()
    if ledger is False:
        return None
    if isinstance(ledger, Ledger):
        return ledger
    if isinstance(ledger, (str, os.PathLike)):
        return Ledger(ledger)
    raise TypeError(f"ledger= takes a path, a Ledger, or False to turn it off; got {type(ledger).__name__}")


def record(rows: Sequence[LedgerRow], ledger: LedgerLike = None) -> Path | None:
    """Append ``rows`` to ``ledger`` (see :func:`resolve`); a failure is logged, never raised: the proof,
    verification or transaction it describes already happened."""
    if not rows:
        return None
    try:
        target = resolve(ledger)
        if target is None:
            return None
        t0 = time.perf_counter()
        path = target.append(rows)
        log.debug("ledger: %d %s row(s) -> %s in %.1f ms", len(rows), rows[0].event, path, (time.perf_counter() - t0) * 1e3)
        return path
    except Exception as exc:  # noqa: BLE001 - bookkeeping must not fail the work it records
        log.warning("could not write %d %s row(s) to the proof ledger (%s): %s", len(rows), rows[0].event, ledger, exc)
        return None


def peak_rss_bytes() -> int | None:
    """max(this process, its waited-for children) peak resident set: an upper bound for any step run here."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return None
    kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return int(kb) if sys.platform == "darwin" else int(kb) * 1024  # macOS reports bytes, Linux KiB


def this_process() -> str:
    """How :func:`dsperse.proving.tasks.prove_slice` names a prover running in this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _run_fields(run: "Run") -> dict:
    return {"job_id": run.receipt.job_id, "model_id": run.receipt.model_id, "slice_count": len(run.plan.slices),
            "workdir": str(run.workdir)}  # fmt: skip


def prove_rows(run: "Run", proofs: Iterable["SliceProof"]) -> list[LedgerRow]:
    """One row per slice proof made for ``run`` (pass only the proofs made now, not resumed ones)."""
    circuits = {c.slice_index: c for c in run.circuits}
    here, rss = this_process(), peak_rss_bytes()
    rows = []
    for p in sorted(proofs, key=lambda p: p.slice_index):
        c = circuits.get(p.slice_index)
        rows.append(LedgerRow(
            "prove", slice_index=p.slice_index, logrows=c.logrows if c else None, rows=c.num_rows if c else None,
            seconds=p.seconds, peak_rss_bytes=rss if p.prover == here else None, prover=p.prover or None,
            proof_sha256=p.sha256, **_run_fields(run),
        ))  # fmt: skip
    return rows


def verify_row(run: "Run | Path | str", seconds: float, error: BaseException | None, job_id: str | None = None) -> LedgerRow:
    """The outcome of one ``verify``: verified=True, or False with the error text (and the failing slice)."""
    from dsperse.artifacts import Run

    known = _run_fields(run) if isinstance(run, Run) else {"workdir": str(run), "job_id": job_id}
    return LedgerRow(
        "verify", seconds=seconds, verified=error is None, peak_rss_bytes=peak_rss_bytes(), prover=this_process(),
        error=None if error is None else f"{type(error).__name__}: {error}",
        slice_index=getattr(error, "slice_index", None), **known,
    )  # fmt: skip


def aggregation_rows(run: "Run", steps: Sequence[Sequence["AggregationStep"]], *, local: bool) -> list[LedgerRow]:
    """One row per aggregation step (``AggregationResult.steps``: one list of steps per tree level)."""
    rss = peak_rss_bytes() if local else None
    rows = []
    for done in steps:
        for s in done:
            p, keys = s.proof, s.keys
            setup = "cached keys" if keys.reused else f"setup {keys.seconds:.0f}s"
            rows.append(LedgerRow(
                "aggregate", logrows=p.logrows, seconds=p.seconds, peak_rss_bytes=rss,
                prover=this_process() if local else None, proof_sha256=p.sha256,
                detail=f"level {s.level} step {s.index}: {p.n_proofs} proofs, {p.transcript} transcript, {setup}",
                **_run_fields(run),
            ))  # fmt: skip
    return rows


def submission_row(result: Any, run: "Run | Path | str | None" = None) -> LedgerRow:
    """A row for a chain submission (``dsperse.chain.client.SubmitResult``; read by field name)."""
    from dsperse.artifacts import Run

    if run is not None and not isinstance(run, Run):
        run = Run.load(run)
    known = _run_fields(run) if run is not None else {}
    if not known.get("job_id"):  # the run's own job id joins its prove/verify rows; else the on-chain bytes32
        known["job_id"] = str(result.job_id)
    detail = {"chain_job_id": str(result.job_id), "registry": result.registry, "receipt_id": result.receipt_id,
              "parts": getattr(result, "parts", None), "already_on_chain": result.tx_hash is None}
    return LedgerRow("submit", tx_hash=result.tx_hash, gas=result.gas_used, block=result.block,
                     chain_id=result.chain_id, detail=json.dumps(detail), **known)  # fmt: skip


def record_submission(result: Any, run: "Run | Path | str | None" = None, ledger: LedgerLike = None) -> Path | None:
    """Append one submit row for ``result`` (a SubmitResult) to ``ledger``; never raises (logs a warning).

    ``run`` (a Run or its directory) adds the model id, slice count and workdir.
    """
    try:
        row = submission_row(result, run)
    except Exception as exc:  # noqa: BLE001 - the transaction already landed; losing its row must not undo that
        log.warning("could not describe submission %s for the proof ledger: %s", getattr(result, "tx_hash", "?"), exc)
        return None
    return record([row], ledger)


# -- output ---------------------------------------------------------------------------------------------
TABLE_COLUMNS = ("timestamp", "event", "job_id", "model_id", "slice_index", "logrows", "rows", "seconds",
                 "peak_rss_bytes", "prover", "proof_sha256", "verified", "error", "tx_hash", "gas", "block")  # fmt: skip
_SHORT = {"model_id", "proof_sha256", "tx_hash", "job_id"}


def format_table(table: pa.Table, columns: Sequence[str] | None = None) -> str:
    """A plain-text table; long hashes cut to 12 characters, columns null in every row left out."""
    cols = [c for c in (columns or table.column_names) if c in table.column_names and table[c].null_count < len(table)]
    if not len(table) or not cols:
        return "(no rows)"
    head = {"peak_rss_bytes": "peak_rss_mb"}
    cells = [[head.get(c, c) for c in cols]]
    data = [table[c].to_pylist() for c in cols]
    for i in range(len(table)):
        cells.append([_cell(c, data[j][i]) for j, c in enumerate(cols)])
    widths = [max(len(r[j]) for r in cells) for j in range(len(cols))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells)


def _cell(col: str, v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if col == "peak_rss_bytes":
        return f"{v / 2**20:.0f}"
    if isinstance(v, float):
        if col.endswith("_s") or col == "seconds":
            return f"{v:.3f}"
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    s = str(v)
    if col in _SHORT and len(s) > 14:
        return s[:12] + ".."
    if col == "error" and len(s) > 60:
        return s[:57] + "..."
    return s


def export(table: pa.Table, fmt: str, out: Path | None = None) -> str | None:
    """Write ``table`` as parquet, csv or json to ``out``; csv/json go to the returned string without ``out``."""
    if fmt == "parquet":
        if out is None:
            raise LedgerError("--format parquet writes a file: give it -o FILE")
        pq.write_table(table, out)
        return None
    if fmt == "csv":
        import pyarrow.csv as pcsv

        sink = pa.BufferOutputStream()
        pcsv.write_csv(table, sink)
        text = sink.getvalue().to_pybytes().decode()
    elif fmt == "json":
        text = json.dumps(table.to_pylist(), indent=1, default=_json_default) + "\n"
    elif fmt == "table":
        text = format_table(table, None if "seconds" not in table.column_names else TABLE_COLUMNS) + "\n"
    else:
        raise LedgerError(f"unknown format {fmt!r}: table, parquet, csv or json")
    if out is None:
        return text
    Path(out).write_text(text)
    return None


def _json_default(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(f"cannot serialise {type(o).__name__}")


__all__ = [
    "EVENTS", "Event", "Ledger", "LedgerError", "LedgerRow", "SCHEMA", "SUMMARY_SCHEMA", "aggregation_rows", "default_path",
    "export", "format_table", "peak_rss_bytes", "prove_rows", "record", "record_submission", "resolve", "submission_row",
    "verify_row",
]
