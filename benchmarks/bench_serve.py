"""Requests per minute: the serve application (warm actors) vs a fresh `dsperse prove` process per request.

    RAY_AUTH_MODE=token .venv/bin/python benchmarks/bench_serve.py [--requests 6] [--slices 2] [--record]

Same work in both: the zoo "mlp" cut into --slices slices (k=15, keys from the cache), --requests seeded inputs,
every slice of every input proven and the run verified.

  serve   dsperse.serve on a local Ray cluster, Serve's proxy on a free loopback port; all requests POSTed at
          once by a real HTTP client (urllib, one thread each), then polled until every job is proven
  cold    one `dsperse prove` CLI process per request, one after another (import, load keys, prove, exit),
          then `dsperse.verify` (the service verifies each run too)

Prints a table, writes benchmarks/out/serve.json; --record appends the table to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dsperse  # noqa: E402
from dsperse.tools import zoo  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ray import machine, save, table  # noqa: E402  (one machine record, saver and table for the Ray benchmarks)

DSPERSE = Path(sys.executable).with_name("dsperse")


def _http(method: str, url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_serve(plan, xs, work: Path, res: dict) -> tuple[float, list[float], list[float]]:
    import ray
    from ray import serve

    import dsperse.serve

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    res["ray_init_s"] = time.perf_counter() - t0
    try:
        port = _free_port()
        t0 = time.perf_counter()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(dsperse.serve.app(plan, config={"paths": {"ledger_enabled": False}}, jobs=work / "jobs"), name="bench", route_prefix="/")
        res["serve_start_s"] = time.perf_counter() - t0
        url = f"http://127.0.0.1:{port}"

        def post(x):
            t = time.perf_counter()
            r = _http("POST", f"{url}/v1/infer", {"input": x.tolist()})
            return r["job_id"], time.perf_counter() - t

        t0 = time.perf_counter()
        with ThreadPoolExecutor(len(xs)) as ex:
            answers = list(ex.map(post, xs))
        pending = {j for j, _ in answers}
        jobs = {}
        while pending:
            for j in list(pending):
                job = _http("GET", f"{url}/v1/jobs/{j}")
                if job["status"] in ("proven", "failed"):
                    assert job["status"] == "proven", job["error"]
                    jobs[j] = job
                    pending.discard(j)
            time.sleep(0.2)
        wall = time.perf_counter() - t0
        proof_s = [s["seconds"] for j in jobs.values() for s in j["slices"].values()]
        for (j, _), x in zip(answers, xs):
            dsperse.verify(jobs[j]["run_dir"], job_id=j, expected_input=x, ledger=False)
        return wall, [lat for _, lat in answers], proof_s
    finally:
        serve.shutdown()
        ray.shutdown()


def bench_cold(plan, xs, work: Path) -> tuple[float, list[float], list[float]]:
    t0, per_request, proof_s = time.perf_counter(), [], []
    for n, x in enumerate(xs):
        inp = work / f"cold-{n}.json"
        inp.write_text(json.dumps({"input_data": [x.flatten().tolist()]}))
        t = time.perf_counter()
        subprocess.run([str(DSPERSE), "prove", str(plan.root), "--input", str(inp), "-w", str(work / "cold" / str(n)),
                        "--job-id", f"cold-{n}", "--no-ledger"], check=True, capture_output=True, text=True,
                       env={**os.environ, "RUST_LOG": "error"})  # fmt: skip
        run = dsperse.Run.load(work / "cold" / str(n))
        dsperse.verify(run, job_id=f"cold-{n}", expected_input=x, ledger=False)
        per_request.append(time.perf_counter() - t)
        proof_s += [p.seconds for p in run.proofs]
    return time.perf_counter() - t0, per_request, proof_s


def record(text: str) -> None:
    path = REPO / "benchmarks" / "RESULTS.md"
    path.write_text(path.read_text().rstrip("\n") + "\n\n" + text.strip("\n") + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=6)
    ap.add_argument("--slices", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "serve.json")
    ap.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    res: dict = {"machine_start": machine(), "requests": a.requests, "slices": a.slices}
    model = zoo.export("mlp", work / "mlp.onnx")
    plan = dsperse.slice(model, work / "mlp.slices", max_slices=a.slices, strategy="layers")
    circuits = dsperse.compile(plan)  # keys into the cache once: neither side pays setup
    xs = list(np.random.default_rng(13).standard_normal((a.requests, *plan.input_shape)).astype(np.float32))
    print(f"machine {res['machine_start']}; {len(circuits)} slices, k={circuits[0].logrows}, {a.requests} requests")

    s_wall, s_lat, s_proofs = bench_serve(plan, xs, work, res)
    res["machine_mid"] = machine()
    c_wall, c_per, c_proofs = bench_cold(plan, xs, work)
    rows = [
        ["serve (warm actors, all requests at once)", f"{s_wall:.1f}", f"{60 * a.requests / s_wall:.2f}",
         f"{np.median(s_lat):.2f} / {max(s_lat):.2f}", f"{np.mean(s_proofs):.1f}", f"{s_wall / sum(s_proofs):.2f}"],
        ["cold `dsperse prove` process per request", f"{c_wall:.1f}", f"{60 * a.requests / c_wall:.2f}",
         f"{np.median(c_per):.2f} / {max(c_per):.2f}", f"{np.mean(c_proofs):.1f}", f"{c_wall / sum(c_proofs):.2f}"],
    ]  # fmt: skip
    header = ["config", "wall s", "requests/min", "answer s (median / max)", "mean EZKL s/proof", "wall / sum EZKL"]
    table(f"{a.requests} requests x {len(circuits)} slices ({a.requests * len(circuits)} proofs each way)", header, rows)
    fixed = [["ray.init (local, no dashboard)", f"{res['ray_init_s']:.1f}"],
             ["serve.start + serve.run (compile from cache, replica, warm pool)", f"{res['serve_start_s']:.1f}"]]
    table("Fixed costs of the service (paid once, not in the rates above)", ["what", "s"], fixed)
    res.update(serve={"wall_s": s_wall, "answer_s": s_lat, "proof_s": s_proofs},
               cold={"wall_s": c_wall, "per_request_s": c_per, "proof_s": c_proofs})  # fmt: skip
    if a.record:
        md = lambda hdr, rs: "\n".join(["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)] + ["| " + " | ".join(r) + " |" for r in rs])  # noqa: E731
        record(
            f"Run: {time.strftime('%Y-%m-%d')}, {a.requests} requests, zoo mlp in {len(circuits)} slices at k={circuits[0].logrows}; "
            f"load average {res['machine_start']['load_avg']} at start, {res['machine_mid']['load_avg']} between the two, "
            f"{machine()['load_avg']} at the end.\n\n{md(header, rows)}\n\n{md(['fixed cost of the service', 's'], fixed)}"
        )  # fmt: skip
    save(res, a.out, work)


if __name__ == "__main__":
    main()
