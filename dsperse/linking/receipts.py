"""Build the receipt of a run from its proofs: which model, which input, which output."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from dsperse import proofsystem
from dsperse.artifacts import Circuit, Receipt, SliceProof
from dsperse.proofsystem import ProofFile
from dsperse.util import storage


def model_id(circuits: Sequence[Circuit]) -> str:
    """sha256 over the ordered verifying keys: fixed params make the vk depend on the weights."""
    return storage.sha256_bytes(*(bytes.fromhex(storage.sha256_file(c.vk)) for c in circuits))


def input_hash(felts: Sequence[str]) -> str:
    return storage.sha256_bytes(*(bytes.fromhex(f) for f in felts))


def input_instance_count(circuit: Circuit, n_in: int) -> int:
    """How many public instances slice 0 states about an input of ``n_in`` elements: the elements themselves
    (public), or EZKL's Poseidon hash of them (hashed: one felt per hashed tensor, first in the instances)."""
    if circuit.input_visibility == "public":
        return n_in
    if circuit.input_visibility == "hashed":
        poseidon = storage.read_json(Path(circuit.settings)).get("module_sizes", {}).get("poseidon", [0, [1]])
        return int(sum(poseidon[1])) or 1
    return 0


def input_instances(values: np.ndarray, scale: int, visibility: str = "public") -> list[str]:
    """What slice 0's proof publishes for the model input ``values``: the quantized field elements, or their
    Poseidon hash (``hashed``). A requester computes this offline to post or check a job's input commitment."""
    from dsperse.proving.tasks import quantize_input

    felts = quantize_input(np.asarray(values), scale)
    if visibility == "hashed":
        return proofsystem.get().poseidon_hash(felts)
    if visibility != "public":
        raise ValueError(f"a {visibility} model input is not stated by the proof; use public or hashed")
    return felts


def public_io(proofs: Sequence[ProofFile], circuits: Sequence[Circuit], n_in: int, n_out: int) -> tuple[list[str], list[str]]:
    """Input felts (slice 0's public instances: the input, or its hash) and output felts (the last slice's), as
    the proofs state them."""
    first = proofs[0].instances[0]
    last = proofs[-1].instances[0]
    inputs = list(first[: input_instance_count(circuits[0], n_in)])
    outputs = list(last[len(last) - n_out :]) if circuits[-1].output_visibility == "public" else []
    return inputs, outputs


def make_receipt(
    proofs: Sequence[ProofFile],
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
    ps = proofsystem.get()
    return Receipt(
        model_id=model_id(circuits),
        input_hash=input_hash(in_felts),
        input_felts=tuple(in_felts),
        output=tuple(float(ps.felt_to_float(f, scale)) for f in shown),
        output_felts=tuple(out_felts),
        output_scale=scale,
        slice_count=len(circuits),
        proof_hashes=tuple(r.sha256 for r in records),
        job_id=job_id,
        input_visibility=circuits[0].input_visibility,
    )
