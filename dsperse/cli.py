"""The ``dsperse`` command: slice, compile, prove, verify, and the demo that runs them all.

Each subcommand wires library calls together and prints a short result; the
logic lives in the library. Other areas (chain, market, cluster) add their own
subcommands through ``add_subcommands(subparsers)``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from dsperse.config import ChainConfig, PathsConfig, ProverConfig, SlicingConfig, add_arguments, field_docs
from dsperse.errors import DsperseError, UsageError
from dsperse.options import (
    aggregation_options,
    circuit_options,
    job_id_option,
    ledger_options,
    prover_options,
    settings,
    slicing_options,
)
from dsperse.util.argtypes import address, int_list, non_negative, non_negative_int, positive_int, rpc_url

DEMO_SLICES = 3
"""``dsperse demo --max-slices`` unless given."""

EPILOG = """\
typical flow:
  dsperse slice model.onnx -o model.slices --max-slices 3
  dsperse compile model.slices                      # keys cached by content; a 2nd run skips setup
  dsperse prove model.slices --input input.json -w runs/job1 --job-id job1
  dsperse verify runs/job1 --job-id job1 --reference
  dsperse submit runs/job1 --rpc http://127.0.0.1:8545   # put the receipt on an EVM chain

  dsperse aggregate-plan model.slices               # memory/time of ONE aggregated proof, before any work
  dsperse prove model.slices --input input.json -w runs/job2 --aggregate
  dsperse submit runs/job2 --aggregated --rpc http://127.0.0.1:8545

  dsperse demo                                      # all of the above on a bundled model and a local chain

  dsperse ledger --summary                          # every proof, verification and receipt so far, per model

  dsperse toolchain install                         # anvil, cast, solc-js 0.8.20 from npm (once; the demo does it too)
  dsperse toolchain status                          # which tools are found where

SRS: without --srs a DEVELOPMENT SRS is generated once per size into the cache (~/.cache/dsperse or
$DSPERSE_CACHE). It is not safe for production: pass --srs with a ceremony file for real use.
"""


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(x) for x in text.replace("x", ",").split(",") if x)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a shape like 1,3,32,32, got {text!r}") from exc
    if not shape or any(d < 1 for d in shape):
        raise argparse.ArgumentTypeError(f"expected a shape of dimensions >= 1, like 1,3,32,32, got {text!r}")
    return shape


def cmd_slice(a: argparse.Namespace) -> int:
    from dsperse import slice as slice_model

    sl = settings(a).slicing
    plan = slice_model(a.model, a.out, max_slices=sl.max_slices, strategy=sl.strategy, cuts=a.cuts, input_shape=a.input_shape,
                        estimate=sl.estimate, max_logrows=sl.max_logrows, max_memory=sl.max_memory)
    if a.describe:
        print(plan.describe())
    else:
        for s in plan.slices:
            ins = ", ".join(f"{t} {list(sh)}" for t, sh in zip(s.inputs, s.input_shapes))
            outs = ", ".join(f"{t} {list(sh)}" for t, sh in zip(s.outputs, s.output_shapes))
            print(f"slice {s.index}: {ins} -> {outs}  {s.tile or 'ops=' + '+'.join(s.op_types)}  cost~{s.cost}")
    print(f"plan written to {plan.root / plan.FILE}")
    return 0


def cmd_compile(a: argparse.Namespace) -> int:
    from dsperse import compile as compile_plan

    cfg = settings(a)
    for c in compile_plan(a.plan, srs=cfg.paths.srs, cache=cfg.paths.cache, config=cfg.circuit):
        state = "cached" if c.reused else "set up"
        print(f"slice {c.slice_index}: k={c.logrows} rows={c.num_rows} scale {c.input_scale}->{c.output_scale} "
              f"{c.input_visibility}->{c.output_visibility}  keys {state} ({c.key_id[:12]})")
    return 0


def cmd_prove(a: argparse.Namespace) -> int:
    from dsperse import prove, prove_batch
    from dsperse.proving.run import load_inputs

    cfg = settings(a)  # --device/--actors land in cfg.prover
    for flag, value in (("--device", a.device), ("--actors", a.actors)):
        if value is not None and cfg.prover.cluster is None:
            raise UsageError(f"{flag} {value} sets up the Ray prover actors; pass --cluster too (e.g. --cluster auto)")
    xs = load_inputs(a.input)  # one row: a run in --workdir; several: a batch in <workdir>/<n>/
    if len(xs) == 1:
        result = [prove(a.plan, xs[0], a.workdir, config=cfg, job_id=a.job_id)]
    else:
        result = prove_batch(a.plan, xs, a.workdir, config=cfg, job_id=a.job_id)
    for run in result:
        out = {"workdir": str(run.workdir), "output": run.output, "model_id": run.receipt.model_id,
               "input_hash": run.receipt.input_hash, "job_id": run.receipt.job_id}  # fmt: skip
        if run.aggregate:
            out["aggregate"] = str(run.aggregate.path)
        print(json.dumps(out))
    return 0


def _ledger(cfg):
    """--no-ledger (or $DSPERSE_LEDGER=off): False (off); else ``paths.ledger`` (--ledger, $DSPERSE_LEDGER) or <cache>/ledger."""
    return cfg.paths.ledger_dir or False


LEDGER_HELP = """\
Print the proof ledger: one row per slice proof, verification, aggregation step and chain
submission, appended by `dsperse prove`, `dsperse verify`, the SDK and the chain client.

