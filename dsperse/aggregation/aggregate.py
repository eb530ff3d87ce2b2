"""EZKL 22.3 aggregation: keys cached by content, aggregate, verify_aggr, mock, the aggregated EVM verifier.

Every EZKL call goes through the proof system (:func:`dsperse.proofsystem.get`). Keys depend only on
the structure of the inner proofs (protocols, instance counts, split links),
the circuit size and the SRS, so they are cached under
``<cache>/aggregation/<key_id>/`` and made once per model (setup is minutes
and gigabytes, see :mod:`.planning`).

Soundness notes (details in docs/aggregation.md):
* inner proofs and the aggregator must share ONE SRS (same secret);
* ``verify_aggr`` skips the final pairing check: it is a smoke test, the EVM
  verifier is the source of truth.
"""
from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Sequence

from filelock import FileLock

from dsperse import proofsystem
from dsperse.aggregation import proofs as P
from dsperse.aggregation.planning import ACCUMULATOR_LIMBS, logrows_for
from dsperse.artifacts import AggregateProof, AggregationKeys
from dsperse.chain.encoding import felts_to_uints
from dsperse.circuits.srs import SRS, cache_dir, resolve
from dsperse.errors import AggregationError
from dsperse.util import storage

log = logging.getLogger(__name__)

EVM_GENERATE_TIMEOUT_S = 1800


def _srs(srs: SRS | Path | str | None, logrows: int) -> SRS:
    if isinstance(srs, SRS):
        if srs.logrows < logrows:
            raise AggregationError(f"SRS {srs.path} has k={srs.logrows}; the aggregation circuit needs k={logrows}")
        return srs
    return resolve(logrows, srs)


def key_id(datas: Sequence[dict], *, logrows: int, split_proofs: bool, srs: SRS) -> str:
    digest = P.structure_digest(datas, split_proofs=split_proofs)
    return storage.sha256_bytes(
        f"ezkl {proofsystem.cache_tag(proofsystem.get())} aggregation k={logrows}".encode(), bytes.fromhex(digest), bytes.fromhex(srs.id)
    )


def _prepared(proof_paths: Sequence[Path | str], workdir: Path, split_proofs: bool) -> tuple[list[Path], list[dict]]:
    files = P.prepare(proof_paths, workdir, split_proofs=split_proofs)
    return files, [P.load(f) for f in files]


def setup(
    proof_paths: Sequence[Path | str],
    workdir: Path | str,
    *,
    logrows: int | None = None,
    srs: SRS | Path | str | None = None,
    split_proofs: bool = True,
    cache: Path | str | None = None,
) -> AggregationKeys:
    """Make (or reuse) the aggregation keys for proofs shaped like ``proof_paths``."""
    workdir = Path(workdir)
    k = logrows or logrows_for(len(proof_paths))
    the_srs = _srs(srs, k)
    files, datas = _prepared(proof_paths, workdir / "setup_inputs", split_proofs)
    kid = key_id(datas, logrows=k, split_proofs=split_proofs, srs=the_srs)
    d = cache_dir(cache) / "aggregation" / kid
    d.mkdir(parents=True, exist_ok=True)
    vk, pk, meta = d / "vk.key", d / "pk.key", d / "meta.json"
    n_inst = ACCUMULATOR_LIMBS + sum(P.info(f, dd).n_instances for f, dd in zip(files, datas))
    with FileLock(str(d / ".lock")):
        if vk.is_file() and pk.is_file() and meta.is_file():
            m = storage.read_json(meta)
            return AggregationKeys(kid, vk, pk, Path(the_srs.path), k, split_proofs, len(files), n_inst,
                                   float(m.get("seconds", 0.0)), reused=True)  # fmt: skip
        t0 = time.monotonic()
        with ExitStack() as stack:
            tmp_vk = stack.enter_context(storage.atomic_path(vk))
            tmp_pk = stack.enter_context(storage.atomic_path(pk))
            proofsystem.get().setup_aggregate(files, tmp_vk, tmp_pk, k, split_proofs, the_srs.path, error=AggregationError)
        secs = time.monotonic() - t0
        storage.write_json(meta, {"logrows": k, "split_proofs": split_proofs, "n_proofs": len(files),
                                  "n_instances": n_inst, "srs": str(the_srs.path), "srs_id": the_srs.id,
                                  "seconds": secs, "ezkl": proofsystem.get().version})  # fmt: skip
    log.info("aggregation setup k=%d for %d proofs took %.0fs", k, len(files), secs)
    return AggregationKeys(kid, vk, pk, Path(the_srs.path), k, split_proofs, len(files), n_inst, secs)


