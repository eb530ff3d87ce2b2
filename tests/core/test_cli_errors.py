"""The CLI's error contract: bad input ends in ONE `error: ...` line naming the problem, exit 2 (the request cannot
be done) or 1 (the environment failed it: node down, tool missing; or a bug), and never a traceback."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dsperse.cli import main
from dsperse.errors import ChainUnavailableError, DsperseError

KEY = "deadbeef" * 7 + "0bad"  # not a usable key: 60 hex digits


def _dsperse(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsperse.cli", *args], capture_output=True, text=True, timeout=300)


def _one_error_line(err: str, *names: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for name in names:
        assert name in lines[0], (name, err)
    return lines[0]


def _main(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().err


# -- as a user runs it -----------------------------------------------------------------------------------------


def test_issue_repro_market_economics_with_a_bad_share_in_a_real_process():
    r = _dsperse("market", "economics", "--r", "2")
    assert r.returncode == 2
    _one_error_line(r.stderr, "dsperse market economics")
    r = _dsperse("market", "economics", "--fee", "1", "--slash", "10", "--cheat-gain", "0.5", "--collusion", "2")
    assert r.returncode == 2 and r.stdout == ""
    _one_error_line(r.stderr, "--collusion", "[0, 1]", "'2'")


def test_missing_input_file_in_a_real_process(tmp_path):
    r = _dsperse("verify", str(tmp_path), "--input", str(tmp_path / "nope.json"))
    assert r.returncode == 2
    _one_error_line(r.stderr, "missing input file", "nope.json")


# -- in-process --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["market", "economics", "--fee", "1", "--slash", "1", "--cheat-gain", "1", "--audit-probability", "1.5"],
         ["--audit-probability", "[0, 1]"]),
        (["market", "economics", "--fee", "nan", "--slash", "1", "--cheat-gain", "1"], ["--fee", "finite"]),
        (["market", "economics", "--fee", "-1", "--slash", "1", "--cheat-gain", "1"], ["--fee", ">= 0"]),
        (["market", "simulate", "--fee", "1", "--slash", "1", "--cheat-gain", "1", "--operators", "-3"], ["--operators", ">= 1"]),
        (["market", "stake", "-1"], ["amount", "non-negative"]),
        (["market", "draw", "0x12", "--rpc", "http://127.0.0.1:1"], ["JOB_ID", "64 hex digits"]),
        (["market", "show", "--rpc", "http://127.0.0.1:1", "--market", "0x1234"], ["--market", "40 hex digits"]),
        (["receipt", "job-1", "--rpc", "notaurl"], ["--rpc", "http"]),
        (["receipt", "job-1", "--rpc", "http://127.0.0.1:1", "--registry", "0xzz"], ["--registry", "address"]),
        (["receipt", "job-1", "--rpc", "http://127.0.0.1:1", "--private-key", KEY], ["--private-key", "64 hex digits"]),
        (["ledger", "--last", "-5"], ["--last", ">= 0"]),
        (["verify", "runs/x", "--atol", "-1"], ["--atol", ">= 0"]),
        (["slice", "m.onnx", "--cuts", "a,b"], ["--cuts", "integer"]),
        (["slice", "m.onnx", "--input-shape", "1,-3"], ["--input-shape", ">= 1"]),
        (["slice", "m.onnx", "--max-slices", "0"], ["--max-slices", ">= 1"]),
        (["aggregate-plan", "3", "--aggregation-memory-gb", "-1"], ["--aggregation-memory-gb"]),
        (["no-such-command"], ["invalid choice"]),
    ],
)
def test_bad_flag_values_are_refused_by_argparse_naming_the_flag(capsys, argv, names):
    code, err = _main(capsys, *argv)
    assert code == 2
    line = _one_error_line(err, *names)
    assert KEY not in line  # a key is never echoed


def test_bad_data_and_files_are_one_line_errors_with_exit_2(capsys, tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    no_key = tmp_path / "no_key.json"
    no_key.write_text(json.dumps({"rows": [[1, 2]]}))
    plan = tmp_path / "plan.json"
    plan.write_text('{"slices": 3}')
    not_onnx = tmp_path / "m.onnx"
    not_onnx.write_bytes(b"\x08\x07garbage")
    cases = [
        (["slice", str(tmp_path / "missing.onnx")], ["missing ONNX model"]),
        (["slice", str(not_onnx)], ["not a valid ONNX model"]),
        (["verify", str(tmp_path), "--input", str(bad_json)], ["bad.json", "not JSON"]),
        (["verify", str(tmp_path), "--input", str(no_key)], ["no_key.json", "input_data"]),
        (["verify", str(tmp_path)], ["missing run record"]),
        (["aggregate-plan", str(plan)], ["plan.json", "not a usable slice plan"]),
        (["aggregate-plan", str(bad_json)], ["bad.json", "not a usable slice plan"]),
        (["prove", str(tmp_path), "--input", str(bad_json)], ["bad.json"]),
    ]
    for argv, names in cases:
        code, err = _main(capsys, *argv)
        assert code == 2, (argv, err)
        _one_error_line(err, *names)


def test_an_unreachable_node_is_exit_1(capsys):
    code, err = _main(capsys, "receipt", "job-1", "--rpc", "http://127.0.0.1:1")
    assert code == 1
    _one_error_line(err, "unreachable", "127.0.0.1:1")


def test_exit_codes_follow_the_error_family_and_bugs_are_one_line_too(capsys, monkeypatch):
    import dsperse.cli as cli

    def failing(exc):
        def fn(a):
            raise exc

        return fn

    real = cli.build_parser

    def parser_with(fn):
        def build():
            p = real()
            p.set_defaults(fn=fn)
            sub = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction")
            sub.choices["ledger"].set_defaults(fn=fn)
            return p

        return build

    for exc, code, says in [(DsperseError("a refused request"), 2, "a refused request"),
                            (ChainUnavailableError("node down"), 1, "node down"),
                            (DsperseError(), 2, "DsperseError"),
                            (PermissionError(13, "Permission denied", "/x"), 1, "Permission denied"),
                            (RuntimeError("boom"), 1, "internal error, RuntimeError: boom")]:  # fmt: skip
        monkeypatch.setattr(cli, "build_parser", parser_with(failing(exc)))
        got, err = _main(capsys, "ledger")
        assert got == code, (exc, err)
        _one_error_line(err, says)
    got, err = _main(capsys, "-v", "ledger")  # -v: a bug's traceback, for the report
    assert got == 1 and "Traceback" in err and "RuntimeError: boom" in err


def test_help_still_exits_0(capsys):
    with pytest.raises(SystemExit) as e:
        main(["market", "economics", "--help"])
    assert e.value.code == 0 and "--collusion" in capsys.readouterr().out
