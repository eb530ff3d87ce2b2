"""`ray job submit ... -- python -m pipelines.prove` against a real `ray start` head on loopback."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dsperse
from dsperse.util import storage
from dsperse.linking.receipts import model_id

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# Keep the upload small: the venv, node modules, git data and caches never travel with a job.
EXCLUDES = [".venv", "node_modules", ".git", "**/__pycache__", ".pytest_cache", "*.egg-info", "runs", "benchmarks/out",
            "*.key", "*.srs", "*.pk", "*.vk"]


def test_job_proves_and_its_output_verifies(ray_head, zoo_model, mlp_plan, mlp_input, cache_dir, tmp_path):
    circuits = dsperse.compile(mlp_plan, cache=cache_dir)  # what the job will compile: cached here, reused there
    inp = tmp_path / "input.json"
    inp.write_text(json.dumps({"input_data": [np.asarray(mlp_input).flatten().tolist()]}))
    workdir = tmp_path / "job"
    entry = [
        sys.executable, "-m", "pipelines.prove", "--model", str(zoo_model("mlp")), "--input", str(inp),
        "--max-slices", "3", "--strategy", "layers", "--workdir", str(workdir), "--job-id", "job-sub",
        "--cache", str(cache_dir), "--device", "auto",
    ]
    cmd = [str(Path(sys.executable).with_name("ray")), "job", "submit", "--address", ray_head.dashboard,
           "--working-dir", str(REPO), "--runtime-env-json", json.dumps({"excludes": EXCLUDES}), "--", *entry]
    for _ in range(3):  # a head this fresh may not have registered its job agent yet; nothing was submitted then
        res = subprocess.run(cmd, env=ray_head.env, capture_output=True, text=True, timeout=1200)
        log = res.stdout + res.stderr
        if "No available agent to submit job" not in log:
            break
        time.sleep(5)
    assert res.returncode == 0 and "succeeded" in log, log[-5000:]

    summary = storage.read_json(workdir / "summary.json")
    assert summary["ok"] and summary["job_id"] == "job-sub" and summary["slices"] == 3
    assert summary["keys_reused"], "the job should reuse the session's cached keys"
    printed = [json.loads(line) for line in log.splitlines() if line.startswith('{"ok"')]
    assert printed and printed[-1] == summary  # the job's stdout summary is the one it wrote

    run = dsperse.Run.load(workdir / "run")  # verified here, in another process than the job's
    assert dsperse.verify(run, job_id="job-sub", expected_input=mlp_input)
    assert run.receipt.model_id == model_id(circuits) == summary["runs"][0]["model_id"]
