"""The link between slices: slice i's output commitment must be slice i+1's input commitment.

EZKL's polycommit visibility commits to a boundary tensor with an unblinded KZG
commitment, so two proofs over the same tensor carry the same G1 point. In an EVM
transcript proof the committed columns come first, 64 bytes (x, y) each: the
input commitment (if committed) at [0:64], then the output commitment. The
receipt contract checks the same bytes on-chain.
"""
from __future__ import annotations

from dataclasses import dataclass

from .artifacts import Circuit
from .errors import LinkError

G1_BYTES = 64


@dataclass(frozen=True)
class Commitments:
    input: bytes | None
    output: bytes | None


def proof_bytes(proof: dict) -> bytes:
    return bytes.fromhex(proof["hex_proof"].removeprefix("0x"))


def commitment_offsets(circuit: Circuit) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """Byte ranges of the input and output commitments in a slice proof."""
    pos = 0
    inp = out = None
    if circuit.input_visibility == "polycommit":
        inp, pos = (pos, pos + G1_BYTES), pos + G1_BYTES
    if circuit.output_visibility == "polycommit":
        out = (pos, pos + G1_BYTES)
    return inp, out


def commitments(proof: dict, circuit: Circuit) -> Commitments:
    raw = proof_bytes(proof)
    inp, out = commitment_offsets(circuit)
    return Commitments(raw[inp[0] : inp[1]] if inp else None, raw[out[0] : out[1]] if out else None)


def check_links(proofs: list[dict], circuits: list[Circuit]) -> None:
    """Raise LinkError at the first boundary whose two commitments differ."""
    for i in range(len(proofs) - 1):
        a, b = circuits[i], circuits[i + 1]
        if a.output_visibility != "polycommit" or b.input_visibility != "polycommit":
            raise LinkError(f"boundary {i}->{i + 1} is not committed on both sides; it cannot be linked", i)
        out_i = commitments(proofs[i], a).output
        in_next = commitments(proofs[i + 1], b).input
        if out_i != in_next:
            raise LinkError(
                f"link broken between slice {i} and slice {i + 1}: the output commitment of slice {i} "
                f"({out_i.hex()[:16]}...) is not the input commitment of slice {i + 1} ({in_next.hex()[:16]}...). "
                "Slice {0} was proven on a different intermediate tensor.".format(i + 1),
                i + 1,
            )
