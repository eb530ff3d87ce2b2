"""The verifiable-inference service, for real: Ray Serve on loopback, a urllib client, EZKL proofs on warm
SliceProver actors, `dsperse verify` (the CLI) on each job's run directory, and a restart that resumes a job.

One application (tests/serve/conftest.py) serves every test: the zoo MLP in 2 slices at k=15.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import dsperse
import dsperse.serve
from dsperse.slicing.chain import reference_model_output

pytestmark = pytest.mark.slow

DSPERSE = Path(sys.executable).with_name("dsperse")
TOL = dsperse.Tolerance()


def ort(plan, x) -> np.ndarray:
    return reference_model_output(plan.model_path, np.asarray(x, np.float32).reshape(plan.input_shape), plan.input_shape).flatten()


def inputs(n: int, seed: int) -> list[np.ndarray]:
    return list(np.random.default_rng(seed).standard_normal((n, 1, 4)).astype(np.float32))


def test_models_lists_the_plan(server):
    code, body = server.get("/v1/models")
    assert code == 200
    [m] = body["models"]
    assert m["id"] == "mlp" and m["plan"] == str(server.plan.root)
    assert m["input_shape"] == [1, 4] and m["output_shape"] == [1, 3]
    assert [s["index"] for s in m["slices"]] == [0, 1] and all(s["logrows"] == 15 for s in m["slices"])
    assert len(m["model_id"]) == 64


@pytest.mark.parametrize("body,code,says", [
    ({"input": [[1.0, 2.0, 3.0]]}, 422, "expects shape (1, 4)"),             # 3 values for a (1, 4) input
    ({"input": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]}, 422, "expects shape"),  # 6 values
    ({"input": [["a", 1, 2, 3]]}, 422, "must be a number"),
    ({"input": [[True, 1, 2, 3]]}, 422, "must be a number"),
    ({"input": [[1, 2], [3]]}, 422, "ragged"),
    ({"input": "1,2,3,4"}, 422, "list of numbers"),
    ({"job_id": "x"}, 422, 'missing "input"'),
    ({"input": [[1, 2, 3, 4]], "job_id": "../etc"}, 422, "job_id"),
    ({"input": [[1, 2, 3, 4]], "model": "other"}, 404, "unknown model"),
    ({"input": [[1, 2, 3, 4]], "extra": 1}, 400, "unknown field"),
    (b"{not json", 400, "not JSON"),
    (b'{"input": [[1, 2, 3, NaN]]}', 422, "finite"),
    (b"[1, 2, 3, 4]", 400, "JSON object"),
])  # fmt: skip
def test_bad_requests_get_a_4xx_with_the_reason(server, body, code, says):
    got, resp = server.post("/v1/infer", body)
    assert got == code, resp
    assert says in resp.get("error", ""), resp


def test_oversized_body_is_refused_before_parsing(server):
    big = json.dumps({"input": [[0.0] * 4], "pad": "x" * (2 << 20)}).encode()  # 2 MiB > the 1 MiB default
    code, resp = server.post("/v1/infer", big)
    assert code == 413 and "over the limit" in resp["error"], resp


def test_unknown_job_is_404(server):
    code, resp = server.get("/v1/jobs/no-such-job")
    assert code == 404 and "no job 'no-such-job'" in resp["error"]
    assert server.get("/v1/jobs/..%2F..%2Fetc")[0] == 404


def test_infer_poll_receipt_verify(server):
    x = inputs(1, 5)[0]
    t0 = time.monotonic()
    code, resp = server.post("/v1/infer", {"input": x.tolist(), "job_id": "job-e2e"})
    answered = time.monotonic() - t0
    assert code == 202, resp
    assert resp["job_id"] == "job-e2e" and resp["status"] == "queued" and resp["output_shape"] == [1, 3]
    assert np.shape(resp["output"]) == (1, 3)  # in the model's output shape
    np.testing.assert_allclose(np.ravel(resp["output"]), ort(server.plan, x), rtol=1e-5, atol=1e-6)  # onnxruntime's, at once
    assert answered < 10, f"the answer waited for the proof? {answered:.1f}s"

    seen = set()
    deadline = time.monotonic() + 300
    while (job := server.get("/v1/jobs/job-e2e")[1])["status"] not in ("proven", "failed"):
        seen.add(job["status"])
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["status"] == "proven", job["error"]
    assert seen <= {"queued", "proving"} and job["error"] is None
    assert {k: v["status"] for k, v in job["slices"].items()} == {"0": "proven", "1": "proven"}
    receipt = job["receipt"]
    assert receipt["job_id"] == "job-e2e" and receipt["slice_count"] == 2 and receipt["verified"]
    TOL.check(np.array(receipt["output"]), ort(server.plan, x))

    # a retried request with the same job id and input is the same job, not a new proof
    assert server.post("/v1/infer", {"input": x.tolist(), "job_id": "job-e2e"})[0] == 200
    code, resp = server.post("/v1/infer", {"input": (x + 1).tolist(), "job_id": "job-e2e"})
    assert code == 409 and "already used" in resp["error"]

    run_dir = Path(job["run_dir"])
    assert run_dir == server.jobs / "job-e2e" and (run_dir / "manifest.json").is_file()
    p = subprocess.run([str(DSPERSE), "verify", str(run_dir), "--job-id", "job-e2e", "--reference"],
                       capture_output=True, text=True, timeout=180)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr


def test_a_job_that_fails_is_reported_with_its_error(server):
    """A real failure of the core, not a stub: the job's run directory already holds another job's run (its
    manifest), which dsperse's resume check refuses. The job ends failed, with the reason, and stays listed."""
    bad = server.jobs / "job-clash"
    bad.mkdir()
    (bad / "manifest.json").write_text(json.dumps({"key_ids": ["0" * 64], "input_digest": "0" * 64, "job_id": "other"}))
    code, resp = server.post("/v1/infer", {"input": [[0.5, 0.5, 0.5, 0.5]], "job_id": "job-clash"})
    assert code == 202 and np.shape(resp["output"]) == (1, 3)  # the answer still comes at once
    job = server.wait("job-clash", timeout=120)
    assert job["status"] == "failed" and "holds a run of another model, input or job" in job["error"], job
    assert {s["status"] for s in job["slices"].values()} == {"failed"} and job["receipt"] is None
    assert json.loads((bad / "job.json").read_text())["status"] == "failed"  # on disk too: never lost
    assert {"job_id": "job-clash", "status": "failed"}.items() <= next(
        j for j in server.get("/v1/jobs")[1]["jobs"] if j["job_id"] == "job-clash").items()


