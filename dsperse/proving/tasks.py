"""Witnesses and slice proofs.

Witnesses run in sequence (slice i+1 eats slice i's field-element outputs, so the
boundary values are bit-identical on both sides). Each proof is then an
independent call that takes only paths: any process or Ray actor can make it.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from dsperse import proofsystem
from dsperse.artifacts import Circuit, SliceProof, Witness
from dsperse.errors import MissingArtifactError, ProofError
from dsperse.proofsystem import ProofFile
from dsperse.util import storage


def generate_witness(circuit: Circuit, values: Sequence, out: Path) -> Witness:
    """Witness for one slice; ``values`` are floats (the model input) or producers' output felts.

    A flat list feeds a slice's only input; a list of lists feeds each input in order.
    """
    out = Path(out)
    data = out.with_name(out.stem + ".input.json")
    per_input = [list(v) for v in values] if values and isinstance(values[0], (list, tuple)) else [list(values)]
    storage.write_json(data, {"input_data": per_input})
    with storage.atomic_path(out) as tmp:
        proofsystem.get().gen_witness(
            data, circuit.compiled, tmp, circuit.vk, circuit.srs, error=ProofError, context=f"slice {circuit.slice_index}"
        )
    return witness_record(circuit.slice_index, out)


def witness_record(index: int, path: Path) -> Witness:
    w = proofsystem.get().read_witness(path)
    return Witness(index, Path(path), w.input_commitment, w.output_commitment)


def witness_outputs(path: Path) -> list[str]:
    """The slice's outputs as field elements, flattened: exactly what a one-input consumer must read."""
    return [f for tensor in witness_output_tensors(path) for f in tensor]


def witness_output_tensors(path: Path) -> list[list[str]]:
    """One list of field elements per output of the slice, in output order."""
    return [list(tensor) for tensor in proofsystem.get().read_witness(path).outputs]


@dataclass(frozen=True)
class ProveTask:
    """Everything a prover needs, as paths, so it can be shipped to another process."""

    slice_index: int
    witness: Path
    compiled: Path
    pk: Path
    srs: Path
    out: Path
    proof_type: str = "single"

    @classmethod
    def for_slice(cls, circuit: Circuit, witness: Path, out: Path, proof_type: str = "single") -> "ProveTask":
        return cls(circuit.slice_index, Path(witness), circuit.compiled, circuit.pk, circuit.srs, Path(out), proof_type)


def prove_slice(task: ProveTask) -> SliceProof:
    """Prove one slice. Idempotent: re-running overwrites the proof atomically with an equally valid one."""
    for what in ("witness", "compiled", "pk", "srs"):
        if not Path(getattr(task, what)).exists():
            raise MissingArtifactError(f"{what} for slice {task.slice_index}", getattr(task, what))
    t0 = time.perf_counter()
    with storage.atomic_path(task.out) as tmp:
        proofsystem.get().prove(
            task.witness, task.compiled, task.pk, tmp, task.srs, proof_type=task.proof_type, error=ProofError,
            context=f"slice {task.slice_index}",
        )
    seconds = time.perf_counter() - t0
    return SliceProof(
        slice_index=task.slice_index, path=task.out, sha256=storage.sha256_file(task.out), seconds=seconds,
        prover=f"{socket.gethostname()}:{os.getpid()}",
    )


def quantize_input(values: np.ndarray, scale: int) -> list[str]:
    """The field elements the proof system commits to for a float input at ``scale``."""
    ps = proofsystem.get()
    return [ps.float_to_felt(float(v), scale) for v in np.asarray(values, np.float64).flatten()]


def read_proof(path: Path) -> ProofFile:
    """The proof bytes and public instances of a slice proof (the proof system parses its own format)."""
    return proofsystem.get().read_proof(path)
