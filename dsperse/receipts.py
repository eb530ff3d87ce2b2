"""Build the receipt of a run from its proofs: which model, which input, which output."""
from __future__ import annotations

from typing import Sequence

import ezkl
import numpy as np

from . import storage
from .artifacts import Circuit, Receipt, SliceProof


def model_id(circuits: Sequence[Circuit]) -> str:
    """sha256 over the ordered verifying keys: fixed params make the vk depend on the weights."""
    return storage.sha256_bytes(*(bytes.fromhex(storage.sha256_file(c.vk)) for c in circuits))


def input_hash(felts: Sequence[str]) -> str:
    return storage.sha256_bytes(*(bytes.fromhex(f) for f in felts))


def public_io(proofs: Sequence[dict], circuits: Sequence[Circuit], n_in: int, n_out: int) -> tuple[list[str], list[str]]:
    """Input felts (slice 0's public instances) and output felts (the last slice's), as the proofs state them."""
    first = proofs[0]["instances"][0]
    last = proofs[-1]["instances"][0]
    inputs = list(first[:n_in]) if circuits[0].input_visibility == "public" else []
    outputs = list(last[len(last) - n_out :]) if circuits[-1].output_visibility == "public" else []
    return inputs, outputs


def make_receipt(
    proofs: Sequence[dict],
    records: Sequence[SliceProof],
    circuits: Sequence[Circuit],
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    job_id: str | None,
    fallback_output_felts: Sequence[str] = (),
) -> Receipt:
    n_in, n_out = int(np.prod(input_shape)), int(np.prod(output_shape))
    in_felts, out_felts = public_io(proofs, circuits, n_in, n_out)
    scale = circuits[-1].output_scale
    shown = out_felts or list(fallback_output_felts)  # a committed output is still reported, just not proven public
    return Receipt(
        model_id=model_id(circuits),
        input_hash=input_hash(in_felts),
        input_felts=tuple(in_felts),
        output=tuple(float(ezkl.felt_to_float(f, scale)) for f in shown),
        output_felts=tuple(out_felts),
        output_scale=scale,
        slice_count=len(circuits),
        proof_hashes=tuple(r.sha256 for r in records),
        job_id=job_id,
    )
