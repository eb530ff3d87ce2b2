"""The node goes down at submit time, gas runs out, and the `dsperse submit/register/receipt` commands."""
from __future__ import annotations

import json
import shutil

import pytest

from dsperse.artifacts import Run
from dsperse.chain.anvil import LocalChain
from dsperse.chain.client import PENDING_FILE, SUBMITTED_FILE, OutOfGasError, ReceiptChain
from dsperse.cli import main as dsperse_main
from dsperse.errors import ChainUnavailableError

pytestmark = pytest.mark.slow


@pytest.fixture
def run_copy(mlp_run, tmp_path) -> Run:
    """A copy of the session run's directory (the session run itself stays read-only)."""
    dest = tmp_path / "run"
    shutil.copytree(mlp_run.workdir, dest)
    return Run.load(dest)


def test_chain_down_keeps_the_submission_and_a_later_submit_lands_it(toolchain, run_copy, deployments_file, tmp_path, capsys):
    state = tmp_path / "anvil-state.json"
    node = LocalChain(state=state).start()  # --state: the chain comes back with its contracts after a restart
    try:
        client = ReceiptChain(node.url, private_key=node.accounts[0][1], deployments=deployments_file)
        model_id = client.register_model(run_copy)
        port = node.port
        node.stop()

        with pytest.raises(ChainUnavailableError, match="kept in .*pending_submit.json") as info:
            client.submit(run_copy, job_id="outage-job")
        assert "unreachable" in str(info.value)
        kept = json.loads((run_copy.workdir / PENDING_FILE).read_text())
        assert kept["submission"]["model_id"] == "0x" + model_id and len(kept["submission"]["proofs"]) == 3
        assert kept["registry"] == client.registry_address

        node = LocalChain(state=state, port=port).start()
        # a new process landing it: the CLI finds the pending file, the registry and the verifiers
        rc = dsperse_main(["submit", str(run_copy.workdir), "--rpc", node.url, "--private-key", node.accounts[0][1],
                           "--deployments", str(deployments_file), "--json"])  # fmt: skip
        assert rc == 0
        landed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert landed["tx_hash"] and landed["registry"] == client.registry_address
        assert not (run_copy.workdir / PENDING_FILE).exists()
        assert json.loads((run_copy.workdir / SUBMITTED_FILE).read_text())["tx_hash"] == landed["tx_hash"]

        rc = dsperse_main(["receipt", "outage-job", "--rpc", node.url, "--deployments", str(deployments_file), "--json"])
        assert rc == 0
        rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert rec["registry_model_id"] == model_id and rec["model_id"] == run_copy.receipt.model_id
        assert rec["output"] == list(run_copy.receipt.output)
        assert rec["prover"] == node.accounts[0][0]
    finally:
        node.stop()


def test_cli_register_then_submit_on_a_fresh_chain(toolchain, run_copy, tmp_path, capsys):
    """`dsperse register` deploys the registry and verifiers; `dsperse submit` (unlocked account) finds them."""
    deployments = tmp_path / "deployments.json"
    with LocalChain() as node:
        common = ["--rpc", node.url, "--deployments", str(deployments), "--json"]
        assert dsperse_main(["register", str(run_copy.workdir), *common]) == 0
        reg = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert reg["label"] == run_copy.receipt.model_id and len(reg["verifiers"]) == 3
        assert dsperse_main(["submit", str(run_copy.workdir), "--job-id", "cli-job", *common]) == 0
        sub = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert sub["registry"] == reg["registry"] and sub["gas_used"] > 0
        # a second submit of the same job is a replay: clear error, exit code 2
        assert dsperse_main(["submit", str(run_copy.workdir), "--job-id", "cli-job", *common]) == 2
        assert "job id already used" in capsys.readouterr().err


def test_submit_needing_more_gas_than_a_block_holds(chain, model_id, mlp_run):
    """With the block gas limit cut below one slice's verification, even a one-slice part cannot land: submit fails
    with OutOfGasError, not a hang (a limit that holds one slice is sent in parts: test_receipt_attacks -k multi_tx)."""
    w3 = chain.w3
    before = w3.eth.get_block("latest")["gasLimit"]
    w3.provider.make_request("anvil_setBlockGasLimit", [hex(400_000)])
    w3.provider.make_request("evm_mine", [])
    try:
        with pytest.raises(OutOfGasError, match="limit of 400,000") as info:
            chain.submit(mlp_run, job_id="too-big")
        assert info.value.limit == 400_000
    finally:
        w3.provider.make_request("anvil_setBlockGasLimit", [hex(before)])
        w3.provider.make_request("evm_mine", [])
    assert chain.receipt("too-big") is None
