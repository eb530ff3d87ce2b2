"""Plan an aggregation before any work: circuit size, memory and time, tree shape, or a refusal.

Everything here is pure arithmetic over figures measured on a 2-core, 24 GiB
machine (see ``MEASURED`` and docs/aggregation.md), so a user can see what
``aggregate=True`` will cost before a single key is made.

Extrapolation rule (documented, +-2x like the measurements themselves): the
aggregation circuit fills a 2^k-row domain, so memory and key size double per
extra logrow and time grows as ``2^k * k`` (FFTs), scaled from the nearest
measured k of the same stage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from dsperse.errors import AggregationError

GIB = 1024**3
GB = 10**9

BASE_LOGROWS = 21
"""Rows for ONE EZKL slice proof verified in-circuit: just over 2^20 (k=20 is too small), and two proofs
overflow k=21 at its last usable row (2,097,146; measured with mock_aggregate), hence k = 21 + ceil(log2 n)."""

ACCUMULATOR_LIMBS = 16
"""Public values every aggregate starts with: the KZG accumulator (lhs.x, lhs.y, rhs.x, rhs.y) in 4 limbs of 68 bits."""

MAX_LOGROWS = 26
"""Largest aggregation circuit the planner proposes (an SRS of 2^26 points is 8.6 GB)."""

DEFAULT_HEADROOM = 0.85
"""Fraction of a node's memory the planner lets one aggregation use (the rest: OS, Ray, object store)."""


@dataclass(frozen=True)
class Observation:
    """One measured figure: a stage of aggregation at a given circuit size."""

    stage: str
    """"setup" (keys), "prove" (aggregate), "mock" (mock_aggregate), "verify" (verify_aggr)."""
    logrows: int
    n_proofs: int
    seconds: float | None
    peak_bytes: float | None
    pk_bytes: float | None = None
    source: str = "FIELD-NOTES"


MEASURED: tuple[Observation, ...] = (
    Observation("setup", 21, 1, 5 * 60, 11 * GB, pk_bytes=8.9 * GB),
    Observation("prove", 21, 1, 6 * 60, 19.7 * GB),
    Observation("verify", 21, 1, 2, 0.6 * GB),
    Observation("mock", 22, 2, 5 * 60, 7 * GB),
    Observation("setup", 22, 2, 14 * 60, 22 * GB, pk_bytes=17.7 * GB),
    # k=22 prove: over 20 GB, killed by the OOM killer on the 24 GiB machine (extrapolated: ~39 GB)
)

STAGES = ("setup", "prove", "verify", "mock")


@dataclass(frozen=True)
class StageEstimate:
    seconds: float
    peak_bytes: float
    measured: bool
    """True when a measurement at exactly this k exists; False when scaled from another k."""
    basis: str


@dataclass(frozen=True)
class AggregationEstimate:
    """Cost of one aggregation step (one node of the tree) of ``n_proofs`` proofs."""

    n_proofs: int
    logrows: int
    setup: StageEstimate
    prove: StageEstimate
    verify: StageEstimate
    mock: StageEstimate
    pk_bytes: float
    srs_bytes: float

    @property
    def peak_bytes(self) -> float:
        """Memory the task must be granted: setup and prove may run in the same worker."""
        return max(self.setup.peak_bytes, self.prove.peak_bytes)

    @property
    def seconds(self) -> float:
        """Setup (first time only; keys are cached) plus one aggregate proof."""
        return self.setup.seconds + self.prove.seconds

    def describe(self) -> str:
        flag = "" if (self.setup.measured and self.prove.measured) else " (extrapolated)"
        return (
            f"aggregate {self.n_proofs} proof(s) at k={self.logrows}: setup ~{self.setup.seconds / 60:.0f} min / "
            f"{self.setup.peak_bytes / GB:.1f} GB (once per model, pk {self.pk_bytes / GB:.1f} GB), "
            f"prove ~{self.prove.seconds / 60:.0f} min / {self.prove.peak_bytes / GB:.1f} GB{flag}"
        )


