"""Verifiable inference over HTTP: start dsperse's Ray Serve app, send one request, poll its job to a receipt.

Starts its own local Ray cluster (ray.init(address="local"), no dashboard) and Serve's HTTP proxy on a free
port of 127.0.0.1, serves the zoo MLP (3 slices, k=15) with dsperse.serve.app, POSTs one input to /v1/infer
with a plain urllib client (the answer, onnxruntime's output, comes back at once), polls GET /v1/jobs/ID while
the warm SliceProver actors prove it (queued -> proving -> proven, per slice), prints the receipt, verifies the
job's run directory with dsperse.verify, and shuts Serve and Ray down.

    .venv/bin/python examples/serve_once.py [--workdir DIR]

About 40-90 s on a loaded 2-core box with cached keys (10-25 s to start Ray and Serve, 3 proofs).
The same service from the command line: `dsperse serve DIR/mlp.slices --port 8000` (docs/serve.md).
"""
import argparse
import json
import socket
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import ray
from ray import serve

import dsperse
import dsperse.serve
from dsperse.tools import zoo

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--workdir", type=Path, default=None, help="where to write everything (default: a new temp dir)")
workdir = (p.parse_args().workdir or Path(tempfile.mkdtemp(prefix="dsperse-example-"))).resolve()


def http(method: str, url: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None, method=method,
                                 headers={"content-type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


model = zoo.export("mlp", workdir / "mlp.onnx", seed=0)
plan = dsperse.slice(model, workdir / "mlp.slices", max_slices=3, strategy="layers")
x = np.random.default_rng(4).standard_normal(plan.input_shape).astype(np.float32)
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
url = f"http://127.0.0.1:{port}"

ray.init(address="local", include_dashboard=False, log_to_driver=False)
try:
    t0 = time.perf_counter()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(dsperse.serve.app(plan, jobs=workdir / "serve-jobs"), name="dsperse", route_prefix="/")
    print(f"serving {http('GET', url + '/v1/models')['models'][0]['id']} at {url} ({time.perf_counter() - t0:.0f} s to start)")

    t0 = time.perf_counter()
    answer = http("POST", f"{url}/v1/infer", {"input": x.tolist(), "job_id": f"serve-{int(time.time())}"})
    print(f"POST /v1/infer -> output {np.round(answer['output'], 4).tolist()}, job {answer['job_id']} "
          f"({time.perf_counter() - t0:.2f} s)")  # fmt: skip
    seen = []
    while True:
        job = http("GET", f"{url}/v1/jobs/{answer['job_id']}")
        state = f"{job['status']} [{' '.join(s['status'] for _, s in sorted(job['slices'].items()))}]"
        if not seen or seen[-1] != state:
            seen.append(state)
            print(f"  {time.perf_counter() - t0:5.1f} s  {state}")
        if job["status"] in ("proven", "failed"):
            break
        time.sleep(0.5)
finally:
    serve.shutdown()
    ray.shutdown()

assert job["status"] == "proven", job["error"]
r = job["receipt"]
print(f"receipt: model {r['model_id'][:16]}..., input hash {r['input_hash'][:16]}..., output "
      f"{np.round(r['output'], 4).tolist()} (scale 2^{r['output_scale']}), {r['slice_count']} slices")  # fmt: skip
assert dsperse.verify(job["run_dir"], job_id=answer["job_id"], expected_input=x, reference=True)
print(f"verified {job['run_dir']}: proofs, links, job id, input, and output vs onnxruntime")
