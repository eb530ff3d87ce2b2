"""Read the proof ledger: every proof, verification and chain submission the other examples made.

dsperse appends one Parquet file per batch of rows to the ledger ($DSPERSE_LEDGER, else <cache>/ledger):
prove rows (seconds, k, rows per slice), verify rows, submit rows (gas, block). This prints a summary per
model, the newest rows, and the same data read with plain pyarrow (no dsperse needed to read it). If the
ledger is empty, it first proves and verifies the zoo MLP once so there is something to read.

    .venv/bin/python examples/ledger.py [--ledger DIR] [--workdir DIR]

About 2 s on a ledger with rows; 30-60 s more when it has to prove first.
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

import dsperse
from dsperse.tools import zoo
from dsperse.tools.ledger import Ledger, format_table

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--ledger", type=Path, default=None, help="default: $DSPERSE_LEDGER, else <cache>/ledger")
p.add_argument("--workdir", type=Path, default=None, help="where to prove if the ledger is empty (default: a temp dir)")
args = p.parse_args()
ledger = Ledger(args.ledger)  # None: the default location

if not ledger.files():
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="dsperse-example-"))).resolve()
    print(f"{ledger.path} is empty: proving the zoo MLP once in {workdir}")
    model = zoo.export("mlp", workdir / "mlp.onnx", seed=0)
    plan = dsperse.slice(model, workdir / "mlp.slices", max_slices=3, strategy="layers")
    x = np.random.default_rng(0).standard_normal(plan.input_shape).astype(np.float32)
    run = dsperse.prove(plan, x, workdir / "run", job_id="example-1", progress=False,
                        config={"paths": {"ledger": ledger.path}})  # the ledger is a paths setting
    dsperse.verify(run, job_id="example-1", expected_input=x, ledger=ledger)

print(f"ledger {ledger.path}: {len(ledger.files())} file(s)\n\nper model:")
print(format_table(ledger.summary()))
print("\nnewest 12 rows:")
print(format_table(ledger.read(last=12), ["timestamp", "event", "job_id", "model_id", "slice_index", "logrows",
                                          "seconds", "verified", "gas", "block"]))  # fmt: skip

table = ds.dataset(str(ledger.path), format="parquet").to_table()  # plain pyarrow, no dsperse
counts = table.group_by("event").aggregate([("event", "count")]).to_pylist()
print("\nplain pyarrow:", {c["event"]: c["event_count"] for c in counts}, f"({table.num_rows} rows)")
