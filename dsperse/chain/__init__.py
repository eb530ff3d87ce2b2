"""On-chain receipts: per-slice EZKL verifiers + the ProofOfInference registry on any EVM chain.

    import dsperse.chain
    with dsperse.chain.local() as chain:        # a fresh anvil on 127.0.0.1, stopped on exit
        chain.submit(run, job_id="job-1")        # registers the model on first use; linked or aggregated
        print(chain.receipt("job-1"))

    chain = dsperse.chain.connect("https://rpc.example", private_key="0x...")

The EVM layer is four small modules used by the registry client, aggregated receipts and the PoSP market:
``transport`` (signing, gas policy, waiting, error mapping), ``encoding`` (felts, words, ids, hashes,
commitments), ``sources`` (the contracts, package data in ``contracts/``: ReceiptBase, AggregatedReceipt,
ProofOfInference, PoSPMarket) and ``client`` (ReceiptChain). The toolchain (anvil, cast, solc-js 0.8.20) comes
from npm: run ``dsperse toolchain install``. See docs/chain.md.
"""
from __future__ import annotations

from pathlib import Path

from dsperse.chain.anvil import Anvil, LocalChain
from dsperse.chain.client import (
    AggregatedSubmission,
    OnchainReceipt,
    OutOfGasError,
    ReceiptChain,
    Submission,
    SubmitResult,
    expected_hashes,
    submission_from_run,
)
from dsperse.chain.encoding import FIELD, felt_to_uint, job_id_bytes, signed
from dsperse.chain.toolchain import CompiledContract, compile_solidity, ensure_ezkl_solc, find_toolchain
from dsperse.chain.transport import GasPolicy, Transport, revert_reason


def local(*, gas_limit: int | None = None, code_size_limit: int | None = None, deployments: Path | str | None = None) -> ReceiptChain:
    """A client on a freshly started anvil (funded dev account 0 signs); ``close()`` or exit stops the chain."""
    kw = {"code_size_limit": code_size_limit}
    if gas_limit is not None:
        kw["gas_limit"] = gas_limit
    chain = LocalChain(**kw).start()
    try:
        return ReceiptChain(chain.url, private_key=chain.accounts[0][1], deployments=deployments, owner=chain)
    except BaseException:
        chain.stop()
        raise


def connect(rpc_url: str, private_key: str | None = None, registry: str | None = None, *,
            deployments: Path | str | None = None) -> ReceiptChain:  # fmt: skip
    """A client for any EVM node; without a key it uses the node's first unlocked account."""
    return ReceiptChain(rpc_url, private_key=private_key, registry=registry, deployments=deployments)


__all__ = [
    "FIELD", "AggregatedSubmission", "Anvil", "CompiledContract", "GasPolicy", "LocalChain", "OnchainReceipt",
    "OutOfGasError", "ReceiptChain", "Submission", "SubmitResult", "Transport", "compile_solidity", "connect",
    "ensure_ezkl_solc", "expected_hashes", "felt_to_uint", "find_toolchain", "job_id_bytes", "local",
    "revert_reason", "signed", "submission_from_run",
]
