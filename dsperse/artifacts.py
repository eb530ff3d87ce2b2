"""The artifacts that flow between stages: slice, plan, circuit, witness, proof, receipt, aggregate, run.

They hold paths and small metadata only; the heavy bytes (keys, proofs) stay
on disk so a stage can run in another process or on another node.
"""
from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from dsperse.errors import CorruptArtifactError, DsperseError, MissingArtifactError
from dsperse.linking.layout import CommittedTensor
from dsperse.linking.layout import from_json as layout_from_json
from dsperse.util import storage

Visibility = Literal["public", "polycommit", "hashed", "private", "fixed"]
T = TypeVar("T")


def _why(exc: BaseException) -> str:
    """What is wrong with a record file, for CorruptArtifactError: a missing field, bad JSON, a wrong type."""
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a loaded value has its field's annotated type (a hand-edited or damaged record must not load)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is Literal:
        return value in args
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return len(value) == len(args) and all(_conforms(v, a) for v, a in zip(value, args))
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, args[0]) for v in value)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, hint)
    return not isinstance(hint, type) or isinstance(value, hint)


@functools.cache
def _field_hints(cls: type) -> dict[str, Any]:
    """A record class's fields and their resolved annotations, once per class (a plan loads thousands of slices)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {name: hint for name, hint in typing.get_type_hints(cls).items() if name in names}


def _check_types(obj: Any, where: str) -> None:
    """Raise TypeError naming the first field of a loaded record (and its nested records) whose type is wrong."""
    for name, hint in _field_hints(type(obj)).items():
        value = getattr(obj, name)
        if not _conforms(value, hint):
            raise TypeError(f"field {where}.{name} has the wrong type ({type(value).__name__})")
        for i, item in enumerate(value if isinstance(value, (list, tuple)) else (value,)):
            if dataclasses.is_dataclass(item) and not isinstance(item, type):
                _check_types(item, f"{where}.{name}[{i}]" if item is not value else f"{where}.{name}")


def _check_plan(plan: "SlicePlan") -> None:
    """Raise TypeError naming the first field of a loaded plan.json whose type or length is wrong."""
    _check_types(plan, "plan")
    for s in plan.slices:
        if len(s.inputs) != len(s.input_shapes) or len(s.outputs) != len(s.output_shapes):
            raise TypeError(f"field plan.slices[{s.index}] has {len(s.inputs)} inputs and {len(s.input_shapes)} shapes")


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


Shape = tuple[int, ...]


@dataclass(frozen=True)
class Slice:
    """One sub-graph of the model: a node of the slice graph, with its own circuit.

    A chain slice has one input and one output; a tile or a merge point of a graph plan may have several.
    """

    index: int
    path: Path
    inputs: tuple[str, ...]
    input_shapes: tuple[Shape, ...]
    outputs: tuple[str, ...]
    output_shapes: tuple[Shape, ...]
    op_types: tuple[str, ...]
    cost: int
    """Estimated circuit cost (rows); drives the planner."""
    tile: str = ""
    """What part of a tiled op this slice computes (e.g. "Conv /0/Conv rows 0:2 (1 of 7)"); empty if untiled."""
    circuit_group: str = ""
    """Content hash of the slice file (graph plans): slices with the same non-empty group are one circuit (same
    shape, same weights), set up once with one key."""

    @classmethod
    def from_json(cls, d: dict) -> "Slice":
        shapes = lambda xs: tuple(tuple(int(v) for v in x) for x in xs)  # noqa: E731
        return cls(
            index=d["index"], path=Path(d["path"]), inputs=tuple(d["inputs"]), input_shapes=shapes(d["input_shapes"]),
            outputs=tuple(d["outputs"]), output_shapes=shapes(d["output_shapes"]), op_types=tuple(d["op_types"]),
            cost=int(d["cost"]), tile=d.get("tile", ""), circuit_group=d.get("circuit_group", ""),
        )


@dataclass(frozen=True)
class Edge:
    """A tensor passed from one slice to another: committed on both sides, linked on every column."""

    tensor: str
    producer: int
    output_index: int
    """Position of the tensor among the producer's outputs."""
    consumer: int
    input_index: int
    """Position of the tensor among the consumer's inputs."""
    shape: Shape


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
    max_logrows: int | None = None
    """The target circuit size the planner kept every slice within (None: no target)."""

    FILE = "plan.json"

    @property
    def edges(self) -> list[Edge]:
        """Every slice-to-slice tensor, producer before consumer (slices are in topological order)."""
        producer = {t: (s.index, j) for s in self.slices for j, t in enumerate(s.outputs)}
        out = []
        for s in self.slices:
            for j, (t, shape) in enumerate(zip(s.inputs, s.input_shapes)):
                if t in producer:
                    out.append(Edge(t, producer[t][0], producer[t][1], s.index, j, shape))
        return out

    @property
    def is_chain(self) -> bool:
        """True when slice i feeds exactly slice i+1 with one tensor: the shape aggregation and old receipts need."""
        return all(len(s.inputs) == 1 and len(s.outputs) == 1 for s in self.slices) and all(
            e.consumer == e.producer + 1 for e in self.edges
        )

    def consumes_model_input(self, index: int) -> bool:
        return self.input_name in self.slices[index].inputs

    def produces_model_output(self, index: int) -> bool:
        return self.output_name in self.slices[index].outputs

    def describe(self, circuits: "list[Circuit] | None" = None) -> str:
        """A table of the slices and the edges between them (estimated rows, k and memory per slice)."""
        from dsperse.slicing.sizing import describe_plan

        return describe_plan(self, circuits)

    def save(self) -> Path:
        return storage.write_json(self.root / self.FILE, _to_dict(self))

    @classmethod
    def load(cls, root: Path | str) -> "SlicePlan":
        root = Path(root)
        path = root / cls.FILE if root.is_dir() else root
        if not path.exists():
            raise MissingArtifactError("slice plan", path)
        try:
            data = storage.read_json(path)
            if data["slices"] and "inputs" not in data["slices"][0]:
                from dsperse.errors import SlicingError

                raise SlicingError(f"{path} was written by an older dsperse (one input/output per slice); slice the model again")
            plan = _from_dict(cls, data)
            plan.slices = [Slice.from_json(s) for s in data["slices"]]
            _check_plan(plan)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
            if isinstance(exc, DsperseError):
                raise
            raise CorruptArtifactError("slice plan", path, _why(exc)) from exc
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
    output_scales: tuple[int, ...] = ()
    """One scale per output (``output_scale`` is the first)."""
    layout: tuple[CommittedTensor, ...] = ()
    """Where each committed input/output's commitments sit in the proof (every column)."""

    def check(self) -> None:
        for what in ("compiled", "settings", "vk", "pk", "srs"):
            p = getattr(self, what)
            if not Path(p).exists():
                raise MissingArtifactError(f"{what} of slice {self.slice_index}", p)


