"""One real Ray Serve application for the serve tests: a local Ray cluster, Serve's proxy on a free loopback
port, the zoo MLP cut into 2 slices (k=15, keys from the shared cache), jobs in a temp dir.

The machine is shared: the cluster is this process's own (ray.init(address="local"), no dashboard) and ends
with serve.shutdown() + ray.shutdown(); nothing here stops anything it did not start.
"""
from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

import dsperse
import dsperse.serve

if missing := dsperse.serve.missing_dependencies():
    pytest.skip(f"Ray Serve not installed ({', '.join(missing)}): pip install '.[serve]'", allow_module_level=True)

import ray  # noqa: E402
from ray import serve  # noqa: E402

APP = "dsperse-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | dict | None = None, timeout: float = 30) -> tuple[int, dict]:
    """(status, JSON body) of one real HTTP request; 4xx/5xx are returned, not raised."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"raw": raw.decode(errors="replace")}


@dataclass
class Server:
    url: str
    plan: dsperse.SlicePlan
    jobs: Path
    cache: Path

    def start(self) -> None:
        serve.run(dsperse.serve.app(self.plan, config={"paths": {"cache": str(self.cache)}}, jobs=self.jobs), name=APP, route_prefix="/")

    def stop(self) -> None:
        """Delete the application: its replica and its prover actors die, job files stay (a crash, as far as
        the jobs know: nothing marks them finished)."""
        serve.delete(APP)

    def get(self, path: str) -> tuple[int, dict]:
        return http("GET", self.url + path)

    def post(self, path: str, body) -> tuple[int, dict]:
        return http("POST", self.url + path, body)

    def wait(self, job_id: str, states=("proven", "failed"), timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code, job = self.get(f"/v1/jobs/{job_id}")
            assert code == 200, job
            if job["status"] in states:
                return job
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s: {job}")


@pytest.fixture(scope="module")
def serve_plan(zoo_model, tmp_path_factory) -> dsperse.SlicePlan:
    return dsperse.slice(zoo_model("mlp"), tmp_path_factory.mktemp("serve") / "mlp.slices", max_slices=2, strategy="layers")


@pytest.fixture(scope="module")
def server(serve_plan, cache_dir, tmp_path_factory):
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        s = Server(f"http://127.0.0.1:{port}", serve_plan, tmp_path_factory.mktemp("serve-jobs"), cache_dir)
        s.start()
        yield s
    finally:
        serve.shutdown()
        ray.shutdown()
