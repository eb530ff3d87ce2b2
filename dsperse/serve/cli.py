"""``dsperse serve``: the verifiable-inference HTTP service on Ray Serve.

Registered through ``dsperse.cli.OPTIONAL_COMMANDS``: when Ray Serve, FastAPI or uvicorn is missing, importing
this module fails and ``dsperse serve`` still exists and says why.
"""
from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from pathlib import Path

from . import missing_dependencies

if _missing := missing_dependencies():
    raise ImportError(f"Ray Serve is not installed ({', '.join(_missing)} not found): pip install 'dsperse-ray[serve]'")

SERVE_HELP = """\
Serve PLAN over HTTP on Ray Serve. POST /v1/infer answers at once with the model's output (onnxruntime on the
whole model) and a job id; the job is then proven in the background on warm SliceProver actors (one per slice),
verified, and (with --rpc or --local-chain) its receipt put on an EVM chain. GET /v1/jobs/JOB_ID follows it:
queued -> proving -> [submitting ->] proven (with the receipt, and tx + block when a chain is set), or failed
(with the error). Each job proves into JOBS/JOB_ID/, a run directory `dsperse verify` reads; a restarted
service resumes unfinished jobs from there.

Binds 127.0.0.1 unless --host says otherwise: there is no authentication, so put a proxy with one in front
before exposing it. Starts its own local Ray cluster (no dashboard) unless --cluster names one.
"""

SERVE_EPILOG = """\
examples:
  dsperse slice model.onnx -o model.slices --max-slices 3
  dsperse serve model.slices --port 8000                      # Ctrl-C stops it
  curl -s -XPOST 127.0.0.1:8000/v1/infer -H 'content-type: application/json' \\
       -d '{"input": [[0.1, -0.2, 0.3, 0.4]], "job_id": "job-1"}'
  curl -s 127.0.0.1:8000/v1/jobs/job-1                        # status, per slice; then the receipt
  dsperse verify model.slices/../jobs/job-1 --job-id job-1 --reference
  dsperse serve model.slices --local-chain                    # receipts on an anvil started here (tx, block)
  dsperse serve model.slices --rpc http://127.0.0.1:8545 --jobs /data/jobs

endpoints: POST /v1/infer, GET /v1/jobs/{id}, GET /v1/jobs, GET /v1/models, GET /healthz (docs/serve.md)
"""


def cmd_serve(a: argparse.Namespace) -> int:
    import ray
    from ray import serve

    from ..options import settings
    from . import app, stop_local_chains

    cfg = settings(a)
    cluster = cfg.prover.cluster
    own_ray = cluster in (None, "local")
    if own_ray:
        ray.init(address="local", include_dashboard=False, log_to_driver=a.verbose > 0,
                 **({"num_cpus": a.num_cpus} if a.num_cpus else {}))  # fmt: skip
    else:
        ray.init(address=cluster, log_to_driver=a.verbose > 0)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        application = app(a.plan, config=cfg, jobs=a.jobs, name=a.name, local_chain=a.local_chain)
        host, port = cfg.serve.host, cfg.serve.port
        serve.start(http_options={"host": host, "port": port})
        t0 = time.perf_counter()
        serve.run(application, name=a.app_name, route_prefix="/")
        url = f"http://{host}:{port}"
        info = {"url": url, "app": a.app_name, "ready_s": round(time.perf_counter() - t0, 1),
                "endpoints": ["POST /v1/infer", "GET /v1/jobs/{id}", "GET /v1/jobs", "GET /v1/models", "GET /healthz"]}
        print(json.dumps(info) if a.json else f"serving {a.plan} at {url} (POST /v1/infer, GET /v1/jobs/ID, "
              "GET /v1/models); Ctrl-C stops", flush=True)  # fmt: skip
        while not stop.wait(1.0):
            pass
        print("stopping: unfinished jobs resume at the next start", flush=True)
    finally:
        try:
            if own_ray:
                serve.shutdown()
            else:
                serve.delete(a.app_name)
        finally:
            if ray.is_initialized():
                ray.shutdown()
            stop_local_chains()
    return 0


def add_subcommands(subparsers) -> None:
    """Add ``serve`` to the ``dsperse`` command."""
    from ..config import ServeConfig, add_arguments
    from ..options import chain_options, circuit_options, ledger_options, prover_options

    q = subparsers.add_parser("serve", help="verifiable-inference HTTP service on Ray Serve (answer now, proof after)",
                              description=SERVE_HELP, epilog=SERVE_EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    q.add_argument("plan", type=Path, metavar="PLAN", help="slice plan directory (from `dsperse slice`)")
    q.add_argument("--jobs", type=Path, metavar="DIR", help="jobs directory, one run directory per job; unfinished "
                   "jobs in it resume at start (default: PLAN/../jobs)")
    q.add_argument("--name", metavar="ID", help="model id shown by GET /v1/models (default: PLAN's name without .slices)")
    q.add_argument("--app-name", default="dsperse", help="Ray Serve application name (default dsperse)")
    q.add_argument("--num-cpus", type=int, metavar="N", help="CPUs of the local Ray cluster (default: all)")
    q.add_argument("--json", action="store_true", help="print the start-up line as JSON")
    add_arguments(q.add_argument_group("service"), ServeConfig)
    prover_options(q)
    chain_options(q)
    q.add_argument_group("local chain").add_argument(
        "--local-chain", action="store_true", help="start anvil on 127.0.0.1 for the service's lifetime and submit "
        "every receipt there (instead of --rpc; needs `dsperse toolchain install`)")  # fmt: skip
    circuit_options(q)
    ledger_options(q)
    q.set_defaults(fn=cmd_serve)
