"""The proof system behind every circuit, witness and proof: an interface, and a registry of implementations.

Every stage asks :func:`get` for a :class:`ProofSystem` and calls its methods; only the implementation
module (:mod:`dsperse.proofsystem.ezkl`, EZKL 22.3 today) imports the prover's own package. Adding another
system is: write a class with the methods below, ``register("name", factory)``, and ``get("name")``
(docs/proofsystem.md).

Conventions every method follows:

* paths in, files out: a method that makes something writes it to the path it is given (callers pass a
  temporary path and move it into place);
* failures arrive as the stage's own :class:`~dsperse.errors.DsperseError` subclass, passed as ``error=``,
  with the operation and ``context`` (e.g. ``"slice 2"``) in the message: a Rust panic, a Python exception
  and a ``False`` return alike;
* the EVM verifier generators are coroutine calls after which EZKL's interpreter aborts at exit: call them
  only in a child process started with :func:`run_child` that leaves through :func:`child_exit`.

This module imports nothing of any proof system: ``import dsperse`` works without one installed, and
:func:`get` says why a system cannot be used.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence, Union, runtime_checkable

from dsperse.errors import AggregationError, ChainError, CircuitError, DsperseError, ProofError, SRSError, VerificationError

if TYPE_CHECKING:  # pragma: no cover
    from dsperse.linking.layout import CommittedTensor

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT = "ezkl"


class ProofSystemError(DsperseError):
    """Raised when the asked-for proof system is unknown or cannot be used here (not installed, wrong version)."""


Felts = tuple[tuple[str, ...], ...]
"""Field elements as the backend writes them (hex strings), one tuple per tensor or instance column."""


@dataclass(frozen=True)
class ProofFile:
    """What the stages read from a proof file: the proof bytes the linker and the EVM verifier see, and its
    public instances."""

    path: Path
    proof: bytes
    instances: Felts
    """Per column; column 0 holds a slice's public input, then its public output."""
    transcript: str | None
    """"evm" or "poseidon" (lower case), None when the file does not say."""


@dataclass(frozen=True)
class WitnessFile:
    """What the stages read from a witness file: the slice's inputs and outputs, and its boundary commitments."""

    path: Path
    inputs: Felts
    outputs: Felts
    input_commitment: str | None
    output_commitment: str | None
    """The first polynomial commitment of the committed inputs / outputs (hex), None when not committed."""


