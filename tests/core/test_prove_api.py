"""The prove() / prove_batch() API: one input vs a batch, one place where proofs run, and the layering rule that
dsperse.distributed builds on the core's loop (dsperse.proving.runs), never on dsperse.proving.run."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

import dsperse
from dsperse.proving.backends import LocalBackend, ProverBackend
from dsperse.config import resolve as resolve_config

PKG = Path(dsperse.__file__).parent


def test_backend_and_cluster_together_is_an_error_not_ignored(mlp_plan, mlp_input, tmp_path):
    with pytest.raises(dsperse.DsperseError, match="pick one"):
        dsperse.prove(mlp_plan, mlp_input, tmp_path, backend=LocalBackend(), cluster="auto")
    with pytest.raises(dsperse.DsperseError, match="pick one"):  # the same through the config's prover section
        dsperse.prove_batch(mlp_plan, [mlp_input], tmp_path, backend=LocalBackend(), config={"prover": {"cluster": "local"}})
    assert not any(tmp_path.iterdir())  # refused before any work


@pytest.mark.parametrize("batch", ["list", "json"])
def test_prove_with_several_inputs_names_prove_batch(mlp_plan, mlp_input, tmp_path, batch):
    xs = [mlp_input, mlp_input * 0.5]
    if batch == "json":
        (tmp_path / "in.json").write_text('{"input_data": [[1, 2, 3, 4], [4, 3, 2, 1]]}')
        xs = tmp_path / "in.json"
    with pytest.raises(dsperse.DsperseError, match="prove_batch"):
        dsperse.prove(mlp_plan, xs, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_prove_batch_needs_an_input(mlp_plan, tmp_path):
    with pytest.raises(dsperse.DsperseError, match="at least one"):
        dsperse.prove_batch(mlp_plan, [], tmp_path)


def test_signatures_stay_small():
    from dsperse.proving.run import ProveOptions

    doc = inspect.getdoc(dsperse.prove)
    for fn in (dsperse.prove, dsperse.prove_batch):
        params = inspect.signature(fn).parameters
        assert list(params)[-1] == "options" and len(params) == 4, list(params)
        for name in params:  # every parameter is documented (prove_batch: its own, the rest in prove's)
            assert f"``{name}``" in doc + inspect.getdoc(fn), name
    assert len(ProveOptions.__optional_keys__) <= 8
    for name in ProveOptions.__optional_keys__:  # one list of options for both, each documented in prove()
        assert f"``{name}``" in doc, name


def test_unknown_option_is_named(mlp_plan, tmp_path):
    for call in (lambda: dsperse.prove(mlp_plan, [0.0] * 4, tmp_path, clutser="auto"),
                 lambda: dsperse.prove_batch(mlp_plan, [[0.0] * 4], tmp_path, clutser="auto")):  # fmt: skip
        with pytest.raises(TypeError, match=r"unknown keyword option\(s\) \['clutser'\].*'cluster'"):
            call()
    assert not any(tmp_path.iterdir())


def test_config_forms(monkeypatch, tmp_path):
    monkeypatch.setenv("DSPERSE_CACHE", str(tmp_path))
    assert resolve_config(None).paths.cache == tmp_path
    c = resolve_config(dsperse.CircuitConfig(scale=7))
    assert c.circuit.scale == 7 and c.paths.cache == tmp_path  # a bare CircuitConfig is the circuit section
    d = resolve_config({"prover": {"device": "cpu"}, "aggregation": {"memory_gb": 4}})
    assert (d.prover.device, d.aggregation.memory_gb, d.paths.cache) == ("cpu", 4.0, tmp_path)
    full = dsperse.DsperseConfig()
    assert resolve_config(full) is full
    with pytest.raises(dsperse.DsperseError):
        resolve_config(42)


def test_local_backend_is_a_prover_backend():
    assert isinstance(LocalBackend(), ProverBackend)
    b = LocalBackend()
    assert b.window == 1 and b.collect(block=False) == [] and b.collect(block=True) == []


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:  # relative: resolve against the package
                base = path.relative_to(PKG.parent).with_suffix("").parts[: -node.level]
                mod = ".".join(base + ((mod,) if mod else ()))
            names.add(mod)
            names |= {f"{mod}.{a.name}" for a in node.names}
    return names


def test_distributed_does_not_import_the_prove_entry_point():
    """distributed/ uses the loop (dsperse.proving.runs) and backends; the core reaches Ray lazily, never the reverse."""
    files = sorted((PKG / "distributed").glob("*.py"))
    assert files
    for f in files:
        bad = {n for n in _imports(f) if n == "dsperse.proving.run" or n.startswith("dsperse.proving.run.")}
        assert not bad, f"{f.name} imports {bad}"
    core = _imports(PKG / "proving" / "run.py") | _imports(PKG / "proving" / "runs.py") | _imports(PKG / "proving" / "backends.py")
    top = {n for n in core if n == "ray" or n.startswith("ray.")}
    assert not top
    # the only way from the core to Ray: a lazy import inside a function
    tree = ast.parse((PKG / "proving" / "run.py").read_text())
    module_level = {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert not any(m and m.startswith("dsperse.distributed") for m in module_level)


def test_no_dsperse_environment_reads_in_the_ray_pool():
    for name in ("pool.py", "actors.py", "backend.py", "runner.py"):
        text = (PKG / "distributed" / name).read_text()
        assert "DSPERSE_" not in text.replace("$DSPERSE_NODE_CACHE", ""), name
        assert "os.environ.get" not in text and "getenv" not in text, name


def test_np_rows_are_inputs():
    """A 2-D array is one input (the plan reshapes it), a list of arrays a batch."""
    from dsperse.proving.run import load_inputs

    assert len(load_inputs(np.zeros((1, 4), np.float32))) == 1
    assert len(load_inputs([np.zeros(4), np.ones(4)])) == 2