It is a directory of Parquet files (one per batch, never rewritten) that pandas, pyarrow and
duckdb read without dsperse; the schema is in docs/ledger.md. It lives in --ledger, else
$DSPERSE_LEDGER, else <cache>/ledger ($DSPERSE_CACHE or ~/.cache/dsperse).
"""

LEDGER_EPILOG = """\
examples:
  dsperse ledger                                  # the 20 most recent rows
  dsperse ledger --summary                        # per model: jobs, proofs, mean/max prove time, gas
  dsperse ledger --event prove --model 3fa2 --last 100
  dsperse ledger --job job1 --format json         # everything about one job
  dsperse ledger --format parquet -o ledger.parquet   # one file for a notebook
  python -c "import pandas; print(pandas.read_parquet('$HOME/.cache/dsperse/ledger'))"
"""


def cmd_ledger(a: argparse.Namespace) -> int:
    from dsperse.tools.ledger import Ledger, export

    led = Ledger(a.ledger)
    last = None if a.last == 0 else a.last if a.last is not None else (None if a.summary or a.format != "table" else 20)
    table = led.read(event=a.event, model_id=a.model, job_id=a.job, last=last)
    if a.summary:
        table = led.summary(table)
    text = export(table, a.format, a.out)
    if text is not None:
        sys.stdout.write(text)
        sys.stdout.flush()  # before the footer on stderr
    if a.out is not None:
        print(f"{len(table)} rows written to {a.out}", file=sys.stderr)
    elif a.format == "table" and not a.summary:
        print(f"({len(table)} rows from {led.path})", file=sys.stderr)
    return 0


def cmd_aggregate_plan(a: argparse.Namespace) -> int:
    from dsperse import aggregation
    from dsperse.artifacts import SlicePlan

    cfg = settings(a)
    n = int(a.what) if a.what.isdigit() else len(SlicePlan.load(a.what).slices)
    if cfg.aggregation.memory_gb:
        the_plan = aggregation.plan(n, cfg.aggregation.memory_gb * 1e9)
    elif cfg.prover.cluster:
        from dsperse.distributed.cluster import connect

        with connect(cfg.prover.cluster):
            the_plan = aggregation.plan_for_cluster(n)
    else:
        the_plan = aggregation.plan(n, aggregation.machine_memory_bytes())
    print(the_plan.describe())
    return 0


def cmd_verify(a: argparse.Namespace) -> int:
    from dsperse.linking.verification import Tolerance, verify
    from dsperse.proving.run import load_inputs

    cfg = settings(a)
    expected = load_inputs(a.input)[0] if a.input else None
    chain = None
    if a.rpc:  # only when given: $DSPERSE_RPC alone does not add the on-chain check
        from dsperse.chain import connect

        chain = connect(a.rpc, registry=a.registry, deployments=cfg.chain.deployments)
    verify(a.run, job_id=a.job_id, expected_input=expected, expected_model_id=a.model_id, trusted_srs=a.srs,
           chain=chain, reference=a.reference, tolerance=Tolerance(a.atol, a.rtol), ledger=_ledger(cfg))  # fmt: skip
    print(f"OK: every slice proof verifies and every link holds ({a.run})")
    if a.model_id is None and chain is None:
        print("WARNING: verified against the run directory's OWN verifying keys; that shows the run is self-consistent, "
              "not that it is the model you expect. Pass --model-id (the id you registered or were given) or --rpc "
              "(check the on-chain registration), and --srs with the ceremony SRS.", file=sys.stderr)
    elif a.srs is None:
        print("note: verified with the run's own SRS file; pass --srs to use the ceremony SRS you trust.", file=sys.stderr)
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from dsperse.tools.demo import run_demo

    if not a.no_chain:  # before any proving: a missing toolchain should cost seconds, not a proved run
        from dsperse.chain.install import ensure_toolchain

        ensure_toolchain(auto_install=not a.no_install, echo=lambda line: print(f"demo: {line}"))
    cfg = settings(a)
    return run_demo(workdir=a.workdir, slices=cfg.slicing.max_slices or DEMO_SLICES, chain=not a.no_chain, cache=cfg.paths.cache)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from dsperse import __version__

    def of(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "not installed"

    return f"dsperse {__version__} (ezkl {of('ezkl')}, ray {of('ray')}, web3 {of('web3')})"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="dsperse",
        description="Distributed proof of inference: slice an ONNX model, prove each slice with EZKL, link the slices "
        "by KZG commitments, and record a receipt on an EVM chain.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logs (-vv for EZKL's own)")
    p.add_argument("--version", action="version", version=_version(), help="print the versions and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("slice", help="cut an ONNX model into slices (a chain, or a graph within a circuit size)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=
                       "Cut MODEL into slices.\n\nWith --max-logrows K (or --max-memory), plan a graph of slices that "
                       "all fit 2^K rows:\nops too big are tiled (Conv by output channels, Gemm/MatMul by output columns), "
                       "small ones\nmerged; every tensor between two slices is committed and linked on every column.\n"
                       "Without a target, cut a chain with one tensor crossing each cut (--strategy, --max-slices).",
                       epilog="examples:\n  dsperse slice cnn.onnx --max-logrows 17 --describe\n"
                       "  dsperse slice cnn.onnx --max-memory 4GB\n  dsperse slice mlp.onnx --max-slices 3 --strategy layers")
    s.add_argument("model", type=Path, help="the ONNX model")
    s.add_argument("-o", "--out", type=Path, help="output directory (default: MODEL.slices)")
    s.add_argument("--describe", action="store_true", help="print the plan as a table (slices, tiles, edges, rows, k, memory)")
    slicing_options(s)
    s.add_argument("--cuts", type=int_list(1), help="explicit cut positions, e.g. 2,4")
    s.add_argument("--input-shape", type=_shape, help="fix a dynamic input shape, e.g. 1,3,32,32")
    s.set_defaults(fn=cmd_slice)

    c = sub.add_parser("compile", help="build circuits and keys for every slice (cached)",
                       description="gen_settings, calibrate, compile and setup for each slice of PLAN. Keys are cached "
                       "under a hash of (slice, settings, SRS), so a second run performs no setup.")
    c.add_argument("plan", type=Path, help="slice directory (holding plan.json)")
    circuit_options(c)
    c.set_defaults(fn=cmd_compile)

    pr = sub.add_parser("prove", help="prove an input through every slice", description=
                        "Generate witnesses slice by slice, prove each slice, and write a run directory with a receipt. "
                        "Re-running with the same --workdir resumes: finished slices are not proven again.")
    pr.add_argument("plan", type=Path, help="slice directory (holding plan.json)")
    pr.add_argument("--input", required=True, type=Path, help='JSON {"input_data": [[...]]} (several rows = a batch) or .npy')
    pr.add_argument("-w", "--workdir", type=Path, help="run directory (default: next to the plan)")
    job_id_option(pr, "bind the receipt to it (a batch: JOB_ID/<n>)")
    prover_options(pr)
    aggregation_options(pr)
    circuit_options(pr)
    ledger_options(pr)
    pr.set_defaults(fn=cmd_prove)

    ap = sub.add_parser("aggregate-plan", help="what aggregating a plan would cost, before any work",
                        formatter_class=argparse.RawDescriptionHelpFormatter, description=
                        "Print the aggregation tree, k per step, peak memory and time from measured EZKL 22.3 figures "
                        "(extrapolations are marked), or the reason no node can hold it.",
                        epilog="examples:\n  dsperse aggregate-plan model.slices            # this machine\n"
                        "  dsperse aggregate-plan 8 --aggregation-memory-gb 256   # 8 slice proofs on 256 GB nodes\n"
                        "  dsperse aggregate-plan model.slices --cluster auto  # the Ray cluster's aggregator nodes")
    ap.add_argument("what", metavar="PLAN_DIR|N", help="slice directory (holding plan.json) or a number of slice proofs")
    aggregation_options(ap, enable=False)
    prover_options(ap, ("cluster",))  # read the aggregator nodes' memory from this Ray cluster
    ap.set_defaults(fn=cmd_aggregate_plan)

    v = sub.add_parser("verify", help="verify a run: slice proofs, links, receipt", description=
                       "Verify every slice proof, every link (slice i output commitment == slice i+1 input commitment) "
                       "and that the receipt states what the proofs state.")
    v.add_argument("run", type=Path, help="run directory (holding run.json)")
    job_id_option(v, "fail unless the run was proven for it")
    v.add_argument("--input", type=Path, help="fail unless the run was proven on this input")
    v.add_argument("--model-id", help="fail unless the run is for this model id (hex, from registration or the model owner)")
    v.add_argument("--srs", type=Path, help="the trusted (ceremony) SRS to verify with instead of the run's own file")
    v.add_argument("--rpc", type=rpc_url, metavar="URL", help=field_docs(ChainConfig)["rpc"] + " Only when given: fail "
                   "unless the run's model is registered on this chain with these verifiers")
    v.add_argument("--registry", type=address, metavar="ADDRESS", help="ProofOfInference address for --rpc (default: "
                   "the one recorded for that chain)")
    v.add_argument("--reference", action="store_true", help="also compare the output with onnxruntime")
    v.add_argument("--atol", type=non_negative, default=0.05, help="absolute tolerance for --reference (default 0.05)")
    v.add_argument("--rtol", type=non_negative, default=0.05, help="relative tolerance for --reference (default 0.05)")
    ledger_options(v)
    v.set_defaults(fn=cmd_verify)

    lg = sub.add_parser("ledger", help="print the proof ledger: recent proofs, verifications, receipts; --summary per model",
                        description=LEDGER_HELP, epilog=LEDGER_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(lg, PathsConfig, only=("ledger",))
    lg.add_argument("--model", metavar="ID", help="only this model (a prefix of its id is enough, 0x or not)")
    lg.add_argument("--job", metavar="ID", help="only this job id")
    lg.add_argument("--event", choices=["prove", "verify", "aggregate", "submit"], help="only this kind of row")
    lg.add_argument("--last", type=non_negative_int, metavar="N", help="only the newest N rows (default 20 for the table, "
                    "all for --summary and the file formats; 0 = all)")
    lg.add_argument("--summary", action="store_true", help="one row per model: jobs, proofs, mean/max prove seconds, "
                    "verifications, aggregation steps, submissions, total/mean gas")
    lg.add_argument("--format", choices=["table", "parquet", "csv", "json"], default="table",
                    help="table (default, hashes cut to 12 chars), csv or json (every column, full values), "
                    "parquet (needs -o)")
    lg.add_argument("-o", "--out", type=Path, metavar="FILE", help="write to FILE instead of stdout")
    lg.set_defaults(fn=cmd_ledger)

    d = sub.add_parser("demo", help="end to end on the bundled model: slice, prove, verify, receipt on a local chain")
    d.add_argument("-w", "--workdir", type=Path, default=Path("runs/demo"), help="where to write everything (default runs/demo)")
    slicing_options(d, ("max_slices",), defaults=SlicingConfig(max_slices=DEMO_SLICES))
    d.add_argument("--no-chain", action="store_true", help="stop after verification (no local chain)")
    add_arguments(d, PathsConfig, only=("cache",))
    d.add_argument("--no-install", action="store_true", help="fail if the EVM toolchain is missing instead of installing "
                   "it (by default the demo runs `dsperse toolchain install` once, from the npm registry)")
    d.set_defaults(fn=cmd_demo)

    add_toolchain_parser(sub)
    add_prove_dataset_parser(sub)

    cl = sub.add_parser("cluster", help="check Ray cluster launcher / KubeRay YAMLs offline")
    cl_sub = cl.add_subparsers(dest="cluster_command", required=True)
    cv = cl_sub.add_parser("validate", help="validate YAMLs the way `ray up` does, without touching a cloud")
    cv.add_argument("files", nargs="+", type=Path, help="cluster launcher or KubeRay YAML files")
    cv.set_defaults(fn=lambda a: __import__("dsperse.distributed.cluster_configs", fromlist=["main"]).main([str(f) for f in a.files]))

    for module, names in OPTIONAL_COMMANDS.items():
        _add_optional(sub, module, names)
    return p


TOOLCHAIN_HELP = """\
The EVM toolchain (anvil: a local chain; cast: an independent client; solc-js 0.8.20: the Solidity
compiler, also behind the solc wrapper EZKL runs from ~/.svm/0.8.20/solc-0.8.20) comes from npm, pinned
by the package.json/package-lock.json this package carries (dsperse/chain/npm/). Needs Node.js >= 20
and npm, and the npm registry (or a warm npm cache) once.