@runtime_checkable
class ProofSystem(Protocol):
    """What the stages need from a zk proof system (Halo2/KZG-like: per-circuit keys, one shared SRS,
    commitments that link circuits, aggregation, an EVM verifier)."""

    name: str
    """Registry name, e.g. ``"ezkl"``."""
    version: str
    """The version the implementation is pinned to; part of every key's and aggregation key's cache address."""

    def is_available(self) -> bool:
        """True when the backend is importable here and is the pinned version."""
        ...

    def quiet_logs(self) -> None:
        """Keep the backend's info-level logging out of user output."""
        ...

    # -- circuits: settings, calibration, compile, keys, SRS --------------------------------------------------
    def gen_settings(self, model: PathLike, out: PathLike, *, error: type[DsperseError] = CircuitError,
                     context: str = "", **run_args: Any) -> None:  # fmt: skip
        """Write the circuit settings of ``model`` to ``out``. ``run_args``: input_visibility, output_visibility,
        param_visibility ("public"/"polycommit"/"hashed"/"private"/"fixed"), input_scale, param_scale, logrows,
        check_mode. The settings JSON carries ``num_rows``, ``run_args``, ``model_output_scales``."""
        ...

    def calibrate_settings(self, data: PathLike, model: PathLike, settings: PathLike, target: str, *,
                           scales: Sequence[int] | None = None, error: type[DsperseError] = CircuitError,
                           context: str = "") -> None:  # fmt: skip
        """Tune ``settings`` in place (scales, logrows) on the sample ``data``; quiet (the backend's tables go to
        /dev/null)."""
        ...

    def compile_circuit(self, model: PathLike, out: PathLike, settings: PathLike, *,
                        error: type[DsperseError] = CircuitError, context: str = "") -> None:  # fmt: skip
        ...

    def setup(self, compiled: PathLike, vk_out: PathLike, pk_out: PathLike, srs: PathLike, *,
              error: type[DsperseError] = CircuitError, context: str = "") -> None:  # fmt: skip
        """Write the verifying and proving keys of a compiled circuit."""
        ...

    def gen_srs(self, out: PathLike, logrows: int, *, error: type[DsperseError] = SRSError) -> None:
        """A development SRS (fresh local secret: not for production)."""
        ...

    def commitment_layout(self, settings: dict) -> "tuple[CommittedTensor, ...]":
        """Where each committed input/output's commitments sit in a proof of the circuit ``settings`` describes:
        what the linker compares between two slices' proofs."""
        ...

    # -- witnesses and proofs ---------------------------------------------------------------------------------
    def gen_witness(self, data: PathLike, compiled: PathLike, out: PathLike, vk: PathLike | None = None,
                    srs: PathLike | None = None, *, error: type[DsperseError] = ProofError,
                    context: str = "") -> None:  # fmt: skip
        """Run the circuit on ``data`` (``{"input_data": [[...], ...]}``, floats or field elements) and write the
        witness: ``inputs``/``outputs`` as field elements, ``processed_inputs``/``processed_outputs`` with the
        boundary commitments (these need ``vk`` and ``srs``)."""
        ...

    def prove(self, witness: PathLike, compiled: PathLike, pk: PathLike, out: PathLike, srs: PathLike, *,
              proof_type: str = "single", error: type[DsperseError] = ProofError, context: str = "") -> None:  # fmt: skip
        """Write a proof file (read it back with :meth:`read_proof`). ``proof_type="for-aggr"`` for an inner
        proof of an aggregate."""
        ...

    def read_proof(self, path: PathLike) -> ProofFile:
        """Parse a proof file this system wrote; MissingArtifactError if absent, ProofError if unreadable."""
        ...

    def read_witness(self, path: PathLike) -> WitnessFile:
        """Parse a witness file this system wrote; MissingArtifactError if absent, ProofError if unreadable."""
        ...

    def verify(self, proof: PathLike, settings: PathLike, vk: PathLike, srs: PathLike, *,
               error: type[DsperseError] = VerificationError, context: str = "") -> bool:  # fmt: skip
        """True when the proof is accepted, False when the backend rejects it without a reason; a rejection the
        backend explains (EZKL raises, e.g. "constraint system is not satisfied") raises ``error``, its reason
        in :func:`reason`."""
        ...

    # -- field elements -----------------------------------------------------------------------------------------
    def float_to_felt(self, value: float, scale: int) -> str:
        """The field element (hex) a float quantizes to at ``scale``."""
        ...

    def felt_to_float(self, felt: str, scale: int) -> float:
        ...

    def poseidon_hash(self, felts: Sequence[str]) -> list[str]:
        """The in-circuit Poseidon hash of ``felts`` (what a ``hashed`` input publishes)."""
        ...

    # -- EVM (child process only: see run_child) ---------------------------------------------------------------
    def create_evm_verifier(self, vk: PathLike, settings: PathLike, sol_out: PathLike, abi_out: PathLike,
                            srs: PathLike, *, reusable: bool = False, error: type[DsperseError] = ChainError) -> None:  # fmt: skip
        ...

    def create_evm_vka(self, vk: PathLike, settings: PathLike, out: PathLike, srs: PathLike, *,
                       error: type[DsperseError] = ChainError) -> None:  # fmt: skip
        """The verifying-key artifact a reusable verifier is given per call."""
        ...

    def create_evm_verifier_aggr(self, settings: Sequence[PathLike], vk: PathLike, sol_out: PathLike,
                                 abi_out: PathLike, logrows: int, srs: PathLike, *,
                                 error: type[DsperseError] = AggregationError) -> None:  # fmt: skip
        ...

    # -- aggregation --------------------------------------------------------------------------------------------
    def setup_aggregate(self, proofs: Sequence[PathLike], vk_out: PathLike, pk_out: PathLike, logrows: int,
                        split_proofs: bool, srs: PathLike, *, error: type[DsperseError] = AggregationError) -> None:  # fmt: skip
        ...

    def aggregate(self, proofs: Sequence[PathLike], out: PathLike, pk: PathLike, transcript: str, logrows: int,
                  check_mode: str, split_proofs: bool, srs: PathLike, *,
                  error: type[DsperseError] = AggregationError) -> None:  # fmt: skip
        """Aggregate inner proofs into ``out`` with the aggregation PROVING key ``pk``; ``transcript`` "evm" or
        "poseidon" (to be aggregated again)."""
        ...

    def verify_aggr(self, proof: PathLike, vk: PathLike, logrows: int, srs: PathLike, *,
                    error: type[DsperseError] = AggregationError) -> bool:  # fmt: skip
        """The backend's native check of an aggregate (EZKL skips the final pairing: the EVM verifier decides)."""
        ...

    def mock_aggregate(self, proofs: Sequence[PathLike], logrows: int, split_proofs: bool, *,
                       error: type[DsperseError] = AggregationError) -> None:  # fmt: skip
        """Check the aggregation circuit's constraints without keys."""
        ...


# -- the registry ---------------------------------------------------------------------------------------------------
def _ezkl() -> ProofSystem:
    from dsperse.proofsystem.ezkl import EzklProofSystem

    return EzklProofSystem()