def circuit_from_json(d: dict) -> Circuit:
    c = _from_dict(Circuit, d)
    return dataclasses.replace(c, layout=layout_from_json(d.get("layout")), output_scales=tuple(d.get("output_scales") or ()))


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
    """sha256 over ``input_felts``."""
    input_felts: tuple[str, ...]
    """What slice 0's proof states about the model input: its quantized field elements (public input) or their
    Poseidon hash (hashed input, see ``input_visibility``)."""
    output: tuple[float, ...]
    output_felts: tuple[str, ...]
    output_scale: int
    slice_count: int
    proof_hashes: tuple[str, ...]
    job_id: str | None = None
    input_visibility: str = "public"
    """public: ``input_felts`` are the input; hashed: they are its Poseidon hash (one public instance instead of
    one per element: cheaper on chain for large inputs, see docs/chain.md)."""


@dataclass(frozen=True)
class AggregationKeys:
    """Proving and verifying key of one aggregation circuit (one tree node shape), cached by ``key_id``."""

    key_id: str
    vk: Path
    pk: Path
    srs: Path
    logrows: int
    split_proofs: bool
    n_proofs: int
    n_instances: int
    """Public values of an aggregate made with these keys: 16 accumulator limbs + every inner instance."""
    seconds: float = 0.0
    """Time the setup took (the first time, also when ``reused``)."""
    reused: bool = False
    """True when the keys came from the cache (no setup ran)."""


@dataclass(frozen=True)
class AggregateProof:
    """One aggregated proof file, as made by one aggregation step."""

    path: Path
    sha256: str
    """Of the proof file as written (run.json records it: a copy can be checked against it)."""
    key_id: str
    logrows: int
    """The aggregation keys' cache id and circuit size (2^logrows rows)."""
    transcript: str
    """"evm" for the root (checked on chain), "poseidon" for an aggregate that is aggregated again."""
    n_proofs: int
    n_instances: int
    """Proofs folded, and public values of the aggregate (16 accumulator limbs + every inner instance)."""
    seconds: float
    """Time the aggregation step took."""