Install dir: $DSPERSE_TOOLCHAIN, else $DSPERSE_CACHE/toolchain, else ~/.cache/dsperse/toolchain.
Tools are looked up in $DSPERSE_NODE_MODULES, the install dir, a source checkout's node_modules,
./node_modules, then $PATH.
"""


def cmd_toolchain_install(a: argparse.Namespace) -> int:
    from dsperse.chain.install import install
    from dsperse.chain.toolchain import ezkl_solc_path

    tc = install(a.dir, force=a.force)
    print(f"toolchain: ready (anvil {tc.anvil}, solc-js {tc.solc_js}, EZKL's solc {ezkl_solc_path()})")
    return 0


def cmd_toolchain_status(a: argparse.Namespace) -> int:
    from dsperse.chain.install import status

    lines, ok = status()
    print("\n".join(lines))
    return 0 if ok else 1


def add_toolchain_parser(sub) -> None:
    t = sub.add_parser("toolchain", help="install or inspect the EVM toolchain (anvil, cast, solc-js 0.8.20) from npm",
                       description=TOOLCHAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  dsperse toolchain install                 # idempotent: npm runs only if needed\n"
                       "  dsperse toolchain install --dir /opt/dsperse-tc && export DSPERSE_TOOLCHAIN=/opt/dsperse-tc\n"
                       "  dsperse toolchain status                  # exit 1 when something is missing")
    t_sub = t.add_subparsers(dest="toolchain_command", metavar="ACTION", required=True)
    ti = t_sub.add_parser("install", help="npm ci of the pinned manifest, the ~/.svm solc wrapper, then check every tool",
                          description="Run `npm ci` of the pinned manifest in the install dir (skipped when it already "
                          "holds the pinned versions), write the solc-js wrapper EZKL runs to ~/.svm/0.8.20/solc-0.8.20 "
                          "(a native solc 0.8.20 there is kept), then check that anvil, cast and solc answer and "
                          "compile a probe contract. Safe to run again.")
    ti.add_argument("--dir", type=Path, help="install here (default: $DSPERSE_TOOLCHAIN, else $DSPERSE_CACHE/toolchain, "
                    "else ~/.cache/dsperse/toolchain); dsperse finds another dir only through DSPERSE_TOOLCHAIN")
    ti.add_argument("--force", action="store_true", help="run npm ci even when the dir already holds the pinned packages")
    ti.set_defaults(fn=cmd_toolchain_install)
    ts = t_sub.add_parser("status", help="where each tool is found and its version; exit 1 if one is missing",
                          description="Print the pinned versions, the install dir, the search order, and for each tool "
                          "its path, version and the place it was found; exit 1 when the toolchain is incomplete.")
    ts.set_defaults(fn=cmd_toolchain_status)


PROVE_DATASET_HELP = """\
Prove every row of a Parquet file (or a directory of them) on Ray: one warm SliceProver actor per
slice, rows pipelined through them, each row into its own run directory (WORKDIR/<row>/, job id
PREFIX/<row> or the --job-id-column value). The result is a Parquet dataset at OUT, one row per
input: row_id, job_id, model_id, input and output (Arrow's native fixed-shape tensor type,
arrow.fixed_shape_tensor), output_scale, input_hash, proof_sha256, run_dir, verified, seconds.

