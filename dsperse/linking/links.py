"""The links of a slice graph: every tensor passed between two slices is the same commitment on both sides.

EZKL's polycommit visibility commits to a tensor with unblinded KZG commitments, one G1 point per column, so
two proofs over the same tensor carry the same points. :mod:`dsperse.linking.layout` says where each committed
tensor's points sit in a proof; a link compares the producer's output bytes with the consumer's input bytes
over *every* column. The receipt contract checks the same byte ranges on-chain.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from dsperse.artifacts import Circuit, Edge
from dsperse.errors import LinkError
from dsperse.linking import layout as layout_mod
from dsperse.linking.layout import CommittedTensor
from dsperse.proofsystem import ProofFile
from dsperse.util import storage


@dataclass(frozen=True)
class Link:
    """One edge as byte ranges: ``proof[producer][out_offset:+length] == proof[consumer][in_offset:+length]``."""

    edge: Edge
    producer_offset: int
    consumer_offset: int
    length: int


def circuit_layout(c: Circuit) -> tuple[CommittedTensor, ...]:
    return c.layout or layout_mod.layout_of(storage.read_json(Path(c.settings)))


def chain_edges(circuits: Sequence[Circuit]) -> list[Edge]:
    """The edges of a chain plan (slice i's only output feeds slice i+1's only input)."""
    return [Edge(f"boundary {i}", i, 0, i + 1, 0, ()) for i in range(len(circuits) - 1)]


def links(circuits: Sequence[Circuit], edges: Sequence[Edge]) -> list[Link]:
    """Byte ranges of every edge; LinkError when an edge is not committed on both sides or sizes differ."""
    by_index = {c.slice_index: c for c in circuits}
    out = []
    for e in edges:
        a = layout_mod.find(circuit_layout(by_index[e.producer]), "output", e.output_index)
        b = layout_mod.find(circuit_layout(by_index[e.consumer]), "input", e.input_index)
        if a is None or b is None:
            raise LinkError(f"edge {e.tensor!r} from slice {e.producer} to slice {e.consumer} is not committed on both "
                            "sides; it cannot be linked", e.consumer)  # fmt: skip
        if a.size != b.size or a.columns != b.columns:
            raise LinkError(f"edge {e.tensor!r}: slice {e.producer} commits {a.size} elements in {a.columns} columns, "
                            f"slice {e.consumer} {b.size} in {b.columns}", e.consumer)  # fmt: skip
        out.append(Link(e, a.offset, b.offset, a.length))
    return out


def check_links(proofs: Sequence[ProofFile], circuits: Sequence[Circuit], edges: Sequence[Edge] | None = None) -> None:
    """Raise LinkError at the first edge whose commitments differ on any column (``edges``: default a chain)."""
    edges = chain_edges(circuits) if edges is None else edges
    raw = {c.slice_index: p.proof for c, p in zip(circuits, proofs)}
    for ln in links(circuits, edges):
        e = ln.edge
        got = raw[e.producer][ln.producer_offset : ln.producer_offset + ln.length]
        want = raw[e.consumer][ln.consumer_offset : ln.consumer_offset + ln.length]
        if len(got) != ln.length or len(want) != ln.length:
            raise LinkError(f"edge {e.tensor!r}: a proof is too short to hold its commitments", e.consumer)
        if got != want:
            col = next(j for j in range(0, ln.length, layout_mod.G1_BYTES) if got[j : j + 64] != want[j : j + 64]) // 64
            raise LinkError(
                f"link broken between slice {e.producer} and slice {e.consumer} on tensor {e.tensor!r}, column {col} of "
                f"{ln.length // layout_mod.G1_BYTES}: the commitments differ, so slice {e.consumer} was proven on a "
                "different intermediate tensor.",
                e.consumer,
            )
