"""The CLI: --help teaches, and slice -> compile -> prove -> verify works from the shell."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dsperse.cli import build_parser, main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsperse.cli", *args], capture_output=True, text=True, timeout=900)


def test_help_lists_the_flow_and_the_dev_srs_warning(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in ("slice", "compile", "prove", "verify", "demo", "not safe for production"):
        assert word in out


def test_bad_model_gives_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00" * 10)
    assert main(["slice", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a valid ONNX model" in err and "Traceback" not in err


@pytest.mark.slow
def test_cli_flow_end_to_end(zoo_model, mlp_circuits, cache_dir, tmp_path):
    plan_dir, run_dir = tmp_path / "slices", tmp_path / "run"
    r = _run("slice", str(zoo_model("mlp")), "-o", str(plan_dir), "--max-slices", "3", "--strategy", "layers")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("slice ") >= 3
    inp = tmp_path / "in.json"
    inp.write_text(json.dumps({"input_data": [[0.1, -0.2, 0.3, 0.4]]}))
    r = _run("prove", str(plan_dir), "--input", str(inp), "-w", str(run_dir), "--job-id", "cli-1", "--cache", str(cache_dir))
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(summary["output"]) == 3 and summary["job_id"] == "cli-1"
    r = _run("verify", str(run_dir), "--job-id", "cli-1", "--input", str(inp), "--reference")
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout
    r = _run("verify", str(run_dir), "--job-id", "other-job")
    assert r.returncode == 2 and "not 'other-job'" in r.stderr
    r = _run("compile", str(plan_dir), "--cache", str(cache_dir))
    assert r.returncode == 0 and r.stdout.count("keys cached") == 3, r.stdout + r.stderr


def test_version_names_dsperse_and_its_provers(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("dsperse 0.1.0") and "ezkl 22.3.0" in out


def test_a_subcommand_whose_area_fails_to_import_says_so(monkeypatch, capsys):
    """Before: a failed import made `dsperse market` vanish ("invalid choice"); now it names the module and why."""
    import importlib

    real = importlib.import_module

    def broken(name, *args, **kwargs):
        if name == "dsperse.sampling.cli":
            raise ImportError("No module named 'web3'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", broken)
    assert main(["market", "economics", "--audit-probability", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "`dsperse market` is unavailable" in err and "dsperse.sampling.cli" in err and "web3" in err


def test_prove_device_and_actors_need_a_cluster(mlp_plan, tmp_path, capsys):
    x = tmp_path / "x.json"
    x.write_text(json.dumps({"input_data": [[0.1, 0.2, 0.3, 0.4]]}))
    for flag, value in (("--device", "gpu"), ("--actors", "2")):
        assert main(["prove", str(mlp_plan.root), "--input", str(x), flag, value]) == 2
        assert f"{flag} {value} sets up the Ray prover actors; pass --cluster too" in capsys.readouterr().err