_FACTORIES: dict[str, Callable[[], ProofSystem]] = {DEFAULT: _ezkl}
"""name -> zero-argument factory. Factories are called on every :func:`get`: keep them cheap (import + construct)."""


def register(name: str, factory: Callable[[], ProofSystem]) -> None:
    """Make ``get(name)`` return ``factory()``; replaces an earlier registration of ``name``."""
    if not name or not isinstance(name, str):
        raise ProofSystemError(f"a proof system needs a non-empty name, not {name!r}")
    _FACTORIES[name] = factory


def unregister(name: str) -> None:
    """Forget ``name`` (tests; the built-in ``ezkl`` cannot be removed)."""
    if name == DEFAULT:
        raise ProofSystemError(f"the built-in proof system {DEFAULT!r} cannot be unregistered")
    _FACTORIES.pop(name, None)


def known() -> list[str]:
    """Every registered name, available here or not."""
    return sorted(_FACTORIES)


def get(name: str = DEFAULT) -> ProofSystem:
    """The proof system registered as ``name``; ProofSystemError if unknown or unusable here (and why)."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ProofSystemError(f"unknown proof system {name!r}; known: {', '.join(known())}")
    try:
        system = factory()
    except ProofSystemError:
        raise
    except Exception as exc:  # an ImportError above all: the backend is not installed
        raise ProofSystemError(f"proof system {name!r} is unavailable: {type(exc).__name__}: {exc}") from exc
    if not system.is_available():
        why = getattr(system, "unavailable_reason", lambda: "is_available() is False")()
        raise ProofSystemError(f"proof system {name!r} is unavailable: {why}")
    return system


def available() -> list[str]:
    """The registered names :func:`get` can return here."""
    out = []
    for name in known():
        try:
            get(name)
        except ProofSystemError:
            continue
        out.append(name)
    return out


def quiet_logs() -> None:
    """Quiet the default proof system's logging, if it is installed (the CLI calls this first)."""
    try:
        get().quiet_logs()
    except ProofSystemError:
        pass


def cache_tag(system: ProofSystem) -> str:
    """What cache addresses (key ids, aggregation key ids, compile fingerprints) name the proof system by: the
    bare version for EZKL, so addresses made before the registry existed stay valid; name and version otherwise."""
    return system.version if system.name == DEFAULT else f"{system.name} {system.version}"


# -- helpers the implementations and their callers share ------------------------------------------------------------
def short(exc: BaseException) -> str:
    """The last line of an exception's text (Rust errors put the cause last), at most 500 characters."""
    text = str(exc).strip().splitlines()
    msg = text[-1] if text else type(exc).__name__
    return msg[:500]


def reason(exc: BaseException) -> str:
    """The backend's own words for a failure mapped to a stage error (its cause), else the error's text."""
    return short(exc.__cause__) if exc.__cause__ is not None else short(exc)


@contextmanager
def silenced() -> Iterator[None]:
    """Send the process's stdout and stderr to /dev/null: calibrate_settings prints large tables from Rust.

    Failures still arrive as exceptions, so nothing needed is lost.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in saved:
            os.dup2(devnull, fd)
        yield
    finally:
        for fd, keep in saved.items():
            os.dup2(keep, fd)
            os.close(keep)
        os.close(devnull)


def run_child(module: str, args: list[str], error: type[DsperseError], what: str, timeout: float, expect: Path) -> None:
    """Run ``python -m module *args`` and check it wrote ``expect``.

    EZKL's async calls (create_evm_verifier*) leave the interpreter aborting at exit (code 134), so they run in
    a child process that leaves with os._exit; this is the parent's half.
    """
    import subprocess

    env = dict(os.environ)
    env.setdefault("RUST_LOG", "error")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what} took over {timeout:.0f}s") from exc
    if proc.returncode != 0 or not Path(expect).is_file():
        tail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()[-5:]
        raise error(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}")


def child_exit(work: Callable[[], Any]) -> None:
    """The child's half of :func:`run_child`: run ``work`` and leave with ``os._exit`` (1 with the error on stderr).

    Skipping interpreter finalization is the point: EZKL's async runtime aborts it (exit 134).
    """
    try:
        work()
    except BaseException as exc:  # noqa: BLE001 - report and leave without running EZKL's finalizers
        print(f"error: {exc}", file=sys.stderr, flush=True)
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)


__all__ = [
    "DEFAULT", "Felts", "ProofFile", "ProofSystem", "ProofSystemError", "WitnessFile", "available", "cache_tag", "child_exit",
    "get", "known", "quiet_logs", "reason", "register", "run_child", "short", "silenced", "unregister",
]  # fmt: skip
