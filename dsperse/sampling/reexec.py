"""Validator re-execution: recompute a job's output with EZKL's witness generator and hash it.

EZKL's witness is quantized fixed-point integer arithmetic over a prime field, so two honest runs of
the same compiled circuit(s) on the same input give bit-identical output field elements: validators
can compare hashes instead of floats. Slices run in sequence, each eating the previous slice's output
field elements, as the prover does.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from dsperse import proofsystem
from dsperse.chain.encoding import felts_to_ints
from dsperse.errors import MissingArtifactError, ProofError
from dsperse.sampling.market import output_hash
from dsperse.util import storage

__all__ = ["SliceCircuit", "felts_to_ints", "reexecute", "witness_output_felts"]


@dataclass(frozen=True)
class SliceCircuit:
    """What gen_witness needs for one slice (vk and srs only when a boundary is polycommit)."""

    compiled: Path
    vk: Path | None = None
    srs: Path | None = None


def witness_output_felts(circuits: Sequence[SliceCircuit], inputs: Sequence[float], workdir: Path | None = None) -> list[str]:
    """Run every slice's witness generation in order and return the last slice's output felts."""
    if not circuits:
        raise ValueError("no circuits to re-execute")
    ps = proofsystem.get()
    with tempfile.TemporaryDirectory(prefix="dsperse-reexec-", dir=workdir) as tmp:
        values: list = [float(x) for x in inputs]
        for i, c in enumerate(circuits):
            if not Path(c.compiled).is_file():
                raise MissingArtifactError(f"compiled circuit of slice {i}", c.compiled)
            data = Path(tmp) / f"in{i}.json"
            out = Path(tmp) / f"w{i}.json"
            storage.write_json(data, {"input_data": [values]})
            vk, srs = (c.vk, c.srs or None) if c.vk is not None else (None, None)
            ps.gen_witness(data, c.compiled, out, vk, srs, error=ProofError, context=f"re-execution, slice {i}")
            values = [f for tensor in ps.read_witness(out).outputs for f in tensor]
        return list(values)


def reexecute(circuits: Sequence[SliceCircuit], inputs: Sequence[float], workdir: Path | None = None) -> tuple[list[int], bytes]:
    """(quantized outputs, output hash) of one honest re-execution: what a validator submits."""
    outs = felts_to_ints(witness_output_felts(circuits, inputs, workdir))
    return outs, output_hash(outs)
