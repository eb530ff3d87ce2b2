"""Fuzz what users hand over: every case ends in success or a DsperseError with a message, never another exception.

Four doors: ONNX bytes (the model loader and ``dsperse.slice``), input data (``load_inputs`` and the input-shape
check), plan and run records (``SlicePlan.load``, ``Run.load``, ``dsperse.verify``), and CLI arguments
(``dsperse.cli.main`` in-process: exit codes 0/1/2, no traceback). Hypothesis runs derandomized, so CI sees the
same cases every time; nothing here proves (the run-record property mutates a run the session already proved).
"""
from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsperse
from dsperse.artifacts import Run, SlicePlan
from dsperse.errors import DsperseError
from dsperse.proving.run import load_inputs
from dsperse.slicing.model import coerce_input, load_model

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
_n = itertools.count()


def _fresh(base: Path, suffix: str = "") -> Path:
    """A new path under ``base`` per example (hypothesis reuses one fixture value for all of them)."""
    return base / f"case-{next(_n)}{suffix}"


def _dsperse_error_or_success(fn, *args, **kwargs):
    """Call fn; a DsperseError must carry a message; any other exception fails the property."""
    try:
        return fn(*args, **kwargs)
    except DsperseError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        return exc


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def mlp_bytes(zoo_model) -> bytes:
    return zoo_model("mlp").read_bytes()


# -- ONNX bytes ---------------------------------------------------------------------------------------------


def _load_and_slice(path: Path, out: Path) -> None:
    if not isinstance(_dsperse_error_or_success(load_model, path), DsperseError):
        _dsperse_error_or_success(dsperse.slice, path, out, max_slices=2)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_are_not_a_model(work, data):
    path = _fresh(work, ".onnx")
    path.write_bytes(data)
    _load_and_slice(path, _fresh(work))


@settings(FUZZ, max_examples=80)
@given(data=st.data())
def test_truncated_or_mutated_model_bytes(work, mlp_bytes, data):
    raw = bytearray(mlp_bytes)
    how = data.draw(st.sampled_from(["truncate", "flip", "splice"]))
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
    else:
        i = data.draw(st.integers(0, len(raw)))
        raw[i:i] = data.draw(st.binary(min_size=1, max_size=64))
    path = _fresh(work, ".onnx")
    path.write_bytes(bytes(raw))
    _load_and_slice(path, _fresh(work))


# -- input data ---------------------------------------------------------------------------------------------

_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
            | st.text(max_size=8))  # fmt: skip
_json = st.recursive(_scalars, lambda kids: st.lists(kids, max_size=6) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                     max_leaves=30)  # fmt: skip
_rows = st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=6)
_inputs = (_json | st.fixed_dictionaries({"input_data": _json}) | st.fixed_dictionaries({"input_data": st.lists(_rows, max_size=3)})
           | st.lists(_rows, max_size=3))  # fmt: skip


@FUZZ
@given(value=_inputs)
def test_input_json_is_loaded_and_checked_or_refused(work, mlp_plan, value):
    path = _fresh(work, ".json")
    path.write_text(json.dumps(value, allow_nan=True))
    for source in (path, value):
        rows = _dsperse_error_or_success(load_inputs, source)
        if isinstance(rows, DsperseError):
            continue
        assert isinstance(rows, list)
        for row in rows:
            x = _dsperse_error_or_success(coerce_input, mlp_plan.input_shape, row)
            if not isinstance(x, DsperseError):
                assert x.shape == tuple(mlp_plan.input_shape) and np.all(np.isfinite(x))


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_input_file_that_is_not_json(work, text):
    path = _fresh(work, ".json")
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    _dsperse_error_or_success(load_inputs, path)


# -- plan and run records -----------------------------------------------------------------------------------

_garbage = st.none() | st.integers(-5, 10**12) | st.floats(allow_nan=True) | st.text(max_size=10) | st.just([]) | st.just({}) | st.lists(st.integers(), max_size=3)


def _paths(obj, prefix=()):
    """Every (path, value) inside a JSON value, containers included."""
    yield prefix, obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield from _paths(v, (*prefix, k))


def _mutate(doc, data) -> bytes:
    """Delete a key, replace a value with garbage, or replace the whole file with bytes."""
    how = data.draw(st.sampled_from(["delete", "replace", "replace", "bytes"]))
    if how == "bytes":
        return data.draw(st.binary(max_size=200))
    doc = json.loads(json.dumps(doc))
    spots = [p for p, _ in _paths(doc) if p]
    path = data.draw(st.sampled_from(spots))
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if how == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(_garbage)
    return json.dumps(doc, allow_nan=True).encode()


