"""The artifacts that flow between stages: slice, plan, circuit, witness, proof, receipt, run.

They hold paths and small metadata only; the heavy bytes (keys, proofs) stay
on disk so a stage can run in another process or on another node.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from . import storage
from .errors import MissingArtifactError

Visibility = Literal["public", "polycommit", "hashed", "private", "fixed"]
T = TypeVar("T")


def _to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_to_dict(x) for x in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _from_dict(cls: type[T], data: dict) -> T:
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        v = data[f.name]
        t = str(f.type)
        if t.startswith("Path") and v is not None:
            v = Path(v)
        elif t.startswith("tuple") and v is not None:
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)


@dataclass(frozen=True)
class Slice:
    """One consecutive sub-graph with exactly one tensor in and one out."""

    index: int
    path: Path
    input_name: str
    input_shape: tuple[int, ...]
    output_name: str
    output_shape: tuple[int, ...]
    op_types: tuple[str, ...]
    cost: int
    """Estimated circuit cost (rows); drives the balanced strategy."""


@dataclass
class SlicePlan:
    """An ONNX model cut into slices; written as ``plan.json`` beside the slice files."""

    model_path: Path
    model_sha256: str
    root: Path
    input_name: str
    input_shape: tuple[int, ...]
    output_name: str
    output_shape: tuple[int, ...]
    strategy: str
    slices: list[Slice] = field(default_factory=list)

    FILE = "plan.json"

    def save(self) -> Path:
        return storage.write_json(self.root / self.FILE, _to_dict(self))

    @classmethod
    def load(cls, root: Path | str) -> "SlicePlan":
        root = Path(root)
        path = root / cls.FILE if root.is_dir() else root
        if not path.exists():
            raise MissingArtifactError("slice plan", path)
        data = storage.read_json(path)
        plan = _from_dict(cls, data)
        plan.slices = [_from_dict(Slice, s) for s in data["slices"]]
        return plan


@dataclass(frozen=True)
class Circuit:
    """A compiled slice with its keys; ``key_id`` names its content-addressed cache entry."""

    slice_index: int
    key_id: str
    compiled: Path
    settings: Path
    vk: Path
    pk: Path
    srs: Path
    logrows: int
    input_scale: int
    output_scale: int
    input_visibility: str
    output_visibility: str
    num_rows: int
    reused: bool = False
    """True when the keys came from the cache (no setup ran)."""

    def check(self) -> None:
        for what in ("compiled", "settings", "vk", "pk", "srs"):
            p = getattr(self, what)
            if not Path(p).exists():
                raise MissingArtifactError(f"{what} of slice {self.slice_index}", p)


@dataclass(frozen=True)
class Witness:
    slice_index: int
    path: Path
    input_commitment: str | None = None
    output_commitment: str | None = None


@dataclass(frozen=True)
class SliceProof:
    slice_index: int
    path: Path
    sha256: str
    seconds: float
    prover: str = ""
    """Where the proof was made (host, pid, device); informational."""


@dataclass(frozen=True)
class Receipt:
    """What a verifier learns from a run: which model, which input, which output."""

    model_id: str
    """sha256 over the ordered verifying keys of the slices."""
    input_hash: str
    """sha256 over the quantized input field elements (slice 0's public instances)."""
    input_felts: tuple[str, ...]
    output: tuple[float, ...]
    output_felts: tuple[str, ...]
    output_scale: int
    slice_count: int
    proof_hashes: tuple[str, ...]
    job_id: str | None = None


@dataclass
class Run:
    """A proven inference: everything needed to verify it, rooted in ``workdir``."""

    workdir: Path
    plan: SlicePlan
    circuits: list[Circuit]
    witnesses: list[Witness]
    proofs: list[SliceProof]
    receipt: Receipt
    aggregate: dict | None = None
    """With aggregate=True: the aggregated proof's path, its step record and the plan it followed."""

    FILE = "run.json"

    @property
    def output(self) -> list[float]:
        return list(self.receipt.output)

    def save(self) -> Path:
        data = {
            "plan_root": str(self.plan.root),
            "circuits": _to_dict(self.circuits),
            "witnesses": _to_dict(self.witnesses),
            "proofs": _to_dict(self.proofs),
            "receipt": _to_dict(self.receipt),
            "aggregate": self.aggregate,
        }
        return storage.write_json(self.workdir / self.FILE, data)

    @classmethod
    def load(cls, workdir: Path | str) -> "Run":
        workdir = Path(workdir)
        path = workdir / cls.FILE
        if not path.exists():
            raise MissingArtifactError("run record (is the run finished?)", path)
        data = storage.read_json(path)
        return cls(
            workdir=workdir,
            plan=SlicePlan.load(data["plan_root"]),
            circuits=[_from_dict(Circuit, c) for c in data["circuits"]],
            witnesses=[_from_dict(Witness, w) for w in data["witnesses"]],
            proofs=[_from_dict(SliceProof, p) for p in data["proofs"]],
            receipt=_from_dict(Receipt, data["receipt"]),
            aggregate=data.get("aggregate"),
        )
