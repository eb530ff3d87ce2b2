"""The Solidity contracts dsperse ships as package data (dsperse/chain/contracts/), compiled as one unit set.

They import each other (``import "./ReceiptBase.sol"``), so every source of the folder goes to the compiler
together; solc-js results are cached on disk by the hash of that input, so a second call is a file read.
"""
from __future__ import annotations

from pathlib import Path

from dsperse.chain.toolchain import CompiledContract, compile_solidity
from dsperse.errors import ChainError

CONTRACTS_DIR = Path(__file__).with_name("contracts")


def source(name: str) -> Path:
    """Path of ``<name>.sol`` in the package's contracts folder."""
    path = CONTRACTS_DIR / f"{name}.sol"
    if not path.is_file():
        raise ChainError(f"contract source missing from the package: {path}")
    return path


def compile_all() -> dict[str, CompiledContract]:
    """Every contract (and interface) of the package's sources, by name."""
    return compile_solidity({p.name: p for p in sorted(CONTRACTS_DIR.glob("*.sol"))})


def contract(name: str) -> CompiledContract:
    """One compiled package contract, e.g. ``contract("ProofOfInference")``."""
    source(name)
    return compile_all()[name]