def test_eight_concurrent_requests_all_get_verified_receipts(server):
    xs = inputs(8, 11)
    with ThreadPoolExecutor(8) as ex:
        answers = list(ex.map(lambda x: server.post("/v1/infer", {"input": x.tolist()}), xs))
    assert [c for c, _ in answers] == [202] * 8, answers
    ids = [a["job_id"] for _, a in answers]
    assert len(set(ids)) == 8
    for (_, a), x in zip(answers, xs):
        np.testing.assert_allclose(np.ravel(a["output"]), ort(server.plan, x), rtol=1e-5, atol=1e-6)
    for job_id, x in zip(ids, xs):
        job = server.wait(job_id, timeout=400)
        assert job["status"] == "proven", job["error"]
        TOL.check(np.array(job["receipt"]["output"]), ort(server.plan, x))
        assert dsperse.verify(job["run_dir"], job_id=job_id, expected_input=x)
    listed = server.get("/v1/jobs")[1]
    assert {j["job_id"] for j in listed["jobs"]} >= set(ids)


def test_restart_resumes_an_unfinished_job(server):
    x = inputs(1, 23)[0]
    code, _ = server.post("/v1/infer", {"input": x.tolist(), "job_id": "job-restart"})
    assert code == 202
    job = server.wait("job-restart", states=("proving", "proven", "failed"), timeout=120)
    assert job["status"] == "proving", job
    server.stop()  # replica and prover actors gone mid-proof
    on_disk = json.loads((server.jobs / "job-restart" / "job.json").read_text())
    assert on_disk["status"] == "proving" and on_disk["attempts"] == 1
    proven_before = {i for i, s in on_disk["slices"].items() if s["status"] == "proven"}
    mtimes = {i: (server.jobs / "job-restart" / f"proof_{i}.json").stat().st_mtime_ns for i in proven_before}

    server.start()  # a new replica finds the job unfinished and proves the rest
    job = server.wait("job-restart", timeout=300)
    assert job["status"] == "proven", job["error"]
    assert job["attempts"] == 2 and sorted(job["resumed_slices"]) == sorted(int(i) for i in proven_before)
    for i, t in mtimes.items():  # what was proven before the stop was not proven again
        assert (server.jobs / "job-restart" / f"proof_{i}.json").stat().st_mtime_ns == t
    TOL.check(np.array(job["receipt"]["output"]), ort(server.plan, x))
    assert dsperse.verify(job["run_dir"], job_id="job-restart", expected_input=x)


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_dsperse_and_dsperse_serve_do_not_import_ray_serve():
    p = _python("import sys, dsperse, dsperse.serve, dsperse.serve.jobs; "
                "print(sorted(m for m in ('ray.serve', 'fastapi', 'starlette', 'uvicorn') if m in sys.modules))")
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stderr


