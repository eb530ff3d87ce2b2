"""AggregatedReceipt's own checks on a real EVM (anvil), for a two-group tree: the hashed boundary between
groups, the input pin, where the output is read from.

A real two-group aggregate needs a >= 40 GB node, so the aggregated verifier here is a stand-in that accepts
every proof: what is under test is the receipt contract's logic around it, which runs before the verifier is
called. The real verifier is exercised by the bigmem tests (test_real_aggregation.py, test_recursion_real.py).
"""
from __future__ import annotations

import pytest

from dsperse.aggregation import receipt as R
from dsperse.chain.client import FIELD
from dsperse.errors import TransactionRevertedError

ACCEPT_ALL = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;
contract AcceptAllVerifier {
    fallback(bytes calldata) external returns (bytes memory) { return abi.encode(true); }
}
"""


@pytest.fixture(scope="module")
def two_groups(toolchain, tmp_path_factory):
    """Slice 0 (public input, hashed output) and slice 1 (hashed input, public output), each its own group."""
    import dsperse.chain

    slices = [R.SliceIO(5, "public", "hashed", 4, 0), R.SliceIO(4, "hashed", "public", 0, 3)]
    lay = R.layout(slices, [[[0], [1]], [[0, 1]]])
    work = tmp_path_factory.mktemp("receipt-contract")
    (work / "AcceptAllVerifier.sol").write_text(ACCEPT_ALL)
    chain = dsperse.chain.local(deployments=work / "deployments.json")
    try:
        _, r = R.deploy(chain, work / "AcceptAllVerifier.sol", lay, b"\x00" * 31 + b"\x07")
        yield chain, r, lay
    finally:
        chain.close()


def instances(lay: R.ReceiptLayout, boundary_in: int, boundary_out: int) -> list[int]:
    inst = [0] * lay.num_instances
    inst[lay.input_start : lay.input_start + lay.num_inputs] = [1, 2, 3, 4]
    (a, b), = lay.links
    inst[a], inst[b] = boundary_in, boundary_out  # slice 0's output hash, slice 1's input hash
    inst[lay.output_start : lay.output_start + lay.num_outputs] = [7, FIELD - 8, 9]
    return inst


def test_matching_boundary_hashes_store_the_receipt(two_groups):
    chain, r_addr, lay = two_groups
    inst = instances(lay, 99, 99)
    pinned = R.input_hash(inst, lay)
    R.submit(chain, r_addr, b"\x31" * 32, b"\x00", inst, expected_input_hash=pinned)
    got = R.read(chain, r_addr, b"\x31" * 32)
    assert got["input_hash"] == pinned and got["outputs"] == [7, -8, 9]


def test_a_swapped_intermediate_between_groups_reverts(two_groups):
    chain, r_addr, lay = two_groups
    with pytest.raises(TransactionRevertedError, match="boundary mismatch at link 0"):
        R.submit(chain, r_addr, b"\x32" * 32, b"\x00", instances(lay, 99, 98))


def test_another_input_than_the_pinned_one_reverts(two_groups):
    chain, r_addr, lay = two_groups
    inst = instances(lay, 99, 99)
    other = list(inst)
    other[lay.input_start] += 1
    with pytest.raises(TransactionRevertedError, match="input differs"):
        R.submit(chain, r_addr, b"\x33" * 32, b"\x00", other, expected_input_hash=R.input_hash(inst, lay))