Every input is checked against the plan's input shape first: a bad row fails, named, before any
proving. Rerunning the same command proves only rows that have no finished run; OUT is replaced
only when every row is in. Docs: docs/ray.md, "Datasets".
"""

PROVE_DATASET_EPILOG = """\
examples:
  python -c "import numpy as np, pyarrow as pa, pyarrow.parquet as pq; \\
    pq.write_table(pa.table({'input': pa.FixedShapeTensorArray.from_numpy_ndarray( \\
    np.random.rand(6, 1, 4).astype('float32'))}), 'inputs.parquet')"
  dsperse prove-dataset model.slices inputs.parquet -o proven.parquet
  dsperse prove-dataset model.slices inputs.parquet -o proven.parquet --job-id-column job --cluster ray://head:10001
  python -c "import pyarrow.parquet as pq; t = pq.read_table('proven.parquet'); \\
    print(t.column('output').combine_chunks().to_numpy_ndarray())"
"""


def cmd_prove_dataset(a: argparse.Namespace) -> int:
    from dsperse import prove_dataset

    res = prove_dataset(a.plan, a.dataset, a.out, column=a.column, job_id_column=a.job_id_column, job_id=a.job_id,
                        workdir=a.workdir, config=settings(a), batch_size=a.batch_size)  # fmt: skip
    print(json.dumps({"out": str(res.out), "workdir": str(res.workdir), "rows": res.rows, "proven": res.proven,
                      "resumed": res.resumed, "verified": res.verified, "seconds": round(res.seconds, 1)}))  # fmt: skip
    return 0 if res.verified == res.rows else 1


def add_prove_dataset_parser(sub) -> None:
    q = sub.add_parser("prove-dataset", help="prove every row of a Parquet file on Ray; results as a Parquet dataset",
                       description=PROVE_DATASET_HELP, epilog=PROVE_DATASET_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("plan", type=Path, metavar="PLAN_DIR", help="slice directory (holding plan.json)")
    q.add_argument("dataset", type=Path, metavar="INPUT.parquet", help="Parquet file or directory of input rows")
    q.add_argument("-o", "--out", type=Path, required=True, help="output Parquet dataset (a directory of part files)")
    q.add_argument("--column", default="input", help="the input column: a fixed-shape tensor or (nested) lists of "
                   "numbers with the plan's input shape (default: input)")
    q.add_argument("--job-id-column", help="take each row's job id from this column")
    job_id_option(q, "each row's is PREFIX/<row> when no --job-id-column (default PREFIX: OUT's name without its "
                  "suffix: proven.parquet -> proven/0, proven/1, ...)", metavar="PREFIX")
    q.add_argument("-w", "--workdir", type=Path, help="run directories, one per row (default: OUT.runs next to OUT)")
    prover_options(q, defaults=ProverConfig(cluster="auto"))  # always on Ray: auto = $RAY_ADDRESS, a running cluster, else a new local one
    q.add_argument("--batch-size", type=positive_int, default=64, help="rows read, and rows per output file (default 64)")
    circuit_options(q)
    q.set_defaults(fn=cmd_prove_dataset)


OPTIONAL_COMMANDS = {"dsperse.chain.cli": ("submit", "register", "receipt"), "dsperse.sampling.cli": ("market",),
                     "dsperse.serve.cli": ("serve",)}
"""Areas with extra dependencies (web3, the market) and the subcommands they add."""


def _add_optional(sub, module: str, names: tuple[str, ...]) -> None:
    """Let an area register its subcommands; if it cannot be imported, its commands still exist and say why."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        reason = f"{type(exc).__name__}: {exc}"
        for name in names:
            q = sub.add_parser(name, help=f"(unavailable: {module} failed to import)", add_help=False,
                               description=f"unavailable: {module} failed to import ({reason})")  # fmt: skip
            q.add_argument("rest", nargs=argparse.REMAINDER)
            q.set_defaults(fn=_unavailable(name, module, reason))
        return
    mod.add_subcommands(sub)


