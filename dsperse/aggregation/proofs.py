"""Prepare EZKL proof files for aggregation: fix the split links, declare inner accumulators.

Two facts about EZKL 22.3 (read in its source, checked by tests) that make
these edits necessary:

* ``split_proofs=True`` compares proof i-1's witness commitments at
  ``proof_i.split = {start, end}`` with proof i's first ``end - start``
  commitments. It indexes the *previous* proof with the *current* proof's
  offsets and needs ``split`` on every proof, so an honest chain with a public
  model input or output fails ("General synthesis error"). :func:`link_splits`
  gives proof i the previous proof's own output offsets instead.
* ``aggregate(transcript="poseidon")`` records the aggregate's protocol without
  ``accumulator_indices``, so aggregating it again treats its 16 accumulator
  limbs as plain numbers and never checks the inner proofs' deferred pairing:
  a tree built that way is unsound. :func:`declare_accumulator` marks the limbs
  so the next aggregation folds them into its own accumulator in-circuit.

Both fields are structure, not witness: the aggregation circuit is built from
them at setup, so the verifying key pins them and a prover cannot alter them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from dsperse.aggregation.planning import ACCUMULATOR_LIMBS
from dsperse.errors import AggregationError
from dsperse.util import storage


@dataclass(frozen=True)
class ProofInfo:
    """What aggregation needs to know about one inner proof file."""

    path: Path
    transcript: str
    n_instances: int
    split: tuple[int, int] | None
    """Where this proof's polycommit *output* sits among its witness commitments (EZKL's own field)."""
    has_accumulator: bool
    """True for an aggregate whose protocol declares its accumulator limbs."""


def load(path: Path | str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise AggregationError(f"proof file not found: {p}")
    try:
        return storage.read_json(p)
    except ValueError as exc:
        raise AggregationError(f"{p}: not a JSON proof ({exc})") from exc


def info(path: Path | str, data: dict[str, Any] | None = None) -> ProofInfo:
    d = data if data is not None else load(path)
    if d.get("protocol") is None:
        raise AggregationError(
            f"{path}: proof has no protocol; prove slices with proof_type='for-aggr' (Poseidon transcript) to aggregate them"
        )
    split = d.get("split")
    return ProofInfo(
        path=Path(path),
        transcript=str(d.get("transcript_type")),
        n_instances=sum(len(col) for col in d.get("instances", [])),
        split=(int(split["start"]), int(split["end"])) if split else None,
        has_accumulator=bool(d["protocol"].get("accumulator_indices")),
    )


def check_inner(infos: Sequence[ProofInfo]) -> None:
    """Refuse proofs that cannot be aggregated, naming the file and the fix."""
    if not infos:
        raise AggregationError("no proofs to aggregate")
    for i in infos:
        if i.transcript.lower() != "poseidon":
            raise AggregationError(
                f"{i.path}: transcript {i.transcript}; inner proofs need the Poseidon transcript "
                "(proof_type='for-aggr' for slices, transcript='poseidon' for aggregates that are aggregated again)"
            )


def link_splits(datas: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of a linked chain's proofs whose ``split`` fields make EZKL compare the right commitments.

    Proof i (i >= 1) gets proof i-1's output offsets; proof 0 keeps its own (or an empty range), since
    EZKL only requires it to be present.
    """
    out = []
    for i, d in enumerate(datas):
        c = dict(d)
        if i == 0:
            c["split"] = d.get("split") or {"start": 0, "end": 0}
        else:
            prev = datas[i - 1].get("split")
            if not prev:
                raise AggregationError(
                    f"proof {i - 1} has no polycommit output, so proof {i} cannot be linked to it in-circuit; "
                    "give that boundary polycommit visibility, or expose it (hashed) and aggregate with split_proofs=False"
                )
            c["split"] = {"start": int(prev["start"]), "end": int(prev["end"])}
        out.append(c)
    return out


def declare_accumulator(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of an aggregate proof whose protocol says where its accumulator limbs are (instances 0..15)."""
    c = dict(data)
    proto = dict(c["protocol"])
    if proto.get("num_instance", [0])[0] < ACCUMULATOR_LIMBS:
        raise AggregationError("not an aggregate proof: fewer instances than accumulator limbs")
    proto["accumulator_indices"] = [[[0, j] for j in range(ACCUMULATOR_LIMBS)]]
    c["protocol"] = proto
    return c


def prepare(paths: Sequence[Path | str], out_dir: Path, *, split_proofs: bool) -> list[Path]:
    """Write the proof files EZKL will read for this aggregation into ``out_dir`` (atomic, idempotent)."""
    datas = [load(p) for p in paths]
    check_inner([info(p, d) for p, d in zip(paths, datas)])
    if split_proofs:
        datas = link_splits(datas)
    out = []
    for i, d in enumerate(datas):
        dest = Path(out_dir) / f"inner_{i:04d}.json"
        storage.write_bytes(dest, json.dumps(d).encode())
        out.append(dest)
    return out


def structure_digest(datas: Sequence[dict[str, Any]], *, split_proofs: bool) -> str:
    """Content id of what the aggregation circuit is built from: protocols, instance counts, split links.

    Two sets of proofs with the same digest share one aggregation key (the keys depend on no witness value).
    """
    h = hashlib.sha256()
    h.update(f"split={split_proofs};n={len(datas)}".encode())
    for d in datas:
        h.update(json.dumps(d["protocol"], sort_keys=True, separators=(",", ":")).encode())
        h.update(str(sum(len(c) for c in d.get("instances", []))).encode())
        h.update(json.dumps(d.get("split") if split_proofs else None, sort_keys=True).encode())
    return h.hexdigest()


def instances(data: dict[str, Any]) -> list[int]:
    """Flattened public instances as integers (EZKL writes little-endian hex field elements)."""
    from dsperse.chain.encoding import felts_to_uints

    return felts_to_uints(f for col in data["instances"] for f in col)
