"""EZKL 22.3 (Halo2, KZG) as a :class:`~dsperse.proofsystem.ProofSystem`: the only module that imports ``ezkl``.

EZKL reports failures three ways: a ``False`` return, a Python exception, or a Rust panic that arrives as
``pyo3_runtime.PanicException`` (a BaseException). :func:`call` turns all three into the stage's own error
with the operation named; every method goes through it. EZKL functions are looked up on the module at call
time, so a test may monkeypatch ``ezkl.gen_settings`` and the like.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import ezkl

from dsperse.errors import (
    AggregationError,
    ChainError,
    CircuitError,
    DsperseError,
    MissingArtifactError,
    ProofError,
    SRSError,
    VerificationError,
)
from dsperse.proofsystem import Felts, PathLike, ProofFile, WitnessFile, short, silenced
from dsperse.util import storage

T = TypeVar("T")

EZKL_VERSION = "22.3.0"
"""The pinned release: the last with setup_aggregate / aggregate / verify_aggr / create_evm_verifier_aggr."""


def call(stage: str, error: type[DsperseError], fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` and re-raise anything it throws, or a ``False`` it returns, as ``error`` naming ``stage``."""
    result = _mapped(stage, error, fn, *args, **kwargs)
    if result is False:
        raise error(f"EZKL {stage} returned False")
    return result