def _unavailable(name: str, module: str, reason: str):
    def fail(a: argparse.Namespace) -> int:
        raise DsperseError(f"`dsperse {name}` is unavailable: {module} failed to import ({reason}); "
                           "reinstall dsperse-ray with its dependencies (pip install dsperse-ray)")  # fmt: skip

    return fail


class Parser(argparse.ArgumentParser):
    """An ArgumentParser (and, through add_subparsers, every subparser) whose usage errors are one line on stderr,
    ``error: dsperse market economics: argument --r: ... (see `... --help`)``, with exit code 2."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    """``parser.parse_args(argv)``, or the exit code of a usage error (argparse has printed it); --help and --version
    still exit 0 through SystemExit."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code in (0, None):
            raise
        return exc.code if isinstance(exc.code, int) else 2


def run_command(a: argparse.Namespace, verbose: int = 0) -> int:
    """Run ``a.fn(a)``; every failure becomes one ``error: ...`` line on stderr and an exit code, never a traceback.

    DsperseError: its ``exit_code`` (2 when the request cannot be done: bad arguments or data, a missing file, a
    failed check; 1 when the environment failed it: node down, tool missing). OSError: 1. Anything else is a bug
    in dsperse: 1, with the traceback under -v.
    """
    import traceback

    try:
        return a.fn(a) or 0
    except DsperseError as exc:
        print(f"error: {str(exc) or type(exc).__name__}", file=sys.stderr)
        return exc.exit_code if exc.exit_code in (1, 2) else 2
    except OSError as exc:
        if verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence between a bug and the user
        if verbose:
            traceback.print_exc()
        print(f"error: internal error, {type(exc).__name__}: {exc} (a bug in dsperse: re-run with -v for the "
              "traceback and report it)", file=sys.stderr)  # fmt: skip
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parse(parser, argv)
    if isinstance(a, int):
        return a
    logging.basicConfig(level=logging.WARNING - 10 * min(a.verbose, 1), format="%(levelname)s %(name)s: %(message)s")
    if a.verbose < 2:
        from dsperse.proofsystem import quiet_logs

        quiet_logs()
    return run_command(a, a.verbose)


if __name__ == "__main__":
    sys.exit(main())
