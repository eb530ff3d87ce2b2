"""Fixtures for the on-chain receipt tests: a real anvil started here, the session's proven 3-slice run registered on it.

Every test sends real transactions to a real anvil process that this file starts and stops (by its own pid).
The deployments file is per session, so these tests never read or write ~/.cache/dsperse/evm/deployments.json.
"""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def deployments_file(tmp_path_factory):
    return tmp_path_factory.mktemp("evm") / "deployments.json"


@pytest.fixture(scope="module")
def chain(toolchain, deployments_file):
    """A ReceiptChain on a fresh anvil (dev account 0 signs); the anvil is stopped when the module ends."""
    import dsperse.chain

    with dsperse.chain.local(deployments=deployments_file) as client:
        yield client


@pytest.fixture(scope="module")
def model_id(chain, mlp_run) -> str:
    """The session's 3-slice MLP registered on this module's chain (verifiers generated once, then cached)."""
    return chain.register_model(mlp_run)


@pytest.fixture(scope="module")
def honest(chain, model_id, mlp_run):
    """The honest run submitted once under its own job id ('job-1')."""
    return chain.submit(mlp_run)
