"""The proof ledger: one Parquet file per batch, readable without dsperse, fed by prove/verify/submit."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from dsperse.tools import ledger as L
from dsperse.cli import main
from dsperse.errors import DsperseError

MODEL = "ab" * 32


def _rows(n: int = 3, **kw) -> list[L.LedgerRow]:
    base = dict(job_id="job-a", model_id=MODEL, slice_count=n, logrows=15, rows=1000, prover="host:1")
    base.update(kw)
    return [L.LedgerRow("prove", slice_index=i, seconds=1.0 + i, proof_sha256=f"{i:064x}", **base) for i in range(n)]


def test_each_batch_is_one_new_file_and_old_files_are_never_rewritten(tmp_path):
    led = L.Ledger(tmp_path / "ledger")
    first = led.append(_rows())
    before = first.read_bytes()
    second = led.append(_rows(2, job_id="job-b"))
    assert first != second and led.files() == [first, second]
    assert first.read_bytes() == before
    assert not [p for p in led.path.iterdir() if p.name.startswith(".")]  # no temp file left behind
    assert led.append([]) is None and len(led.files()) == 2
    assert pq.read_schema(first).metadata[b"dsperse.tools.ledger.schema"] == L.SCHEMA_VERSION.encode()


def test_the_row_dataclass_and_the_schema_name_the_same_columns():
    from dataclasses import fields

    assert {f.name for f in fields(L.LedgerRow)} == set(L.SCHEMA.names)
    for col in ("job_id", "model_id", "slice_index", "logrows", "rows", "seconds", "peak_rss_bytes", "prover",
                "proof_sha256", "verified", "error", "tx_hash", "gas", "block", "timestamp", "event"):  # fmt: skip
        assert col in L.SCHEMA.names


def test_plain_pyarrow_pandas_and_duckdb_read_the_directory(tmp_path):
    led = L.Ledger(tmp_path)
    led.append(_rows())
    led.append([L.LedgerRow("submit", job_id="job-a", model_id=MODEL, gas=250_000, tx_hash="0x" + "ee" * 32, block=9)])
    table = ds.dataset(tmp_path, format="parquet").to_table()
    assert table.num_rows == 4 and set(table["event"].to_pylist()) == {"prove", "submit"}
    pd = pytest.importorskip("pandas")
    df = pd.read_parquet(tmp_path)
    assert len(df) == 4 and df.loc[df.event == "submit", "gas"].iloc[0] == 250_000
    duckdb = pytest.importorskip("duckdb")
    got = duckdb.sql(f"select event, count(*) from read_parquet('{tmp_path}/*.parquet', union_by_name=true) "
                     "group by event order by event").fetchall()  # fmt: skip
    assert got == [("prove", 3), ("submit", 1)]


def test_read_filters_by_event_model_prefix_job_and_keeps_the_last_n(tmp_path):
    led = L.Ledger(tmp_path)
    led.append(_rows(3, job_id="job-a"))
    led.append(_rows(2, job_id="job-b", model_id="cd" * 32))
    led.append([L.LedgerRow("verify", job_id="job-a", model_id=MODEL, verified=True, seconds=0.1)])
    assert led.read().num_rows == 6
    assert led.read(event="verify").num_rows == 1
    assert led.read(model_id="0xABAB").num_rows == 4  # a prefix, any case, 0x or not
    assert led.read(job_id="job-b")["slice_index"].to_pylist() == [0, 1]
    last = led.read(last=2)
    assert last["event"].to_pylist() == ["prove", "verify"] and last["timestamp"].to_pylist() == sorted(last["timestamp"].to_pylist())


def test_summary_per_model(tmp_path):
    led = L.Ledger(tmp_path)
    led.append(_rows(3, job_id="job-a"))
    led.append(_rows(3, job_id="job-b"))
    led.append([L.LedgerRow("verify", job_id="job-a", model_id=MODEL, verified=True),
                L.LedgerRow("verify", job_id="job-b", model_id=MODEL, verified=False, error="LinkError: x"),
                L.LedgerRow("submit", job_id="job-a", model_id=MODEL, gas=100),
                L.LedgerRow("submit", job_id="job-b", model_id=MODEL, gas=300)])  # fmt: skip
    (s,) = led.summary().to_pylist()
    assert s == {"model_id": MODEL, "jobs": 2, "proofs": 6, "prove_mean_s": 2.0, "prove_max_s": 3.0, "verified": 1,
                 "verify_failed": 1, "aggregations": 0, "submissions": 2, "gas_total": 400, "gas_mean": 200.0}  # fmt: skip


def test_a_corrupt_file_is_a_dsperse_error_naming_it(tmp_path):
    led = L.Ledger(tmp_path)
    led.append(_rows())
    good = led.append(_rows())
    bad = tmp_path / "20990101T000000000000Z-broken.parquet"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])  # a torn copy: no footer
    with pytest.raises(DsperseError) as e:
        led.read()
    assert isinstance(e.value, L.LedgerError) and e.value.path == bad and bad.name in str(e.value)
    assert "every other file is intact" in str(e.value)


def test_unknown_columns_or_events_are_refused(tmp_path):
    with pytest.raises(L.LedgerError, match="unknown ledger columns"):
        L.Ledger(tmp_path).append([{"event": "prove", "gass": 1}])
    with pytest.raises(L.LedgerError, match="unknown ledger event"):
        L.Ledger(tmp_path).append([{"event": "mint"}])


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_write_failure_is_a_warning_never_an_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    seen, logger = _Collect(), logging.getLogger("dsperse.tools.ledger")
    logger.addHandler(seen)
    try:
        assert L.record(_rows(), blocker) is None
    finally:
        logger.removeHandler(seen)
    assert any("could not write 3 prove row(s)" in m for m in seen.messages)
    with pytest.raises(L.LedgerError):
        L.Ledger(blocker).append(_rows())  # the direct call does say it


def test_resolve_default_path_and_off(tmp_path, monkeypatch):
    monkeypatch.setenv("DSPERSE_LEDGER", str(tmp_path / "env"))
    assert L.resolve(None).path == tmp_path / "env" == L.Ledger().path
    assert L.resolve(False) is None
    assert L.resolve(tmp_path / "x").path == tmp_path / "x"
    led = L.Ledger(tmp_path / "y")
    assert L.resolve(led) is led
    with pytest.raises(TypeError, match="ledger= takes"):
        L.resolve(3)
    monkeypatch.delenv("DSPERSE_LEDGER")
    monkeypatch.setenv("DSPERSE_CACHE", str(tmp_path / "cache"))
    assert L.default_path() == tmp_path / "cache" / "ledger"


def test_concurrent_appends_from_two_processes(tmp_path):
    """Two writers started together: two files, every row readable, nothing torn."""
    gate = tmp_path / "gate"
    gate.mkdir()
    code = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from dsperse.tools import ledger as L
        rows = [L.LedgerRow("prove", job_id=sys.argv[1], slice_index=i, seconds=float(i), detail="x" * 2000)
                for i in range(500)]
        gate = Path(sys.argv[3])
        (gate / sys.argv[1]).touch()
        while len(list(gate.iterdir())) < 2:  # both imported and ready: write at the same moment
            time.sleep(0.001)
        print(L.Ledger(sys.argv[2]).append(rows))
    """)
    led = L.Ledger(tmp_path / "ledger")
    procs = [subprocess.Popen([sys.executable, "-c", code, f"job-{n}", str(led.path), str(gate)], stdout=subprocess.PIPE,
                              text=True) for n in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(str(f) for f in led.files()) == sorted(outs) and len(set(outs)) == 2
    table = led.read()
    assert table.num_rows == 1000
    assert sorted(set(table["job_id"].to_pylist())) == ["job-0", "job-1"]


def test_record_submission_takes_a_submit_result(tmp_path):
    from dsperse.chain.client import SubmitResult

    res = SubmitResult(job_id="0x" + "01" * 32, tx_hash="0x" + "aa" * 32, block=42, gas_used=1_234_567,
                       registry="0x" + "cc" * 20, chain_id=31337, receipt_id="0x" + "dd" * 32, parts=2)  # fmt: skip
    path = L.record_submission(res, ledger=tmp_path)
    (row,) = pq.read_table(path).to_pylist()
    assert row["event"] == "submit" and row["tx_hash"] == res.tx_hash and row["gas"] == 1_234_567
    assert row["block"] == 42 and row["chain_id"] == 31337 and row["job_id"] == res.job_id
    assert json.loads(row["detail"])["parts"] == 2 and json.loads(row["detail"])["receipt_id"] == res.receipt_id
    # a landed transaction's row can never fail it: a bad run or ledger is a warning
    assert L.record_submission(res, run=tmp_path / "no-such-run", ledger=tmp_path) is None
    assert L.record_submission(res, ledger=False) is None


def test_an_aggregation_writes_one_row_per_step(tmp_path, monkeypatch):
    """prove(aggregate=True)'s last stage records every step of the tree (the real one needs ~20 GB: faked here)."""
    from types import SimpleNamespace

    from dsperse import aggregation
    from dsperse.artifacts import AggregateProof, AggregationKeys, AggregationStep
    from dsperse.proving import run as pipeline

    def step(lvl, i, n, tr):
        keys = AggregationKeys(f"key{lvl}", tmp_path / "vk", tmp_path / "pk", tmp_path / "srs", 21, lvl == 0, n, 16,
                               seconds=300.0, reused=lvl == 1)  # fmt: skip
        proof = AggregateProof(tmp_path / f"aggr_l{lvl}_{i}.json", f"{lvl}{i}" * 32, keys.key_id, 21, tr, n, 16, 100.0 + i)
        return AggregationStep(proof, keys, lvl, i)

    steps = [[step(0, 0, 2, "poseidon"), step(0, 1, 2, "poseidon")], [step(1, 0, 2, "evm")]]
    monkeypatch.setattr(aggregation, "aggregate_proofs",
                        lambda *a, **k: aggregation.AggregationResult(plan=None, root=steps[-1][0], steps=steps))  # fmt: skip
    run = SimpleNamespace(receipt=SimpleNamespace(job_id="agg-1", model_id=MODEL), plan=SimpleNamespace(slices=[0] * 4),
                          workdir=tmp_path, proofs=[], aggregate=None, save=lambda: None)  # fmt: skip
    agg_plan = SimpleNamespace(tree=[[[0, 1], [2, 3]], [[0, 1]]], describe=lambda: "2 levels")
    pipeline._aggregate_run(run, agg_plan, tmp_path / "srs", None, on_ray=True, ledger=tmp_path / "led")
    assert run.aggregate.root == steps[-1][0] and run.aggregate.levels == (((0, 1), (2, 3)), ((0, 1),))
    rows = L.Ledger(tmp_path / "led").read(event="aggregate").to_pylist()
    assert [r["proof_sha256"][:2] for r in rows] == ["00", "01", "10"] and {r["job_id"] for r in rows} == {"agg-1"}
    assert rows[0]["detail"] == "level 0 step 0: 2 proofs, poseidon transcript, setup 300s"
    assert rows[2]["detail"].endswith("evm transcript, cached keys") and rows[2]["slice_count"] == 4
    assert rows[0]["peak_rss_bytes"] is None and rows[0]["prover"] is None  # ran on Ray: unknown here


def test_cli_ledger_table_summary_and_formats(tmp_path, capsys):
    led = L.Ledger(tmp_path / "led")
    led.append(_rows())
    led.append([L.LedgerRow("submit", job_id="job-a", model_id=MODEL, gas=777_000, tx_hash="0x" + "ee" * 32, block=3)])
    assert main(["ledger", "--ledger", str(led.path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["timestamp", "event", "job_id"] and "abababababab.." in out
    assert len(out.splitlines()) == 1 + 4 and "777000" in out
    assert main(["ledger", "--ledger", str(led.path), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "prove_mean_s" in out and "2.000" in out and "777000" in out
    assert main(["ledger", "--ledger", str(led.path), "--event", "prove", "--last", "2", "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [r["slice_index"] for r in got] == [1, 2] and got[0]["model_id"] == MODEL
    assert main(["ledger", "--ledger", str(led.path), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith('"event","timestamp","job_id"')
    out_file = tmp_path / "all.parquet"
    assert main(["ledger", "--ledger", str(led.path), "--format", "parquet", "-o", str(out_file)]) == 0
    assert pq.read_table(out_file).num_rows == 4
    assert main(["ledger", "--ledger", str(led.path), "--format", "parquet"]) == 2  # parquet needs -o
    assert "-o FILE" in capsys.readouterr().err


@pytest.mark.slow
def test_prove_verify_submit_land_in_the_ledger(mlp_plan, mlp_circuits, mlp_input, tmp_path):
    """The session's 3-slice MLP proven into a temp ledger, read back with plain pyarrow and pandas."""
    import dsperse
    from dsperse.chain.client import SubmitResult
    from dsperse.errors import VerificationError

    led = tmp_path / "ledger"
    run = dsperse.prove(mlp_plan, mlp_input, tmp_path / "run", circuits=mlp_circuits, job_id="ledger-1", progress=False,
                        config={"paths": {"ledger": led}})  # fmt: skip
    assert dsperse.verify(run, ledger=led)
    with pytest.raises(VerificationError):
        dsperse.verify(run, expected_model_id="00" * 32, ledger=led)  # fails before any EZKL work
    res = SubmitResult(job_id="0x" + "02" * 32, tx_hash="0x" + "ab" * 32, block=5, gas_used=2_500_000,
                       registry="0x" + "cc" * 20, chain_id=31337, receipt_id="0x" + "dd" * 32)  # fmt: skip
    assert L.record_submission(res, run=run.workdir, ledger=led) is not None
    # resuming the finished run proves nothing, so it adds no prove rows
    dsperse.prove(mlp_plan, mlp_input, tmp_path / "run", circuits=mlp_circuits, job_id="ledger-1", progress=False,
                  config={"paths": {"ledger": led}})  # fmt: skip

    table = ds.dataset(led, format="parquet").to_table().sort_by("timestamp")  # plain pyarrow, no dsperse
    prove = table.filter(pa.compute.equal(table["event"], "prove")).sort_by("slice_index").to_pylist()
    assert len(prove) == 3
    assert [r["proof_sha256"] for r in prove] == list(run.receipt.proof_hashes) == [p.sha256 for p in run.proofs]
    for r, c, p in zip(prove, run.circuits, run.proofs):
        assert r["job_id"] == "ledger-1" and r["model_id"] == run.receipt.model_id and r["slice_count"] == 3
        assert (r["logrows"], r["rows"], r["seconds"], r["prover"]) == (c.logrows, c.num_rows, p.seconds, p.prover)
        assert r["peak_rss_bytes"] > 50 * 2**20  # proved in this process: its peak RSS, an upper bound
    pd = pytest.importorskip("pandas")
    df = pd.read_parquet(led)
    verify = df[df.event == "verify"].sort_values("timestamp")
    assert verify.verified.tolist() == [True, False]
    assert verify.error.iloc[1].startswith("VerificationError: the run is for model") and pd.isna(verify.error.iloc[0])
    sub = df[df.event == "submit"].iloc[0]
    assert sub.gas == 2_500_000 and sub.job_id == "ledger-1" and sub.model_id == run.receipt.model_id
    assert len(list(led.glob("*.parquet"))) == 4  # one file per run, per verify, per submission

    t0 = time.perf_counter()
    L.Ledger(tmp_path / "timing").append(L.prove_rows(run, run.proofs))
    assert time.perf_counter() - t0 < 2.0  # a few ms: bookkeeping, not a cost of proving