@FUZZ
@given(data=st.data())
def test_mutated_plan_json(work, mlp_plan, data):
    root = _fresh(work)
    shutil.copytree(mlp_plan.root, root)
    (root / SlicePlan.FILE).write_bytes(_mutate(json.loads((mlp_plan.root / SlicePlan.FILE).read_text()), data))
    plan = _dsperse_error_or_success(SlicePlan.load, root)
    if not isinstance(plan, DsperseError):
        _dsperse_error_or_success(plan.describe)


@pytest.mark.slow
@settings(FUZZ, max_examples=25)
@given(data=st.data())
def test_mutated_run_json_fails_verification_cleanly(work, mlp_run, data):
    """A mutated run record is refused (DsperseError) or fails verification (False); it never crashes verify."""
    root = _fresh(work)
    shutil.copytree(mlp_run.workdir, root)
    (root / Run.FILE).write_bytes(_mutate(json.loads((mlp_run.workdir / Run.FILE).read_text()), data))
    run = _dsperse_error_or_success(Run.load, root)
    if not isinstance(run, DsperseError):
        _dsperse_error_or_success(dsperse.verify, run, ledger=False)


# -- CLI arguments ------------------------------------------------------------------------------------------

_VALUES = ["0", "1", "-1", "2", "0.5", "1.5", "-0.1", "nan", "inf", "1e999", "abc", "", "0x", "0x" + "1" * 40,
           "0x" + "ab" * 32, "zz" * 32, "1,2", "a,b", "1,-3", "1x4", "http://127.0.0.1:1", "notaurl", "/nonexistent/x",
           "README.md", "--", "-", "ümlaut"]  # fmt: skip
_POSITIONALS = {
    ("slice",): ["/nonexistent/m.onnx", "README.md", "BAD"],
    ("compile",): ["/nonexistent/plan", "BAD"],
    ("prove",): ["/nonexistent/plan", "BAD"],
    ("verify",): ["/nonexistent/run", "BAD", "EMPTY"],
    ("aggregate-plan",): ["0", "1", "3", "-2", "BAD", "PLAN", "x"],
    ("ledger",): [],
    ("market", "economics"): [],
    ("market", "stake"): ["1ether", "-1", "abc"],
    ("market", "draw"): ["0x" + "ab" * 32, "0x12"],
    ("market", "show"): ["0x" + "ab" * 32],
    ("receipt",): ["job-1", ""],
    ("submit",): ["/nonexistent/run", "BAD"],
    ("cluster", "validate"): ["/nonexistent.yaml", "README.md"],
}
"""Cheap commands: each fails fast on these positionals (no plan+input pair that would prove, no reachable node)."""
_EXPENSIVE_FLAGS = ("--cluster", "--out", "-o", "--workdir", "-w", "--actors", "--deployments", "--dir", "--ledger", "--cache")
"""Flags left out: they start Ray, or write files outside the test's temp dir."""


def _flags(cmd: tuple[str, ...]) -> list[str]:
    """The real option strings of a subcommand, read from the parser (so renamed flags are fuzzed too)."""
    import argparse

    from dsperse.cli import build_parser

    parser = build_parser()
    for name in cmd:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return sorted(o for a in parser._actions for o in a.option_strings
                  if o.startswith("--") and o not in _EXPENSIVE_FLAGS and o not in ("--help", "--version"))  # fmt: skip


_COMMANDS = {cmd: (pos, _flags(cmd)) for cmd, pos in _POSITIONALS.items()}


@pytest.fixture(scope="module")
def cli_files(work, mlp_plan):
    bad = work / "bad.json"
    bad.write_text("{not json")
    empty = work / "empty-dir"
    empty.mkdir()
    return {"BAD": str(bad), "EMPTY": str(empty), "PLAN": str(mlp_plan.root)}


@st.composite
def _argv(draw, files):
    cmd = draw(st.sampled_from(sorted(_COMMANDS)))
    positionals, flags = _COMMANDS[cmd]
    argv = list(cmd)
    if positionals and draw(st.booleans() | st.just(True)):
        argv.append(files.get(p := draw(st.sampled_from(positionals)), p))
    for _ in range(draw(st.integers(0, 4))):
        token = draw(st.sampled_from(flags + ["--help", "--bogus"]) if flags else st.sampled_from(["--help", "--bogus"]))
        argv.append(token)
        if draw(st.integers(0, 4)):
            v = draw(st.sampled_from(_VALUES) | st.text(max_size=6))
            argv.append(files.get(v, v))
    return argv


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_cli_arguments_never_print_a_traceback(monkeypatch, capsys, cli_files, data):
    from dsperse.cli import main

    for var in ("DSPERSE_RPC", "DSPERSE_MARKET", "DSPERSE_PRIVATE_KEY", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    argv = data.draw(_argv(cli_files))
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # --help and --version
        code = exc.code
    err = capsys.readouterr().err
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    if code:
        assert "error:" in err, (argv, err)

