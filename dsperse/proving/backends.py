"""Where slice proofs run: a ProverBackend. The core ships LocalBackend (this process); Ray adds RayBackend.

The driver (:class:`dsperse.proving.runs.Pipeline`) submits each input's missing proofs and collects what
landed, so one loop serves every backend and records progress (and resume state) in completion order:

    handle = backend.submit(task)          # start (or queue) one slice proof
    for handle, proof in backend.collect(block=False): ...   # what landed; block=True waits for at least one
    backend.window                          # inputs the driver keeps open at once (None: no bound)
    backend.cancel()                        # drop what is in flight (on failure); backend.close() also releases it
"""
from __future__ import annotations

from collections import deque
from typing import Hashable, Protocol, runtime_checkable

from dsperse.artifacts import SliceProof
from dsperse.proving.tasks import ProveTask, prove_slice


@runtime_checkable
class ProverBackend(Protocol):
    window: int | None
    """How many inputs the driver keeps open at once: 1 for a synchronous backend, None to pipeline them all."""

    def submit(self, task: ProveTask) -> Hashable:
        """Start (or queue) proving ``task``; the handle comes back from :meth:`collect` with its proof."""
        ...

    def collect(self, block: bool = False) -> list[tuple[Hashable, SliceProof]]:
        """Proofs that landed since the last call; ``block``: wait for at least one while any is in flight."""
        ...

    def cancel(self) -> None:
        """Drop every submitted proof not yet collected (best effort); the backend stays usable."""
        ...

    def close(self) -> None:
        """Cancel, then release what the backend holds (processes, actors)."""
        ...

    def __enter__(self) -> "ProverBackend": ...

    def __exit__(self, *exc) -> None: ...


class LocalBackend:
    """Proves slices one after another in this process: ``collect(block=True)`` proves the next queued task."""

    window = 1  # synchronous: input after input, as a killed run's manifest expects nothing else in flight

    def __init__(self) -> None:
        self._queue: deque[tuple[int, ProveTask]] = deque()
        self._next = 0

    def submit(self, task: ProveTask) -> int:
        self._next += 1
        self._queue.append((self._next, task))
        return self._next

    def collect(self, block: bool = False) -> list[tuple[int, SliceProof]]:
        if not block or not self._queue:
            return []  # nothing runs unless asked: a synchronous backend has nothing landed in the background
        handle, task = self._queue.popleft()
        return [(handle, prove_slice(task))]

    def cancel(self) -> None:
        self._queue.clear()

    def close(self) -> None:
        self.cancel()

    def __enter__(self) -> "LocalBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
