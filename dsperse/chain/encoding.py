"""How dsperse values become EVM words, in one place: felts, signed outputs, ids, hashes and commitments.

Every hash here is the one a contract computes, so a client can check a receipt (or a market commitment)
offline: inputs are keccak256(abi.encodePacked(uint256[])), outputs keccak256(abi.encodePacked(int256[])).
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

from eth_abi import encode as abi_encode
from eth_utils import keccak

FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617
"""BN254 scalar field modulus: EZKL instances are elements of this field."""
ZERO32 = b"\0" * 32
_HEX32 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def felt_to_uint(felt_hex: str) -> int:
    """EZKL writes field elements as little-endian hex; the EVM wants the integer."""
    return int.from_bytes(bytes.fromhex(felt_hex.removeprefix("0x")), "little")


def felts_to_uints(felts: Iterable[str]) -> list[int]:
    """Several EZKL felts (proof instances, witness values) as unsigned ints."""
    return [felt_to_uint(f) for f in felts]


def signed(x: int) -> int:
    """Field element -> signed integer, the way the contracts de-map outputs (values above p/2 are negative)."""
    return x - FIELD if x > FIELD // 2 else x


def felts_to_ints(felts: Iterable[str]) -> list[int]:
    """EZKL felts as the signed integers they encode (quantized outputs, as the contracts store them)."""
    return [signed(felt_to_uint(f)) for f in felts]


def uint_words(values: Iterable[int]) -> bytes:
    """abi.encodePacked(uint256[]): 32 big-endian bytes per value."""
    return b"".join(int(v).to_bytes(32, "big") for v in values)


def int_words(values: Iterable[int]) -> bytes:
    """abi.encodePacked(int256[]): 32 big-endian two's-complement bytes per value."""
    return b"".join(int(v).to_bytes(32, "big", signed=True) for v in values)


def uints_hash(values: Iterable[int]) -> bytes:
    """keccak256(abi.encodePacked(uint256[])): a receipt's inputHash over the input field elements."""
    return keccak(uint_words(values))


def ints_hash(values: Iterable[int]) -> bytes:
    """keccak256(abi.encodePacked(int256[])): a receipt's outputHash over the signed quantized outputs."""
    return keccak(int_words(values))


def bytes32_id(value: str | bytes) -> bytes:
    """A bytes32 id (job, model): 32 raw bytes or 64 hex digits (0x optional) as they are; other text keccak256."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 32:
            raise ValueError(f"a bytes id must be 32 bytes, got {len(value)}")
        return bytes(value)
    if _HEX32.match(value):
        return bytes.fromhex(value.removeprefix("0x"))
    return keccak(text=value)


job_id_bytes = bytes32_id
"""bytes32 job id: 32 raw bytes or 64 hex digits as they are; any other text is keccak256-hashed."""


def hex32(b: bytes) -> str:
    """0x-prefixed hex of a bytes32."""
    return "0x" + bytes(b).hex()


def proofs_digest(proofs: Sequence[str | bytes]) -> bytes:
    """ReceiptBase's running hash over proofs in order: d = keccak(abi.encode(d, keccak(proof))); an aggregate
    is one proof."""
    d = ZERO32
    for p in proofs:
        d = keccak(d + (keccak(hexstr=p) if isinstance(p, str) else keccak(bytes(p))))
    return d


def commitment(prover: str, job_id: bytes, model_id: bytes, digest: bytes) -> bytes:
    """ReceiptBase.commitmentOf(prover, jobId, modelId, proofsDigest)."""
    return keccak(abi_encode(["address", "bytes32", "bytes32", "bytes32"], [prover, job_id, model_id, digest]))
