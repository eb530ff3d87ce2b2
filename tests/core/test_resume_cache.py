"""A killed run resumes without re-proving finished slices; a second compile performs no setup."""
from __future__ import annotations

import pytest

import dsperse
from dsperse.proving.backends import LocalBackend

pytestmark = pytest.mark.slow


class CountingBackend(LocalBackend):
    def __init__(self):
        super().__init__()
        self.proved: list[int] = []

    def submit(self, task):
        self.proved.append(task.slice_index)
        return super().submit(task)


class Interrupted(Exception):
    pass


def test_interrupted_run_resumes_without_reproving(mlp_plan, mlp_circuits, mlp_input, tmp_path):
    def die_after_first(proof):
        raise Interrupted(f"killed after slice {proof.slice_index}")

    with pytest.raises(Interrupted):
        dsperse.prove(mlp_plan, mlp_input, tmp_path, circuits=mlp_circuits, on_slice_proven=die_after_first, progress=False)
    first = tmp_path / "proof_0.json"
    assert first.exists() and not (tmp_path / "proof_1.json").exists() and not (tmp_path / "run.json").exists()
    stamp = first.stat().st_mtime_ns

    backend = CountingBackend()
    run = dsperse.prove(mlp_plan, mlp_input, tmp_path, circuits=mlp_circuits, backend=backend, progress=False)
    assert backend.proved == [1, 2]  # slice 0 was not proven again
    assert first.stat().st_mtime_ns == stamp
    assert dsperse.verify(run)

    again = CountingBackend()
    dsperse.prove(mlp_plan, mlp_input, tmp_path, circuits=mlp_circuits, backend=again, progress=False)
    assert again.proved == []


def test_workdir_of_another_input_is_refused(mlp_plan, mlp_circuits, mlp_input, tmp_path):
    def stop(proof):
        raise Interrupted()

    with pytest.raises(Interrupted):
        dsperse.prove(mlp_plan, mlp_input, tmp_path, circuits=mlp_circuits, on_slice_proven=stop, progress=False)
    with pytest.raises(dsperse.DsperseError, match="another model, input or job"):
        dsperse.prove(mlp_plan, mlp_input + 1, tmp_path, circuits=mlp_circuits, progress=False)


def test_second_compile_performs_no_setup(mlp_plan, mlp_input, mlp_circuits, tmp_path):
    srs = mlp_circuits[0].srs  # share the session's SRS; keys go to a fresh cache
    first = dsperse.compile(mlp_plan, cache=tmp_path, srs=srs, calibration_input=mlp_input)
    assert [c.reused for c in first] == [False, False, False]
    second = dsperse.compile(mlp_plan, cache=tmp_path, srs=srs, calibration_input=mlp_input)
    assert [c.reused for c in second] == [True, True, True]
    assert [c.key_id for c in first] == [c.key_id for c in second]
    assert all(a.pk.stat().st_mtime_ns == b.pk.stat().st_mtime_ns for a, b in zip(first, second))
