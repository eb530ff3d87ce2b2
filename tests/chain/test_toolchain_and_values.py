"""Toolchain discovery, solc-js compilation, the EZKL solc wrapper, and the pure value conversions of the client."""
from __future__ import annotations

import json
import subprocess

import pytest
from eth_utils import keccak

from dsperse.chain import toolchain as tc
from dsperse.chain.client import FIELD, Submission, expected_hashes, felt_to_uint, job_id_bytes, signed
from dsperse.errors import ToolchainError


def test_missing_toolchain_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(tc, "_node_modules_dirs", lambda: [tmp_path])
    monkeypatch.setattr(tc.shutil, "which", lambda name: None)
    with pytest.raises(ToolchainError, match="run scripts/install_toolchain.sh") as info:
        tc.find_toolchain()
    assert "anvil" in str(info.value) and "solc-js 0.8.20" in str(info.value)


def test_compile_solidity_returns_abi_and_bytecode(toolchain):
    src = "pragma solidity ^0.8.20; contract Answer { function get() external pure returns (uint256) { return 42; } }"
    out = tc.compile_solidity({"Answer.sol": src})
    c = out["Answer"]
    assert c.abi[0]["name"] == "get" and c.bytecode.startswith("0x60") and 0 < c.runtime_size < 1000
    with pytest.raises(ToolchainError, match="ParserError|DeclarationError|TypeError"):
        tc.compile_solidity({"Bad.sol": "pragma solidity ^0.8.20; contract Bad { function f( }"}, cache=False)


def test_ezkl_solc_wrapper_answers_like_solc(toolchain):
    path = tc.ensure_ezkl_solc()
    version = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True).stdout
    assert "Version: 0.8.20" in version
    std_in = {"language": "Solidity", "sources": {"A.sol": {"content": "pragma solidity ^0.8.20; contract A {}"}},
              "settings": {"outputSelection": {"*": {"*": ["evm.bytecode.object"]}}}}  # fmt: skip
    out = subprocess.run([str(path), "--standard-json"], input=json.dumps(std_in), capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["contracts"]["A.sol"]["A"]["evm"]["bytecode"]["object"]
    bad = subprocess.run([str(path), "--bin", "A.sol"], capture_output=True, text=True)
    assert bad.returncode != 0 and "unsupported flag" in bad.stderr


def test_field_values_map_to_signed_integers():
    assert felt_to_uint("01" + "00" * 31) == 1
    assert felt_to_uint("0001" + "00" * 30) == 256  # little-endian
    assert signed(5) == 5 and signed(FIELD - 631) == -631 and signed(FIELD // 2) == FIELD // 2


def test_job_ids_become_bytes32():
    assert job_id_bytes("job-1") == keccak(text="job-1")
    raw = bytes(range(32))
    assert job_id_bytes(raw) == raw and job_id_bytes("0x" + raw.hex()) == raw and job_id_bytes(raw.hex()) == raw
    with pytest.raises(ValueError):
        job_id_bytes(b"short")


def test_expected_hashes_pack_like_abi_encode_packed():
    sub = Submission("0x" + "00" * 32, "0x" + "11" * 32, ("0x",), ((7, 8, FIELD - 1),))
    ih, oh = expected_hashes(sub, num_inputs=1, num_outputs=2)
    assert ih == "0x" + keccak((7).to_bytes(32, "big")).hex()
    assert oh == "0x" + keccak((8).to_bytes(32, "big") + (-1).to_bytes(32, "big", signed=True)).hex()
    assert Submission.from_json(json.loads(json.dumps(sub.to_json()))) == sub
