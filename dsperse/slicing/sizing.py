"""Circuit sizes: rows that fit a k, the k a slice needs, the memory a k costs, and the plan table.

Memory per k comes from measured proving peaks on the 2-core box (benchmarks/RESULTS.md); a budget in bytes
maps to the largest k whose measured peak fits it.
"""
from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from dsperse.errors import SlicingError

if TYPE_CHECKING:  # pragma: no cover
    from dsperse.artifacts import Circuit, SlicePlan

MIN_LOGROWS = 15
"""EZKL 22.3 range-checks by decomposition with base 2^14: smaller tables do not fit."""
RESERVED_ROWS = 5 + 8
"""Blinding rows (5 + 1) and EZKL's own margin, as the compile step counts them."""
PEAK_BYTES = {15: 1.26e9, 16: 1.67e9, 17: 3.56e9, 18: 6.4e9, 19: 12.2e9, 20: 22.6e9}
"""Peak RSS of one full-size slice proof at k on the 2-core box (benchmarks/RESULTS.md): 15 and 16 (LeNet tiles,
benchmarks/bench_scale.py; 1.26 GB is EZKL's floor for any circuit at these k), 17 (LeNet channel tiles), 19 and
20 (the LeNet layers plan and whole model) measured; 18 halfway."""


def row_budget(logrows: int) -> int:
    return 2**logrows - RESERVED_ROWS


def logrows_for(rows: int) -> int:
    return max(MIN_LOGROWS, math.ceil(math.log2(max(rows + RESERVED_ROWS, 2))))


def peak_bytes(logrows: int) -> float:
    if logrows in PEAK_BYTES:
        return PEAK_BYTES[logrows]
    top = max(PEAK_BYTES)
    return PEAK_BYTES[top] * 2 ** (logrows - top) if logrows > top else PEAK_BYTES[min(PEAK_BYTES)]


def parse_bytes(text: str | float | int) -> float:
    """'4GB', '512 MiB', 1.5e9 -> bytes."""
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(r"\s*([\d.]+)\s*([kKmMgGtT]?)(i?)[bB]?\s*", text)
    if not m:
        raise SlicingError(f"cannot read a memory size from {text!r}; write e.g. '4GB' or '512MiB'")
    base = 1024 if m.group(3) else 1000
    return float(m.group(1)) * base ** " kmgt".index(m.group(2).lower() or " ")


def logrows_for_memory(budget: str | float) -> int:
    """The largest k whose measured proving peak fits ``budget``."""
    b = parse_bytes(budget)
    fits = [k for k in range(MIN_LOGROWS, 26) if peak_bytes(k) <= b]
    if not fits:
        raise SlicingError(f"max_memory={budget} is below the smallest circuit's proving peak ({peak_bytes(MIN_LOGROWS) / 1e9:.2f} GB at k={MIN_LOGROWS})")
    return max(fits)


def describe_plan(plan: "SlicePlan", circuits: "list[Circuit] | None" = None) -> str:
    """Slices (ops, tile, inputs from, rows, k, memory) and the edges between them, as a text table."""
    by_index = {c.slice_index: c for c in circuits or []}
    producer = {t: s.index for s in plan.slices for t in s.outputs}
    lines = [
        f"plan: {len(plan.slices)} slices ({plan.strategy}"
        + (f", max_logrows={plan.max_logrows}" if plan.max_logrows else "") + f"), {len(plan.edges)} edges"
        + ("" if plan.is_chain else " (a graph)"),
        f"{'slice':>5}  {'rows':>9}  {'k':>2}  {'mem':>7}  {'from':<12}  ops / tile",
    ]
    shown = []  # EZKL's rows when the slice is compiled, else the planner's estimate: the footer sums the same
    for s in plan.slices:
        c = by_index.get(s.index)
        rows = c.num_rows if c else s.cost
        shown.append(rows)
        k = c.logrows if c else logrows_for(rows)
        src = ",".join(dict.fromkeys("in" if t == plan.input_name else str(producer.get(t, "?")) for t in s.inputs))
        what = s.tile or " ".join(_compact(s.op_types))
        lines.append(f"{s.index:>5}  {rows:>9,}  {k:>2}  {peak_bytes(k) / 1e9:>5.1f}GB  {src:<12}  {what}")
    groups = {s.circuit_group for s in plan.slices if s.circuit_group}
    circuits_n = len({c.key_id for c in circuits}) if circuits else (len(groups) if groups else None)
    lines.append(f"total rows {sum(shown):,}; largest {max(shown):,}"
                 + (f"; distinct circuits {circuits_n}" if circuits_n else ""))
    return "\n".join(lines)


def _compact(ops) -> list[str]:
    out: list[str] = []
    for op in ops:
        if op in ("Identity",):
            continue
        out.append(op)
    return out or list(ops)
