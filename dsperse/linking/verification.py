"""Check a run: every slice proof, every link, and that the receipt says what the proofs say."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from dsperse import proofsystem
from dsperse.artifacts import Run
from dsperse.errors import VerificationError
from dsperse.linking.links import check_links
from dsperse.linking.receipts import input_hash, input_instances, model_id, public_io
from dsperse.proving.tasks import quantize_input, read_proof
from dsperse.tools import ledger as ledger_mod
from dsperse.util import storage

if TYPE_CHECKING:  # pragma: no cover
    from dsperse.chain.client import ReceiptChain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tolerance:
    """How close the proven (fixed-point) output must be to onnxruntime's float output.

    |zk - ort| <= atol + rtol * |ort|, element-wise. Fixed-point rounding at scale s adds about
    2^-s per op, so the defaults leave room for ~100 ops at scale 7 and are tight at scale 13.
    """

    atol: float = 0.05
    rtol: float = 0.05

    def check(self, got: np.ndarray, want: np.ndarray) -> float:
        err = np.abs(got - want)
        if np.any(err > self.atol + self.rtol * np.abs(want)):
            raise VerificationError(
                f"proven output {got.round(5).tolist()} differs from onnxruntime {want.round(5).tolist()} "
                f"beyond atol={self.atol}, rtol={self.rtol} (max error {err.max():.4g})"
            )
        return float(err.max(initial=0.0))


def verify(
    run: Run | Path | str,
    *,
    job_id: str | None = None,
    expected_input: np.ndarray | None = None,
    expected_model_id: str | None = None,
    trusted_srs: Path | str | None = None,
    chain: "ReceiptChain | None" = None,
    reference: bool = False,
    tolerance: Tolerance = Tolerance(),
    ledger: "ledger_mod.LedgerLike" = None,
) -> bool:
    """Return True, or raise VerificationError (LinkError for a broken link) naming what failed.

    A run directory is the prover's: its keys, settings and SRS prove only that the run is self-consistent.
    Pin what you trust: ``expected_model_id`` (the hash of the verifying keys you registered or were given),
    ``trusted_srs`` (the ceremony SRS, used instead of the run's own) and/or ``chain`` (the model must be
    registered there with these slices' verifiers). ``job_id``/``expected_input`` bind the check to one job: a
    valid run replayed for another job fails. ``reference`` also reruns the whole model in onnxruntime on the
    proven input and compares outputs.
    ``ledger`` (a path or a Ledger; default $DSPERSE_LEDGER or ``<cache>/ledger``; False: off) gets one row with
    the outcome: verified, or the error text (docs/ledger.md).
    """
    ledger = ledger_mod.resolve(ledger) or False
    t0 = time.perf_counter()
    try:
        if not isinstance(run, Run):
            run = Run.load(run)
        ok = _verify(run, job_id=job_id, expected_input=expected_input, expected_model_id=expected_model_id,
                     trusted_srs=trusted_srs, chain=chain, reference=reference, tolerance=tolerance)  # fmt: skip
    except Exception as exc:
        ledger_mod.record([ledger_mod.verify_row(run, time.perf_counter() - t0, exc, job_id)], ledger)
        raise
    ledger_mod.record([ledger_mod.verify_row(run, time.perf_counter() - t0, None, job_id)], ledger)
    return ok


def _verify(run: Run, *, job_id, expected_input, expected_model_id, trusted_srs, chain, reference, tolerance) -> bool:
    circuits, records, receipt = run.circuits, run.proofs, run.receipt
    if not (len(circuits) == len(records) == len(run.plan.slices) == receipt.slice_count):
        raise VerificationError(
            f"slice count mismatch: plan {len(run.plan.slices)}, circuits {len(circuits)}, proofs {len(records)}, "
            f"receipt {receipt.slice_count}"
        )
    if model_id(circuits) != receipt.model_id:
        raise VerificationError("the verifying keys are not the ones the receipt names (proof for another model?)")
    if expected_model_id is not None and _hex(expected_model_id) != _hex(receipt.model_id):
        raise VerificationError(
            f"the run is for model {receipt.model_id}, not the expected {expected_model_id} "
            "(other weights, another plan, or keys made on another SRS)"
        )
    if chain is not None:
        _check_registered(run, chain)
    srs_for = _trusted_srs(trusted_srs) if trusted_srs is not None else None

    ps = proofsystem.get()
    proofs = []
    for c, r in zip(circuits, records):
        c.check()
        proof = read_proof(r.path)
        the_srs = srs_for(c.logrows) if srs_for else c.srs
        try:
            ok = ps.verify(r.path, c.settings, c.vk, the_srs, error=VerificationError, context=f"slice {c.slice_index}")
        except VerificationError as exc:  # the backend's exception or panic, mapped: its reason goes in the message
            why = proofsystem.reason(exc)
            raise VerificationError(f"slice {c.slice_index}: proof rejected ({why})", c.slice_index) from (exc.__cause__ or exc)
        if not ok:
            raise VerificationError(f"slice {c.slice_index}: proof rejected", c.slice_index)
        proofs.append(proof)

    check_links(proofs, circuits, run.plan.edges)

    n_in, n_out = int(np.prod(run.plan.input_shape)), int(np.prod(run.plan.output_shape))
    in_felts, out_felts = public_io(proofs, circuits, n_in, n_out)
    if tuple(in_felts) != tuple(receipt.input_felts) or input_hash(in_felts) != receipt.input_hash:
        raise VerificationError("the receipt's input is not the input the first slice's proof states")
    if tuple(out_felts) != tuple(receipt.output_felts):
        raise VerificationError("the receipt's output is not the output the last slice's proof states (edited?)")
    if out_felts:
        proven = np.array([ps.felt_to_float(f, circuits[-1].output_scale) for f in out_felts])
        if not np.array_equal(proven, np.array(receipt.output)):
            raise VerificationError("the receipt's de-quantized output does not match its output field elements")
    for r in records:
        if storage.sha256_file(r.path) != r.sha256:
            raise VerificationError(f"slice {r.slice_index}: proof file changed after the run was recorded", r.slice_index)

    if job_id is not None and receipt.job_id != job_id:
        raise VerificationError(f"this run was proven for job {receipt.job_id!r}, not {job_id!r} (replayed proof?)")
    hashed = circuits[0].input_visibility == "hashed"
    if expected_input is not None:
        want = input_instances(np.asarray(expected_input), circuits[0].input_scale, "hashed" if hashed else "public")
        if tuple(want) != tuple(in_felts):
            raise VerificationError("the proof is for a different input than the one expected for this job")
    if reference:
        from dsperse.slicing.chain import reference_model_output

        x_felts = _hashed_input_felts(run, in_felts, expected_input) if hashed else in_felts
        x = np.array([ps.felt_to_float(f, circuits[0].input_scale) for f in x_felts], np.float32)
        want = reference_model_output(run.plan.model_path, x.reshape(run.plan.input_shape), run.plan.input_shape)
        err = tolerance.check(np.array(receipt.output), want.flatten())
        log.info("output matches onnxruntime within %.3g", err)
    return True


def _hex(model: str) -> str:
    return model.lower().removeprefix("0x")


def _trusted_srs(path: Path | str):
    """k -> the trusted SRS for k-row circuits (cut down from a larger ceremony file once, same secret)."""
    from dsperse.circuits import srs as srs_mod
    from dsperse.circuits import srs_shrink

    given = Path(path).expanduser()
    if not given.is_file():
        raise VerificationError(f"trusted SRS not found: {given}")
    big = srs_mod.SRS(given, srs_mod.srs_logrows(given), dev=False)

    def for_k(k: int) -> Path:
        if big.logrows < k:
            raise VerificationError(f"the trusted SRS {given} has k={big.logrows}; this run's circuits need k={k}")
        return srs_shrink.for_circuits(big, k).path

    return for_k


def _hashed_input_felts(run: Run, hash_felts: Sequence[str], expected_input) -> list[str]:
    """The input behind a hashed input, for the reference check: the expected input if given, else slice 0's
    witness, accepted only if its Poseidon hash is the one the proof states."""
    if expected_input is not None:
        return quantize_input(np.asarray(expected_input), run.circuits[0].input_scale)
    felts = [f for t in proofsystem.get().read_witness(run.witnesses[0].path).inputs for f in t]
    if proofsystem.get().poseidon_hash(felts) != list(hash_felts):
        raise VerificationError("slice 0's witness input does not hash to the input hash its proof states")
    return felts


def _check_registered(run: Run, chain) -> None:
    """The run's model must be registered on ``chain`` with exactly these slices' verifiers and links: the
    registry's ids are content hashes of those, so being registered under this run's id is the check."""
    from dsperse.chain.client import model_spec, registry_model_id
    from dsperse.errors import ChainError

    try:
        key = registry_model_id(model_spec(run))
        existing = chain.model(key)
    except ChainError as exc:
        raise VerificationError(f"cannot read the model registration: {exc}") from exc
    if existing is None:
        raise VerificationError(
            f"model {run.receipt.model_id} is not registered on chain {chain.chain_id} (registry id {key}) with these "
            "verifiers, scales and links: nothing vouches for its keys"
        )