def test_serve_command_without_ray_serve_exists_and_says_why():
    p = _python("import sys; sys.modules['fastapi'] = None; from dsperse.cli import main; sys.exit(main(['serve', 'x.slices']))")
    assert p.returncode == 2, p.stderr
    assert "`dsperse serve` is unavailable" in p.stderr and "fastapi" in p.stderr and "dsperse-ray[serve]" in p.stderr


def test_serve_help_teaches():
    p = subprocess.run([str(DSPERSE), "serve", "--help"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0
    for text in ("POST /v1/infer", "examples:", "curl -s -XPOST", "--local-chain", "--rpc URL", "--jobs DIR", "127.0.0.1"):
        assert text in p.stdout, text


def test_serve_flags_are_the_config_fields():
    """`dsperse serve` takes the same config flags as every command; they land in the config shipped to the replica."""
    from dsperse.cli import build_parser
    from dsperse.options import settings

    a = build_parser().parse_args(["serve", "x.slices", "--workers", "3", "--no-verify", "--max-body", "4096",
                                   "--port", "8123", "--device", "cpu", "--actors", "2", "--cluster", "127.0.0.1:6379",
                                   "--rpc", "http://127.0.0.1:8545", "--no-ledger"])  # fmt: skip
    cfg = settings(a)
    assert (cfg.serve.workers, cfg.serve.verify, cfg.serve.max_body, cfg.serve.port) == (3, False, 4096, 8123)
    assert (cfg.prover.device, cfg.prover.actors, cfg.prover.cluster) == ("cpu", 2, "127.0.0.1:6379")
    assert cfg.chain.rpc == "http://127.0.0.1:8545" and cfg.paths.ledger_dir is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "x.slices", "--workers", "0"])  # at least one worker


def test_serve_run_builder_refuses_unknown_arguments(tmp_path):
    with pytest.raises(dsperse.DsperseError, match="needs plan="):
        dsperse.serve.build({"jobs": "j"})
    with pytest.raises(dsperse.DsperseError, match=r"unknown argument\(s\) \['workers'\].*section.field=value"):
        dsperse.serve.build({"plan": str(tmp_path), "workers": "2"})
    with pytest.raises(dsperse.DsperseError, match="serve.workers"):  # a section value is checked like a spec's
        dsperse.serve.build({"plan": str(tmp_path), "serve.workers": "0"})
