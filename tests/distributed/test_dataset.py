"""dsperse.prove_dataset on a real 2-CPU local Ray cluster: 6 rows from a Parquet file -> 6 verified runs, read back
with plain pyarrow (native fixed-shape tensors); a rerun proves nothing; a bad row fails before any proving."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dsperse
from dsperse.errors import InputShapeError
from dsperse.tools.ledger import Ledger

pytestmark = pytest.mark.slow

ROWS = 6


@pytest.fixture(scope="module")
def xs() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((ROWS, 1, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def proven(ray_cpu, mlp_plan, mlp_circuits, xs, tmp_path_factory):
    """One prove_dataset call over a Parquet file written with plain pyarrow (native tensor column, job ids)."""
    root = tmp_path_factory.mktemp("dataset")
    src = root / "inputs.parquet"
    pq.write_table(pa.table({"input": pa.FixedShapeTensorArray.from_numpy_ndarray(xs),
                             "job": [f"job-{i}" for i in range(ROWS)]}), src)  # fmt: skip
    t0 = time.perf_counter()
    result = dsperse.prove_dataset(mlp_plan, src, root / "proven.parquet", workdir=root / "runs", job_id_column="job",
                                   circuits=mlp_circuits, cluster="auto", batch_size=4,  # 4: two batches, two parts
                                   config={"paths": {"ledger": str(root / "ledger")}})  # fmt: skip
    return result, time.perf_counter() - t0


def test_six_rows_proven_verified_and_read_back_with_pyarrow(proven, mlp_plan, xs):
    result, seconds = proven
    assert (result.rows, result.proven, result.resumed, result.verified) == (ROWS, ROWS, 0, ROWS)
    print(f"\n6 rows proven in {seconds:.1f}s ({result.rows_per_minute:.2f} rows/min)")

    table = pq.read_table(result.out)  # plain pyarrow: no Ray, no dsperse
    assert table.num_rows == ROWS and len(list(result.out.glob("*.parquet"))) == 2
    for name, shape in (("input", mlp_plan.input_shape), ("output", mlp_plan.output_shape)):
        typ = table.schema.field(name).type
        assert isinstance(typ, pa.FixedShapeTensorType) and typ.extension_name == "arrow.fixed_shape_tensor", typ
        assert tuple(typ.shape) == tuple(shape)
        assert table.column(name).combine_chunks().to_numpy_ndarray().shape == (ROWS, *shape)
    assert table.column("row_id").to_pylist() == list(range(ROWS))
    np.testing.assert_array_equal(table.column("input").combine_chunks().to_numpy_ndarray(), xs)
    assert all(table.column("verified").to_pylist()) and not any(table.column("resumed").to_pylist())
    outputs = table.column("output").combine_chunks().to_numpy_ndarray()

    for i, row in enumerate(table.to_pylist()):
        run = dsperse.Run.load(row["run_dir"])
        r = run.receipt
        assert Path(row["run_dir"]) == result.workdir / str(i)
        assert row["job_id"] == r.job_id == f"job-{i}"
        assert (row["model_id"], row["input_hash"], row["output_scale"]) == (r.model_id, r.input_hash, r.output_scale)
        assert row["proof_sha256"] == list(r.proof_hashes) and len(r.proof_hashes) == 3
        np.testing.assert_array_equal(outputs[i].flatten(), np.asarray(r.output, np.float32))
        assert row["seconds"] == pytest.approx(sum(p.seconds for p in run.proofs))
        assert dsperse.verify(run, job_id=f"job-{i}", expected_input=xs[i])
    assert len({tuple(o.flatten()) for o in outputs}) == ROWS  # six different inputs, six different outputs

    led = Ledger(result.out.parent / "ledger")
    proves = led.read(event="prove").to_pylist()
    assert sorted((r["job_id"], r["slice_index"]) for r in proves) == [(f"job-{i}", s) for i in range(ROWS) for s in range(3)]
    assert sorted(r["job_id"] for r in led.read(event="verify").to_pylist()) == [f"job-{i}" for i in range(ROWS)]

    frame = table.to_pandas()  # pandas too: each tensor cell becomes a flat ndarray (reshape by the type's shape)
    np.testing.assert_array_equal(frame["output"].iloc[0].reshape(mlp_plan.output_shape), outputs[0])


def test_rerun_proves_nothing_and_touches_no_run_file(proven, ray_cpu, mlp_plan, mlp_circuits, xs):
    result, _ = proven
    files = {p: p.stat().st_mtime_ns for p in result.workdir.glob("[0-9]*/*")}
    assert len(files) >= ROWS * 7  # input, manifest, run, 3 witnesses, 3 proofs per row
    before = pq.read_table(result.out)
    import ray

    ds = ray.data.from_items([{"input": x, "job": f"job-{i}"} for i, x in enumerate(xs)])  # Ray's own tensor type
    t0 = time.perf_counter()
    again = dsperse.prove_dataset(mlp_plan, ds, result.out, workdir=result.workdir, job_id_column="job",
                                  circuits=mlp_circuits, cluster="auto", batch_size=4,
                                  config={"paths": {"ledger_enabled": False}})  # fmt: skip
    seconds = time.perf_counter() - t0
    assert (again.rows, again.proven, again.resumed, again.verified) == (ROWS, 0, ROWS, ROWS)
    assert {p: p.stat().st_mtime_ns for p in result.workdir.glob("[0-9]*/*")} == files
    assert seconds < 60, f"a full resume took {seconds:.1f}s (one slice proof takes ~15 s: something was proven)"
    after = pq.read_table(result.out)
    assert all(after.column("resumed").to_pylist())
    for name in ("job_id", "output", "proof_sha256", "input_hash", "verified"):
        assert after.column(name).to_pylist() == before.column(name).to_pylist(), name
    assert not list(result.out.parent.glob(f".{result.out.name}.*")), "temp or old output dirs left behind"


def test_wrong_shape_row_fails_naming_it_before_any_proving(ray_cpu, mlp_plan, mlp_circuits, tmp_path):
    rows = [[[0.1, 0.2, 0.3, 0.4]]] * 3 + [[[0.1, 0.2, 0.3, 0.4, 0.5]]] + [[[0.0, 0.0, 0.0, 0.0]]]
    src = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"input": rows}), src)  # nested lists: list<list<double>>
    with pytest.raises(InputShapeError, match=r"5 values in row 3"):
        dsperse.prove_dataset(mlp_plan, src, tmp_path / "out.parquet", workdir=tmp_path / "runs",
                              circuits=mlp_circuits, cluster="auto")  # fmt: skip
    assert not (tmp_path / "out.parquet").exists()
    assert not list((tmp_path / "runs").glob("[0-9]*"))


def test_duplicate_job_id_fails_before_any_proving(ray_cpu, mlp_plan, mlp_circuits, tmp_path):
    src = tmp_path / "dup.parquet"
    pq.write_table(pa.table({"input": [[0.1, 0.2, 0.3, 0.4]] * 3, "job": ["a", "b", "a"]}), src)  # flat lists
    with pytest.raises(dsperse.DsperseError, match=r"rows 0 and 2 share the job id 'a'"):
        dsperse.prove_dataset(mlp_plan, src, tmp_path / "out.parquet", workdir=tmp_path / "runs", job_id_column="job",
                              circuits=mlp_circuits, cluster="auto")  # fmt: skip
    assert not (tmp_path / "out.parquet").exists() and not list((tmp_path / "runs").glob("[0-9]*"))