def logrows_for(n_proofs: int, base_logrows: int = BASE_LOGROWS) -> int:
    """Aggregation circuit size for ``n_proofs`` inner proofs: base + ceil(log2 n)."""
    if n_proofs < 1:
        raise AggregationError(f"cannot aggregate {n_proofs} proofs; need at least one")
    return base_logrows + math.ceil(math.log2(n_proofs))


def capacity(logrows: int, base_logrows: int = BASE_LOGROWS) -> int:
    """How many inner proofs a circuit of ``logrows`` rows holds under the same rule."""
    return 0 if logrows < base_logrows else 2 ** (logrows - base_logrows)


def srs_bytes(logrows: int) -> float:
    """halo2 KZG params file: 2^k G1 points twice (monomial + Lagrange), 64 bytes each (k=21: 268 MB, measured)."""
    return float(2**logrows * 128)


def _scale(obs: Observation, logrows: int) -> tuple[float, float]:
    d = logrows - obs.logrows
    mem = (obs.peak_bytes or 0.0) * 2.0**d
    secs = (obs.seconds or 0.0) * 2.0**d * logrows / obs.logrows
    return secs, mem


def stage_estimate(stage: str, logrows: int, observations: Iterable[Observation] = MEASURED) -> StageEstimate:
    """Estimate one stage at ``logrows`` from the nearest measurement of the same stage."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; one of {STAGES}")
    same = [o for o in observations if o.stage == stage and o.seconds is not None and o.peak_bytes is not None]
    if not same:
        raise AggregationError(f"no measurement of aggregation stage {stage!r} to estimate from")
    # nearest k; on ties prefer the larger measurement (errs on the safe side for memory)
    obs = min(same, key=lambda o: (abs(o.logrows - logrows), -o.logrows))
    secs, mem = _scale(obs, logrows)
    measured = obs.logrows == logrows
    basis = f"measured at k={obs.logrows} ({obs.source})" if measured else f"scaled from k={obs.logrows} ({obs.source})"
    return StageEstimate(seconds=secs, peak_bytes=mem, measured=measured, basis=basis)


def estimate(
    n_proofs: int,
    logrows: int | None = None,
    *,
    base_logrows: int = BASE_LOGROWS,
    observations: Iterable[Observation] = MEASURED,
) -> AggregationEstimate:
    """Cost of aggregating ``n_proofs`` slice proofs in one step."""
    obs = tuple(observations)
    k = logrows if logrows is not None else logrows_for(n_proofs, base_logrows)
    if capacity(k, base_logrows) < n_proofs:
        raise AggregationError(f"k={k} holds at most {capacity(k, base_logrows)} proofs, not {n_proofs}")
    pk_obs = [o for o in obs if o.pk_bytes]
    pk_ref = min(pk_obs, key=lambda o: abs(o.logrows - k))
    return AggregationEstimate(
        n_proofs=n_proofs,
        logrows=k,
        setup=stage_estimate("setup", k, obs),
        prove=stage_estimate("prove", k, obs),
        verify=stage_estimate("verify", k, obs),
        mock=stage_estimate("mock", k, obs),
        pk_bytes=pk_ref.pk_bytes * 2.0 ** (k - pk_ref.logrows),  # type: ignore[operator]
        srs_bytes=srs_bytes(k),
    )


def max_fan_in(
    node_memory_bytes: float,
    *,
    headroom: float = DEFAULT_HEADROOM,
    base_logrows: int = BASE_LOGROWS,
    max_logrows: int = MAX_LOGROWS,
    observations: Iterable[Observation] = MEASURED,
) -> int:
    """Most proofs one node with ``node_memory_bytes`` can aggregate in one step (0: not even one)."""
    obs = tuple(observations)
    best = 0
    for k in range(base_logrows, max_logrows + 1):
        n = capacity(k, base_logrows)
        if estimate(n, k, base_logrows=base_logrows, observations=obs).peak_bytes <= node_memory_bytes * headroom:
            best = n
        else:
            break
    return best


@dataclass(frozen=True)
class AggregationNode:
    """One aggregation step: which proofs of the level below it folds, and what it costs."""

    level: int
    index: int
    inputs: tuple[int, ...]
    """Indices into the level below (level 0: slice indices)."""
    transcript: str
    """"poseidon" for a step whose proof is aggregated again, "evm" for the root."""
    estimate: AggregationEstimate

    @property
    def logrows(self) -> int:
        return self.estimate.logrows


@dataclass(frozen=True)
class AggregationPlan:
    """What ``aggregate=True`` will do, decided before any work."""

    n_proofs: int
    node_memory_bytes: float
    fan_in: int
    levels: tuple[tuple[AggregationNode, ...], ...]
    exposed_boundaries: tuple[int, ...]
    """Boundaries ``i`` (between slice i and i+1) that cross two level-0 groups: the in-circuit commitment
    check only links proofs inside one group, so these boundaries must be public instances (``hashed``
    visibility on both sides) that the receipt contract compares."""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def root(self) -> AggregationNode:
        return self.levels[-1][0]

    @property
    def recursive(self) -> bool:
        return len(self.levels) > 1

    @property
    def tree(self) -> list[list[list[int]]]:
        """``tree[l][j]``: the inputs of step j at level l, the shape ``receipt.layout`` and ``run.aggregate`` use."""
        return [[list(node.inputs) for node in lvl] for lvl in self.levels]

    @property
    def groups(self) -> tuple[tuple[int, ...], ...]:
        """Slices per level-0 aggregation (consecutive)."""
        return tuple(n.inputs for n in self.levels[0])

    @property
    def peak_bytes(self) -> float:
        return max(n.estimate.peak_bytes for lvl in self.levels for n in lvl)

    @property
    def critical_path_seconds(self) -> float:
        """Wall time with one aggregator node per step of a level (levels run one after another)."""
        return sum(max(n.estimate.seconds for n in lvl) for lvl in self.levels)

    @property
    def total_seconds(self) -> float:
        """Wall time on a single aggregator node."""
        return sum(n.estimate.seconds for lvl in self.levels for n in lvl)

    def describe(self) -> str:
        lines = [
            f"aggregation of {self.n_proofs} slice proof(s) on nodes with {self.node_memory_bytes / GB:.1f} GB: "
            f"fan-in {self.fan_in}, {len(self.levels)} level(s), peak {self.peak_bytes / GB:.1f} GB, "
            f"~{self.critical_path_seconds / 60:.0f} min critical path (setup included; cached keys skip it)"
        ]
        for lvl in self.levels:
            n = lvl[0]
            lines.append(f"  level {n.level}: {len(lvl)} step(s), e.g. {n.estimate.describe()}, transcript {n.transcript}")
        if self.exposed_boundaries:
            lines.append(f"  boundaries exposed as hashed instances: {list(self.exposed_boundaries)}")
        lines.extend(f"  note: {t}" for t in self.notes)
        return "\n".join(lines)


def _chunks(items: Sequence[int], size: int) -> list[tuple[int, ...]]:
    """Split into ceil(len/size) consecutive groups of near-equal length."""
    n_groups = math.ceil(len(items) / size)
    base, extra = divmod(len(items), n_groups)
    out, start = [], 0
    for g in range(n_groups):
        length = base + (1 if g < extra else 0)
        out.append(tuple(items[start : start + length]))
        start += length
    return out


def machine_memory_bytes() -> float:
    """Physical memory of this machine: what a plan without Ray or an explicit node size is made for."""
    import os

    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def plan(
    n_proofs: int,
    node_memory_bytes: float | Sequence[float],
    *,
    headroom: float = DEFAULT_HEADROOM,
    base_logrows: int = BASE_LOGROWS,
    max_logrows: int = MAX_LOGROWS,
    max_fan: int | None = None,
    observations: Iterable[Observation] = MEASURED,
) -> AggregationPlan:
    """Decide the aggregation tree for ``n_proofs`` slice proofs, or raise :class:`AggregationError`.

    ``node_memory_bytes`` is the memory of the biggest node that may run an aggregation (one number, or
    one per node; the largest is used). ``max_fan`` caps proofs per step (e.g. to force a tree in tests).
    """
    obs = tuple(observations)
    if n_proofs < 1:
        raise AggregationError(f"nothing to aggregate: {n_proofs} proofs")
    mems = [float(node_memory_bytes)] if isinstance(node_memory_bytes, (int, float)) else [float(m) for m in node_memory_bytes]
    if not mems or max(mems) <= 0:
        raise AggregationError("no node memory given: pass node_memory_bytes or start a Ray cluster with an aggregator node")
    mem = max(mems)
    fan = max_fan_in(mem, headroom=headroom, base_logrows=base_logrows, max_logrows=max_logrows, observations=obs)
    if max_fan is not None:
        fan = min(fan, max_fan)
    one = estimate(1, base_logrows=base_logrows, observations=obs)
    if fan < 1:
        raise AggregationError(
            f"aggregation needs ~{one.peak_bytes / GB:.1f} GB for even one proof (k={one.logrows}: "
            f"{one.describe()}), but the largest node has {mem / GB:.1f} GB "
            f"({headroom:.0%} usable). Add a node with >= {one.peak_bytes / headroom / GB:.0f} GB "
            f"(node type with resource 'aggregator'), or prove without aggregate=True (linked receipt)."
        )
    if n_proofs > 1 and fan < 2:
        two = estimate(2, base_logrows=base_logrows, observations=obs)
        raise AggregationError(
            f"the largest node ({mem / GB:.1f} GB) can aggregate only one proof per step, and a tree needs at "
            f"least two per step to reduce {n_proofs} proofs to one: {two.describe()}. Add a node with >= "
            f"{two.peak_bytes / headroom / GB:.0f} GB (resource 'aggregator'), or use the linked receipt "
            f"(aggregate=False)."
        )
    notes: list[str] = []
    levels: list[tuple[AggregationNode, ...]] = []
    current = list(range(n_proofs))
    level = 0
    while True:
        groups = _chunks(current, fan) if len(current) > fan else [tuple(current)]
        is_root = len(groups) == 1
        nodes = tuple(
            AggregationNode(
                level=level,
                index=i,
                inputs=g,
                transcript="evm" if is_root else "poseidon",
                estimate=estimate(len(g), base_logrows=base_logrows, observations=obs),
            )
            for i, g in enumerate(groups)
        )
        levels.append(nodes)
        if is_root:
            break
        current = list(range(len(nodes)))
        level += 1
    exposed: tuple[int, ...] = ()
    if len(levels) > 1:
        exposed = tuple(g[-1] for g in (n.inputs for n in levels[0][:-1]))
        notes.append(
            "levels above 0 re-aggregate aggregated proofs: dsperse marks their accumulator limbs "
            "(protocol.accumulator_indices) so the inner pairing check is folded in-circuit; EZKL 22.3 alone "
            "does not, which would leave inner proofs unchecked (see docs/aggregation.md)"
        )
        notes.append("upper-level costs assume verifying an aggregated proof costs about what a slice proof does")
    if any(not n.estimate.prove.measured for lvl in levels for n in lvl):
        notes.append("some figures are extrapolated from k=21/22 measurements (x2 memory per logrow); expect +-2x")
    return AggregationPlan(
        n_proofs=n_proofs,
        node_memory_bytes=mem,
        fan_in=fan,
        levels=tuple(levels),
        exposed_boundaries=exposed,
        notes=tuple(notes),
    )


def boundary_visibilities(n_slices: int, exposed_boundaries: Iterable[int]) -> list[tuple[str, str]]:
    """(input, output) visibility per slice for an aggregated run.

    Public model input and output; ``polycommit`` inside a level-0 group (linked in-circuit by the split
    check); ``hashed`` on both sides of an exposed boundary (a Poseidon hash the receipt contract compares).
    """
    exposed = set(exposed_boundaries)
    bad = [b for b in exposed if not 0 <= b < n_slices - 1]
    if bad:
        raise AggregationError(f"boundaries {sorted(bad)} do not exist between {n_slices} slices")
    vis = []
    for i in range(n_slices):
        vin = "public" if i == 0 else ("hashed" if (i - 1) in exposed else "polycommit")
        vout = "public" if i == n_slices - 1 else ("hashed" if i in exposed else "polycommit")
        vis.append((vin, vout))
    return vis
