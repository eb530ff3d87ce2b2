"""Every script in examples/ runs as a user would run it (a subprocess, from another directory) and prints what it
promises. They share one work dir, so the chain and market examples resume the run slice_prove_verify.py proved
(dsperse.prove's resume) and ledger.py reads the rows all of them wrote to this module's own $DSPERSE_LEDGER."""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dsperse
from dsperse.sampling.reexec import felts_to_ints

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("examples-work")


@pytest.fixture(scope="module")
def run_example(tmp_path_factory, workdir):
    """run_example(name, *args) -> stdout; fails with the output unless the script exits 0. Run from a temp dir
    by absolute path (nothing may depend on the cwd), or ``from_root=True``: ``python examples/NAME`` in the repo."""
    env = dict(os.environ, DSPERSE_LEDGER=str(tmp_path_factory.mktemp("examples-ledger")))
    elsewhere = tmp_path_factory.mktemp("examples-cwd")

    def run(name: str, *args: str, from_root: bool = False, workdir_arg: bool = True) -> str:
        script, cwd = (Path("examples") / name, REPO) if from_root else (EXAMPLES / name, elsewhere)
        cmd = [sys.executable, str(script), *args, *(["--workdir", str(workdir)] if workdir_arg else [])]
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=400)
        assert p.returncode == 0, f"{name} exited {p.returncode}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr[-4000:]}"
        return p.stdout

    return run


def test_every_example_has_a_docstring_and_a_test():
    names = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert names == ["aggregation_plan.py", "chain_receipt.py", "ledger.py", "market_round.py", "ray_batch.py",
                     "serve_once.py", "slice_prove_verify.py"]  # fmt: skip
    for name in names:
        doc = ast.get_docstring(ast.parse((EXAMPLES / name).read_text()))
        assert doc and f"examples/{name}" in doc, f"{name}: the docstring says how to run it"


def test_slice_prove_verify(run_example, workdir):
    out = run_example("slice_prove_verify.py")
    assert "plan: 3 slices" in out and "verified: proofs, links, job id, input, and output vs onnxruntime" in out
    run = dsperse.Run.load(workdir / "run")
    assert f"output {[round(v, 4) for v in run.output]}" in out and "job example-1" in out
    assert dsperse.verify(run, job_id="example-1")


def test_ray_batch(run_example):
    out = run_example("ray_batch.py")
    rows = re.findall(r"^(batch/\d) +(\[.*?\]) +((?:\d:\d+ ?)+)$", out, re.M)
    assert [r[0] for r in rows] == ["batch/0", "batch/1", "batch/2"], out
    assert len({r[1] for r in rows}) == 3  # three inputs, three outputs
    assert len({a.split(":")[1] for a in rows[0][2].split()}) == 3, "one actor per slice"
    assert "verified 3 runs: 9 proofs" in out


def test_serve_once(run_example):
    out = run_example("serve_once.py")
    m = re.search(r"POST /v1/infer -> output (\[.*?\]), job (serve-\d+)", out)
    assert m and "serving mlp at http://127.0.0.1:" in out, out
    states = re.findall(r"^ +[\d.]+ s  (\w+) \[", out, re.M)
    assert states[-1] == "proven" and set(states) <= {"queued", "proving", "proven"}, out
    assert "3 slices" in out and "verified " in out and "output vs onnxruntime" in out


def test_aggregation_plan_from_the_repository_root(run_example):
    out = run_example("aggregation_plan.py", from_root=True, workdir_arg=False)
    assert "== 3 slice proofs on a 24 GB node\n   refused: " in out  # ~20 GB per step: one proof only
    assert "fan-in 2, 2 level(s)" in out and "[[[0, 1], [2]], [[0, 1]]]" in out  # 64 GB: a two-level tree
    assert "fan-in 4, 1 level(s)" in out and "[[[0, 1, 2]]]" in out  # 128 GB: one step


def _gas(out: str) -> tuple[int, int]:
    m = re.search(r"commitment ([\d,]+) gas \+ reveal ([\d,]+) gas", out)
    assert m, out
    return int(m[1].replace(",", "")), int(m[2].replace(",", ""))


def test_chain_receipt(run_example, workdir, toolchain):
    out = run_example("chain_receipt.py")
    commit, reveal = _gas(out)
    assert 20_000 < commit < 100_000 and 1_000_000 < reveal < 4_000_000  # three Halo2 verifications
    run = dsperse.Run.load(workdir / "run")
    assert f"output       {tuple(run.receipt.output)}" in out and "4 public input value(s)" in out
    assert "same model, same output, input hash recomputed from x" in out


def test_chain_receipt_hashed_input(run_example, workdir, toolchain):
    out = run_example("chain_receipt.py", "--hashed")
    assert "(hashed input)" in out and "1 public input value(s)" in out
    assert dsperse.Run.load(workdir / "run-hashed").receipt.input_visibility == "hashed"
    assert "input hash recomputed from x" in out and _gas(out)[1] > 1_000_000


@pytest.mark.parametrize("bps,path", [(10_000, "proveWithReceipt"), (0, "settle")])
def test_market_round(run_example, workdir, toolchain, bps, path):
    out = run_example("market_round.py", "--audit-bps", str(bps))
    assert ("SAMPLED: prove it" in out) == (bps == 10_000)
    assert "job status SETTLED; operator credit 0.01 ETH" in out
    assert re.search(rf"^  {path} +[\d,]+$", out, re.M), out
    outputs = felts_to_ints(dsperse.Run.load(workdir / "run").receipt.output_felts)
    assert f"output {outputs} (scale 2^13)" in out  # the quantized outputs the operator committed to


def test_ledger_reads_what_the_examples_wrote(run_example):
    out = run_example("ledger.py")
    counts = ast.literal_eval(re.search(r"plain pyarrow: (\{.*?\})", out)[1])
    assert counts.get("prove", 0) >= 3 and counts.get("verify", 0) >= 1, out
    assert "per model:" in out and "newest 12 rows:" in out
