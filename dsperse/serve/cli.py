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
before exposing it. Starts its own local Ray cluster (no dashboard) unless --ray-address is given.
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

    from . import app, stop_local_chains

    own_ray = a.ray_address is None
    if own_ray:
        ray.init(address="local", include_dashboard=False, log_to_driver=a.verbose > 0,
                 **({"num_cpus": a.num_cpus} if a.num_cpus else {}))  # fmt: skip
    else:
        ray.init(address=a.ray_address, log_to_driver=a.verbose > 0)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        application = app(a.plan, jobs=a.jobs, name=a.name, workers=a.workers, actors=a.actors, device=a.device,
                          srs=a.srs, cache=a.cache, rpc=a.rpc, private_key=a.private_key, local_chain=a.local_chain,
                          deployments=a.deployments, max_body=a.max_body, verify=not a.no_verify)  # fmt: skip
        serve.start(http_options={"host": a.host, "port": a.port})
        t0 = time.perf_counter()
        serve.run(application, name=a.app_name, route_prefix="/")
        url = f"http://{a.host}:{a.port}"
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
    q = subparsers.add_parser("serve", help="verifiable-inference HTTP service on Ray Serve (answer now, proof after)",
                              description=SERVE_HELP, epilog=SERVE_EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    q.add_argument("plan", type=Path, metavar="PLAN", help="slice plan directory (from `dsperse slice`)")
    q.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    q.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    q.add_argument("--jobs", type=Path, metavar="DIR", help="jobs directory, one run directory per job; unfinished "
                   "jobs in it resume at start (default: PLAN/../jobs)")
    q.add_argument("--name", metavar="ID", help="model id shown by GET /v1/models (default: PLAN's name without .slices)")
    q.add_argument("--workers", type=int, default=2, metavar="N", help="jobs proven at once (default 2); each "
                   "proves its slices in parallel on the actors")
    q.add_argument("--actors", type=int, metavar="N", help="SliceProver actors (default: one per slice)")
    q.add_argument("--device", choices=["auto", "cpu", "gpu"], help="the actors' device (default: $DSPERSE_DEVICE, "
                   "else auto: GPU when the Ray cluster has one)")
    chain = q.add_mutually_exclusive_group()
    chain.add_argument("--rpc", metavar="URL", help="submit every proven receipt to the EVM node at URL (as `dsperse submit`)")
    chain.add_argument("--local-chain", action="store_true", help="start anvil on 127.0.0.1 for the service's "
                       "lifetime and submit every receipt there (needs `dsperse toolchain install`)")
    q.add_argument("--private-key", metavar="HEX", help="signing key for --rpc (default: the node's first unlocked account)")
    q.add_argument("--deployments", type=Path, metavar="FILE", help="chain deployments file (default: "
                   "$DSPERSE_DEPLOYMENTS or ~/.cache/dsperse/evm/deployments.json)")
    q.add_argument("--max-body", type=int, metavar="BYTES", help="largest request body accepted (default 1 MiB; "
                   "larger: 413)")
    q.add_argument("--no-verify", action="store_true", help="skip verifying each run before calling it proven")
    q.add_argument("--ray-address", metavar="ADDR", help="use this Ray cluster (e.g. 127.0.0.1:6379) instead of "
                   "starting a local one")
    q.add_argument("--num-cpus", type=int, metavar="N", help="CPUs of the local Ray cluster (default: all)")
    q.add_argument("--app-name", default="dsperse", help="Ray Serve application name (default dsperse)")
    q.add_argument("--srs", type=Path, help="SRS file (default: a cached development SRS)")
    q.add_argument("--cache", type=Path, help="key/SRS cache (default $DSPERSE_CACHE or ~/.cache/dsperse)")
    q.add_argument("--json", action="store_true", help="print the start-up line as JSON")
    q.set_defaults(fn=cmd_serve)