@dataclass(frozen=True)
class AggregationStep:
    """One step of an aggregation tree as it ran: the aggregate it made of ``inputs`` with ``keys``."""

    proof: AggregateProof
    keys: AggregationKeys
    level: int = 0
    index: int = 0
    """The step's place in the tree: step ``index`` of level ``level`` (AggregationPlan.levels)."""
    inputs: tuple[Path, ...] = ()
    """The proofs it folded: slice proofs at level 0, the aggregates of the level below above it."""

    @property
    def path(self) -> Path:
        return self.proof.path

    def to_json(self) -> dict:
        """The aggregate's fields, its keys under ``"keys"``, and its place in the tree."""
        return {**_to_dict(self.proof), "keys": _to_dict(self.keys), "level": self.level, "index": self.index,
                "inputs": [str(p) for p in self.inputs]}  # fmt: skip

    @classmethod
    def from_json(cls, d: dict, *, level: int = 0) -> "AggregationStep":
        """Read :meth:`to_json`'s dict; one from an older dsperse (no place in the tree) gets ``level``, index 0."""
        return cls(
            proof=_from_dict(AggregateProof, d), keys=_from_dict(AggregationKeys, d["keys"]),
            level=int(d.get("level", level)), index=int(d.get("index", 0)), inputs=tuple(Path(p) for p in d.get("inputs", ())),
        )  # fmt: skip


Tree = tuple[tuple[tuple[int, ...], ...], ...]


def _tree(levels: Any) -> Tree:
    return tuple(tuple(tuple(int(i) for i in step) for step in lvl) for lvl in levels or ())


@dataclass(frozen=True)
class RunAggregate:
    """A run's ONE aggregated proof (``prove(..., aggregate=True)``): the root step, the tree, the plan followed."""

    root: AggregationStep
    """The root step: its EVM-transcript proof is what goes on chain; its keys make the Solidity verifier."""
    levels: Tree = ()
    """``levels[l][j]``: the inputs of step j at level l (AggregationPlan.tree); the receipt layout needs it."""
    plan: str = ""
    """The aggregation plan's description (AggregationPlan.describe())."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", _tree(self.levels))

    @property
    def proof(self) -> AggregateProof:
        return self.root.proof

    @property
    def path(self) -> Path:
        """The aggregated proof file."""
        return self.root.proof.path

    @property
    def keys(self) -> AggregationKeys:
        """The root step's aggregation keys (for its Solidity verifier)."""
        return self.root.keys

    def to_json(self) -> dict:
        return {"proof": str(self.path), "root": self.root.to_json(), "levels": _to_dict(self.levels), "plan": self.plan}

    @classmethod
    def from_json(cls, d: dict) -> "RunAggregate":
        """Read :meth:`to_json`'s dict, or the plain dict older dsperse versions wrote (the same fields)."""
        levels = _tree(d.get("levels"))
        return cls(root=AggregationStep.from_json(d["root"], level=max(len(levels) - 1, 0)), levels=levels,
                   plan=str(d.get("plan") or ""))  # fmt: skip


@dataclass
class Run:
    """A proven inference: everything needed to verify it, rooted in ``workdir``."""

    workdir: Path
    plan: SlicePlan
    circuits: list[Circuit]
    witnesses: list[Witness]
    proofs: list[SliceProof]
    receipt: Receipt
    aggregate: RunAggregate | None = None
    """With aggregate=True: the aggregated proof, the root step that made it, the tree and the plan it followed."""

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
            "aggregate": self.aggregate.to_json() if self.aggregate is not None else None,
        }
        return storage.write_json(self.workdir / self.FILE, data)

    @classmethod
    def load(cls, workdir: Path | str) -> "Run":
        workdir = Path(workdir)
        path = workdir / cls.FILE
        if not path.exists():
            raise MissingArtifactError("run record (is the run finished?)", path)
        try:
            data = storage.read_json(path)
            plan_root = data["plan_root"]
            run = cls(
                workdir=workdir,
                plan=SlicePlan.load(plan_root),
                circuits=[circuit_from_json(c) for c in data["circuits"]],
                witnesses=[_from_dict(Witness, w) for w in data["witnesses"]],
                proofs=[_from_dict(SliceProof, p) for p in data["proofs"]],
                receipt=_from_dict(Receipt, data["receipt"]),
                aggregate=RunAggregate.from_json(data["aggregate"]) if data.get("aggregate") else None,
            )
            _check_types(run, "run")
            return run
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
            if isinstance(exc, DsperseError):
                raise
            raise CorruptArtifactError("run record", path, _why(exc)) from exc
