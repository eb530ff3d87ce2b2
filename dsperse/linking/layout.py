"""Where each committed tensor's KZG commitments sit in a slice proof, derived from the circuit's settings.

EZKL commits a polycommit tensor of N elements over ``N // usable + 1`` advice columns, ``usable = 2^k - 6``
with the default 5 blinding factors (measured at k=15: 32,761 elements take one column, 32,762 take two),
one G1 point per column. In an EVM-transcript proof these points come first, 64 bytes (x, y) each: the
committed inputs in order, then the committed outputs, each tensor's columns side by side. Settings list the
committed tensors' sizes in that order (``module_sizes.polycommit``), so the layout is known before any proof.

A link between two slices compares the *whole* byte range of a tensor (every column), not its first point.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

G1_BYTES = 64
DEFAULT_BLINDING_FACTORS = 5

Role = Literal["input", "output"]


@dataclass(frozen=True)
class CommittedTensor:
    """One committed input or output of a slice and the bytes its commitments take in the proof."""

    role: Role
    index: int
    """Position among the slice's inputs (or outputs)."""
    size: int
    """Elements of the tensor."""
    columns: int
    offset: int
    """First byte of its first commitment in an EVM-transcript proof."""

    @property
    def length(self) -> int:
        return self.columns * G1_BYTES

    @property
    def end(self) -> int:
        return self.offset + self.length


def usable_rows(logrows: int, blinding_factors: int | None = None) -> int:
    return 2**logrows - ((blinding_factors if blinding_factors is not None else DEFAULT_BLINDING_FACTORS) + 1)


def columns_for(size: int, logrows: int, blinding_factors: int | None = None) -> int:
    """EZKL's column count for a committed tensor: ``size // usable + 1`` (an exact multiple still opens one more)."""
    return size // usable_rows(logrows, blinding_factors) + 1


def _is_commit(vis) -> bool:
    name = vis if isinstance(vis, str) else next(iter(vis))
    return name in ("KZGCommit", "polycommit")


def layout_of(settings: dict) -> tuple[CommittedTensor, ...]:
    """Every committed input and output of the circuit described by ``settings`` (EZKL's settings.json)."""
    ra = settings["run_args"]
    k = int(ra["logrows"])
    nbf = settings.get("num_blinding_factors")
    sizes = list((settings.get("module_sizes") or {}).get("polycommit") or [])
    n_in = len(settings.get("model_input_scales") or settings.get("input_types") or [])
    n_out = len(settings.get("model_output_scales") or settings.get("output_types") or [])
    roles: list[tuple[Role, int]] = []
    if _is_commit(ra["input_visibility"]):
        roles += [("input", i) for i in range(n_in)]
    if _is_commit(ra["output_visibility"]):
        roles += [("output", i) for i in range(n_out)]
    if len(roles) != len(sizes):
        raise ValueError(
            f"settings list {len(sizes)} committed tensors but the visibilities imply {len(roles)}; "
            "cannot place the commitments in the proof"
        )
    out, pos = [], 0
    for (role, i), size in zip(roles, sizes):
        cols = columns_for(int(size), k, nbf)
        out.append(CommittedTensor(role, i, int(size), cols, pos))
        pos += cols * G1_BYTES
    return tuple(out)


def find(layout: Sequence[CommittedTensor], role: Role, index: int) -> CommittedTensor | None:
    return next((t for t in layout if t.role == role and t.index == index), None)


def from_json(items: Sequence[dict] | None) -> tuple[CommittedTensor, ...]:
    return tuple(CommittedTensor(**d) for d in (items or ()))