def aggregate(
    proof_paths: Sequence[Path | str],
    out: Path | str,
    keys: AggregationKeys,
    *,
    transcript: str = "evm",
    check_mode: str = "safe",
) -> AggregateProof:
    """Aggregate ``proof_paths`` into ``out``.

    ``transcript="evm"`` for a proof checked on chain; ``"poseidon"`` for one that is aggregated again, in
    which case the written proof also declares its accumulator (see :func:`proofs.declare_accumulator`).
    """
    out = Path(out)
    if transcript not in ("evm", "poseidon"):
        raise AggregationError(f"transcript must be 'evm' or 'poseidon', not {transcript!r}")
    if len(proof_paths) != keys.n_proofs:
        raise AggregationError(f"keys {keys.key_id[:12]} are for {keys.n_proofs} proofs, got {len(proof_paths)}")
    files, datas = _prepared(proof_paths, out.parent / f"{out.stem}.inputs", keys.split_proofs)
    the_srs = _srs(keys.srs, keys.logrows)
    if key_id(datas, logrows=keys.logrows, split_proofs=keys.split_proofs, srs=the_srs) != keys.key_id:
        raise AggregationError("these proofs do not have the shape the aggregation keys were made for (other slices, SRS or k)")
    t0 = time.monotonic()
    with storage.atomic_path(out) as tmp:
        # the aggregation PROVING key (EZKL names this argument vk_path)
        proofsystem.get().aggregate(files, tmp, keys.pk, transcript, keys.logrows, check_mode, keys.split_proofs, keys.srs,
                                    error=AggregationError)  # fmt: skip
        if transcript == "poseidon":
            storage.write_bytes(tmp, json.dumps(P.declare_accumulator(P.load(tmp))).encode())
    secs = time.monotonic() - t0
    return AggregateProof(out, storage.sha256_file(out), keys.key_id, keys.logrows, transcript, len(files), keys.n_instances, secs)


def verify_aggr(proof: AggregateProof | Path | str, keys: AggregationKeys) -> bool:
    """EZKL's native check of an aggregate. It SKIPS the final pairing: use the EVM verifier to decide validity."""
    path = proof.path if isinstance(proof, AggregateProof) else Path(proof)
    return bool(proofsystem.get().verify_aggr(path, keys.vk, keys.logrows, keys.srs, error=AggregationError))


def mock(proof_paths: Sequence[Path | str], workdir: Path | str, *, logrows: int | None = None, split_proofs: bool = True) -> None:
    """Check the aggregation circuit's constraints (links included) without keys; raises AggregationError.

    It does not check inner proofs' pairings (a forged proof that parses passes): it catches wrong links.
    """
    k = logrows or logrows_for(len(proof_paths))
    files, _ = _prepared(proof_paths, Path(workdir) / "mock_inputs", split_proofs)
    proofsystem.get().mock_aggregate(files, k, split_proofs, error=AggregationError)


def settings_for_verifier(keys: AggregationKeys, template_settings: Path | str, dest: Path | str) -> Path:
    """A settings file whose instance count is the aggregate's inner instances.

    ``create_evm_verifier_aggr`` sizes the verifier from the settings of the inner circuits; for aggregates of
    aggregates no such settings exist, so one settings file states the total instead.
    """
    s = storage.read_json(Path(template_settings))
    s["model_instance_shapes"] = [[keys.n_instances - ACCUMULATOR_LIMBS]]
    s["module_sizes"] = {"polycommit": [], "poseidon": [0, [0]]}
    return storage.write_json(Path(dest), s)


def evm_verifier(keys: AggregationKeys, template_settings: Path | str, dest: Path | str) -> Path:
    """Write the aggregate's Solidity verifier (``Halo2Verifier``) to ``dest`` and its ABI beside it.

    Runs EZKL in a child process: after its async calls the interpreter aborts at exit (FIELD-NOTES).
    """
    dest = Path(dest)
    settings = settings_for_verifier(keys, template_settings, dest.with_suffix(".settings.json"))
    from dsperse.chain.toolchain import ensure_ezkl_solc

    ensure_ezkl_solc()
    args = ["--vk", str(keys.vk), "--settings", str(settings), "--srs", str(keys.srs), "--out", str(dest),
            "--aggregate", "--logrows", str(keys.logrows), "--system", proofsystem.get().name]  # fmt: skip
    proofsystem.run_child("dsperse.proofsystem._evm_verifier", args, AggregationError, "create_evm_verifier_aggr",
                          EVM_GENERATE_TIMEOUT_S, dest)  # fmt: skip
    return dest


def evm_calldata(proof: AggregateProof | Path | str) -> tuple[bytes, list[int]]:
    """(proof bytes, public instances as integers) for ``verifyProof(bytes, uint256[])``."""
    path = proof.path if isinstance(proof, AggregateProof) else Path(proof)
    if not path.is_file():
        raise AggregationError(f"aggregate proof not found at {path}")
    pf = proofsystem.get().read_proof(path)
    if pf.transcript != "evm":
        raise AggregationError(f"{path}: transcript {pf.transcript}; the EVM verifier needs an 'evm' aggregate")
    return pf.proof, felts_to_uints(f for col in pf.instances for f in col)
