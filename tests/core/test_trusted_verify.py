"""Off-chain verification that trusts what the verifier pins, not the prover's run directory (issue 11, item 3).

``pytest -k trusted`` runs the threat: a run made with other weights, or on the prover's own SRS, verifies
against its own files; pinned to the expected model id or the trusted SRS it is refused.
"""
from __future__ import annotations

import ezkl
import pytest

import dsperse
from dsperse.cli import main
from dsperse.errors import VerificationError


def test_trusted_model_id_accepts_the_expected_model(mlp_run):
    mid = mlp_run.receipt.model_id
    assert dsperse.verify(mlp_run, expected_model_id=mid)
    assert dsperse.verify(mlp_run, expected_model_id="0x" + mid.upper())


@pytest.mark.slow
def test_trusted_model_id_rejects_a_valid_run_of_another_model(mlp_run, graph_run):
    """graph_run is a real, self-consistent run (other weights, other plan): alone it verifies."""
    assert dsperse.verify(graph_run)
    with pytest.raises(VerificationError, match="not the expected"):
        dsperse.verify(graph_run, expected_model_id=mlp_run.receipt.model_id)


def test_trusted_srs_rejects_a_run_made_on_another_srs(mlp_run, tmp_path):
    """The same proofs checked with an SRS of another secret fail: the run's own SRS file is not trusted."""
    other = tmp_path / "other-k15.srs"
    ezkl.gen_srs(str(other), mlp_run.circuits[0].logrows)
    assert dsperse.verify(mlp_run, trusted_srs=mlp_run.circuits[0].srs)
    with pytest.raises(VerificationError, match="proof rejected"):
        dsperse.verify(mlp_run, trusted_srs=other)
    with pytest.raises(VerificationError, match="trusted SRS not found"):
        dsperse.verify(mlp_run, trusted_srs=tmp_path / "missing.srs")


def test_trusted_cli_warns_loudly_without_a_model_id(mlp_run, capsys):
    assert main(["verify", str(mlp_run.workdir)]) == 0
    assert "WARNING: verified against the run directory's OWN verifying keys" in capsys.readouterr().err
    assert main(["verify", str(mlp_run.workdir), "--model-id", mlp_run.receipt.model_id]) == 0
    assert "WARNING" not in capsys.readouterr().err
    assert main(["verify", str(mlp_run.workdir), "--model-id", "00" * 32]) != 0
    assert "not the expected" in capsys.readouterr().err