def _mapped(stage: str, error: type[DsperseError], fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except DsperseError:
        raise
    except BaseException as exc:  # PanicException derives from BaseException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise error(f"EZKL {stage} failed: {short(exc)}") from exc


def call_async(stage: str, error: type[DsperseError], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Await one of EZKL's coroutine functions (they need a running loop)."""

    async def runner() -> Any:
        return await fn(*args, **kwargs)

    return call(stage, error, lambda: asyncio.run(runner()))


def run_args(**fields: Any) -> "ezkl.PyRunArgs":
    ra = ezkl.PyRunArgs()
    for k, v in fields.items():
        setattr(ra, k, v)
    return ra


def quiet_logs() -> None:
    """EZKL logs every step at info level through Python logging ("ezkl.*"); keep user output readable."""
    import logging

    logging.getLogger("ezkl").setLevel(logging.WARNING)


def _stage(op: str, context: str) -> str:
    return f"{op} ({context})" if context else op


def _s(p: PathLike | None) -> str | None:
    return None if p is None else str(p)


def _read_json(path, what: str) -> dict:
    p = Path(path)
    if not p.exists():
        raise MissingArtifactError(what, p)
    try:
        d = storage.read_json(p)
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ProofError(f"{p}: {what} file is not valid JSON ({short(exc)})") from exc
    if not isinstance(d, dict):
        raise ProofError(f"{p}: {what} file holds a {type(d).__name__}, not an object")
    return d


def _felts(columns) -> Felts:
    return tuple(tuple(str(f) for f in col) for col in columns)


def _commitment(processed) -> str | None:
    """The first KZG commitment EZKL put in ``processed_inputs`` / ``processed_outputs`` (None: not committed)."""
    if processed and processed.get("polycommit"):
        return processed["polycommit"][0][0]
    return None


class EzklProofSystem:
    """EZKL 22.3.0 through its Python bindings. Stateless: construct freely."""

    name = "ezkl"
    version = EZKL_VERSION

    def is_available(self) -> bool:
        return self.unavailable_reason() is None

    def unavailable_reason(self) -> str | None:
        installed = getattr(ezkl, "__version__", None)
        if installed is not None and installed != EZKL_VERSION:
            return f"ezkl {installed} is installed; dsperse needs ezkl=={EZKL_VERSION} (pip install ezkl=={EZKL_VERSION})"
        return None

    def quiet_logs(self) -> None:
        quiet_logs()

    def __repr__(self) -> str:
        return f"EzklProofSystem(version={self.version!r})"

    # -- circuits -----------------------------------------------------------------------------------------------
    def gen_settings(self, model, out, *, error=CircuitError, context="", **fields) -> None:
        call(_stage("gen_settings", context), error, ezkl.gen_settings, str(model), str(out), py_run_args=run_args(**fields))

    def calibrate_settings(self, data, model, settings, target, *, scales=None, error=CircuitError, context="") -> None:
        with silenced():
            call(_stage("calibrate_settings", context), error, ezkl.calibrate_settings, str(data), str(model), str(settings),
                 target, scales=list(scales) if scales is not None else None)  # fmt: skip

    def compile_circuit(self, model, out, settings, *, error=CircuitError, context="") -> None:
        call(_stage("compile_circuit", context), error, ezkl.compile_circuit, str(model), str(out), str(settings))

    def setup(self, compiled, vk_out, pk_out, srs, *, error=CircuitError, context="") -> None:
        call(_stage("setup", context), error, ezkl.setup, str(compiled), str(vk_out), str(pk_out), str(srs))

    def gen_srs(self, out, logrows, *, error=SRSError) -> None:
        call("gen_srs", error, ezkl.gen_srs, str(out), logrows)

    def commitment_layout(self, settings: dict):
        from dsperse.linking.layout import layout_of

        return layout_of(settings)

    # -- witnesses and proofs -------------------------------------------------------------------------------------
    def gen_witness(self, data, compiled, out, vk=None, srs=None, *, error=ProofError, context="") -> None:
        args = [str(data), str(compiled), str(out)]
        if vk is not None:
            args += [str(vk), _s(srs)]
        elif srs is not None:
            args += [None, str(srs)]
        call(_stage("gen_witness", context), error, ezkl.gen_witness, *args)

    def prove(self, witness, compiled, pk, out, srs, *, proof_type="single", error=ProofError, context="") -> None:
        call(_stage("prove", context), error, ezkl.prove, str(witness), str(compiled), str(pk), str(out), proof_type, str(srs))

    def read_proof(self, path) -> ProofFile:
        """EZKL's proof JSON: ``hex_proof`` (or the byte list ``proof``), ``instances``, ``transcript_type``."""
        d = _read_json(path, "proof")
        try:
            hexp = d.get("hex_proof") or bytes(d["proof"]).hex()
            transcript = d.get("transcript_type")
            return ProofFile(Path(path), bytes.fromhex(hexp.removeprefix("0x")), _felts(d["instances"]),
                             str(transcript).lower() if transcript is not None else None)  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProofError(f"{path}: not an EZKL proof ({type(exc).__name__}: {short(exc)})") from exc

    def read_witness(self, path) -> WitnessFile:
        """EZKL's witness JSON: ``inputs``/``outputs`` felts, ``processed_*.polycommit`` commitments."""
        d = _read_json(path, "witness")
        try:
            return WitnessFile(Path(path), _felts(d.get("inputs") or []), _felts(d.get("outputs") or []),
                               _commitment(d.get("processed_inputs")), _commitment(d.get("processed_outputs")))  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ProofError(f"{path}: not an EZKL witness ({type(exc).__name__}: {short(exc)})") from exc

    def verify(self, proof, settings, vk, srs, *, error=VerificationError, context="") -> bool:
        return bool(_mapped(_stage("verify", context), error, ezkl.verify, str(proof), str(settings), str(vk), str(srs)))

    # -- field elements -------------------------------------------------------------------------------------------
    def float_to_felt(self, value: float, scale: int) -> str:
        return ezkl.float_to_felt(float(value), scale)

    def felt_to_float(self, felt: str, scale: int) -> float:
        return ezkl.felt_to_float(felt, scale)

    def poseidon_hash(self, felts: Sequence[str]) -> list[str]:
        return list(ezkl.poseidon_hash(list(felts)))

    # -- EVM: coroutines; call them in a child process (dsperse.proofsystem.run_child) -----------------------------
    def create_evm_verifier(self, vk, settings, sol_out, abi_out, srs, *, reusable=False, error=ChainError) -> None:
        call_async("create_evm_verifier", error, ezkl.create_evm_verifier,
                   str(vk), str(settings), str(sol_out), str(abi_out), str(srs), reusable=reusable)  # fmt: skip

    def create_evm_vka(self, vk, settings, out, srs, *, error=ChainError) -> None:
        call_async("create_evm_vka", error, ezkl.create_evm_vka, str(vk), str(settings), str(out), str(srs))

    def create_evm_verifier_aggr(self, settings, vk, sol_out, abi_out, logrows, srs, *, error=AggregationError) -> None:
        call_async("create_evm_verifier_aggr", error, ezkl.create_evm_verifier_aggr,
                   [str(s) for s in settings], str(vk), str(sol_out), str(abi_out), logrows, str(srs), False)  # fmt: skip

    # -- aggregation (KZG commitments throughout) -----------------------------------------------------------------
    def setup_aggregate(self, proofs, vk_out, pk_out, logrows, split_proofs, srs, *, error=AggregationError) -> None:
        call("setup_aggregate", error, ezkl.setup_aggregate,
             [str(f) for f in proofs], str(vk_out), str(pk_out), logrows, split_proofs, str(srs), False, ezkl.PyCommitments.KZG)  # fmt: skip

    def aggregate(self, proofs, out, pk, transcript, logrows, check_mode, split_proofs, srs, *, error=AggregationError) -> None:
        # EZKL names the third argument vk_path, but it is the aggregation PROVING key
        call("aggregate", error, ezkl.aggregate,
             [str(f) for f in proofs], str(out), str(pk), transcript, logrows, check_mode, split_proofs, str(srs),
             ezkl.PyCommitments.KZG)  # fmt: skip

    def verify_aggr(self, proof, vk, logrows, srs, *, error=AggregationError) -> bool:
        return bool(call("verify_aggr", error, ezkl.verify_aggr, str(proof), str(vk), logrows, ezkl.PyCommitments.KZG, False, str(srs)))

    def mock_aggregate(self, proofs, logrows, split_proofs, *, error=AggregationError) -> None:
        call("mock_aggregate", error, ezkl.mock_aggregate, [str(f) for f in proofs], logrows, split_proofs)
