"""SliceProver: a Ray actor that proves the slices it was given, input after input.

EZKL's Python API reads the proving key from a path on every ``prove`` call, so
"warm" here means: the process is up with EZKL imported, the circuit, pk and SRS
are on this node's disk (shipped once through the object store when the driver's
paths are not visible here) and in the page cache. ``benchmarks/bench_ray.py``
measures what that buys.

Proofs come back as bytes (about 18 KB each) and the driver writes them, so a
retried task (the actor was killed and restarted) simply proves again: idempotent.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import ray

_CHUNK = 1 << 22


def node_cache_root(override: str | None = None) -> Path:
    """Node-local directory for shipped circuit files (content-addressed, shared by actors on the node)."""
    return Path(override or os.environ.get("DSPERSE_NODE_CACHE") or Path(tempfile.gettempdir()) / "dsperse-node-cache")


class SliceProver:
    """Proves slices ``{i: files}`` for any number of inputs; construct through ``ProverPool``."""

    def __init__(self, slices: dict[int, dict[str, str]], blobs: dict | None, device: str, node_cache: str | None = None):
        os.environ.setdefault("RUST_LOG", "error")  # before EZKL is imported: it reads this once
        if device == "gpu":
            os.environ.setdefault("ENABLE_ICICLE_GPU", "true")  # used only by a source-built ezkl with icicle
        t0 = time.perf_counter()
        from dsperse.proving import tasks as proving  # noqa: F401  (imports ezkl once per process)

        self.device = device
        root = node_cache_root(node_cache)
        self.files = {int(i): self._materialize(f, (blobs or {}).get(int(i)), root) for i, f in slices.items()}
        for f in self.files.values():
            for p in (f["compiled"], f["pk"], f["srs"]):
                _read_through(Path(p))  # page cache: the first prove does not wait on disk
        self.warm_seconds = time.perf_counter() - t0
        self.proved = 0

    @staticmethod
    def _materialize(files: dict[str, str], blobs: dict | None, root: Path) -> dict[str, str]:
        """Use the driver's paths, or write the shipped bytes once into the node cache."""
        if not blobs:
            return files
        from dsperse.util import storage

        out = dict(files)
        for what, (name, ref) in blobs.items():
            dest = root / name
            if not dest.exists():
                storage.write_bytes(dest, ray.get(ref))
            out[what] = str(dest)
        return out

    def info(self) -> dict:
        """Who and where this prover is: for placement checks, fault injection and the dashboard."""
        ctx = ray.get_runtime_context()
        return {
            "pid": os.getpid(), "host": socket.gethostname(), "node_id": ctx.get_node_id(),
            "resources": ctx.get_assigned_resources(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "device": self.device, "slices": sorted(self.files), "files": self.files,
            "warm_seconds": self.warm_seconds, "proved": self.proved,
        }

    def prove(self, slice_index: int, witness: bytes, proof_type: str) -> dict:
        """Prove one slice for one input; returns the proof bytes and how long EZKL took."""
        from dsperse.proving.tasks import ProveTask, prove_slice

        f = self.files[slice_index]
        work = Path(tempfile.mkdtemp(prefix=f"dsperse-prove-s{slice_index}-"))  # private: a retry never sees a half-written file
        try:
            (work / "witness.json").write_bytes(witness)
            task = ProveTask(slice_index, work / "witness.json", Path(f["compiled"]), Path(f["pk"]), Path(f["srs"]),
                             work / "proof.json", proof_type)
            rec = prove_slice(task)
            data = (work / "proof.json").read_bytes()
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.proved += 1
        return {"proof": data, "seconds": rec.seconds, "prover": f"ray:{rec.prover}:{self.device}"}


def _read_through(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(_CHUNK):
            pass


RemoteSliceProver = ray.remote(SliceProver)
