"""``verify(run, chain=...)``: the run's model must be registered on the chain with these verifiers (issue 11, item 3)."""
from __future__ import annotations

import pytest

from dsperse.errors import VerificationError


def test_trusted_verify_requires_the_model_registered_on_chain(toolchain, mlp_run, tmp_path):
    import dsperse.chain

    with dsperse.chain.local(deployments=tmp_path / "deployments.json") as fresh:
        with pytest.raises(VerificationError, match="cannot read the model registration"):
            dsperse.verify(mlp_run, chain=fresh)  # no registry on this chain at all
        fresh.registry(deploy=True)
        with pytest.raises(VerificationError, match="is not registered on chain"):
            dsperse.verify(mlp_run, chain=fresh)
        fresh.register_model(mlp_run)
        assert dsperse.verify(mlp_run, chain=fresh)
