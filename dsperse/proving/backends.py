"""Where slice proofs run. The core ships a local, in-process backend; Ray adds its own.

A backend takes independent ProveTasks and calls ``on_done`` as each proof lands,
so the driver can record progress (and resume) in completion order.
"""
from __future__ import annotations

from typing import Callable, Protocol, Sequence

from dsperse.artifacts import SliceProof
from dsperse.proving.tasks import ProveTask, prove_slice


class ProverBackend(Protocol):
    def prove(self, tasks: Sequence[ProveTask], on_done: Callable[[SliceProof], None]) -> list[SliceProof]: ...


class LocalBackend:
    """Proves slices one after another in this process."""

    def prove(self, tasks: Sequence[ProveTask], on_done: Callable[[SliceProof], None]) -> list[SliceProof]:
        out = []
        for t in tasks:
            p = prove_slice(t)
            on_done(p)
            out.append(p)
        return out
