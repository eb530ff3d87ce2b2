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

import fcntl
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import ray

_CHUNK = 1 << 22


def node_cache_root(override: str | None = None) -> Path:
    """Node-local directory for shipped circuit files (content-addressed, shared by actors on the node).

    The driver's ``ProverConfig.node_cache`` when it set one, else this node's own config (``$DSPERSE_NODE_CACHE`` in
    the raylet's environment, read through :meth:`DsperseConfig.from_env`), else ``<tmp>/dsperse-node-cache``.
    """
    if override:
        return Path(override)
    from dsperse.config import DsperseConfig

    return DsperseConfig.from_env().prover.node_cache or Path(tempfile.gettempdir()) / "dsperse-node-cache"


class SliceProver:
    """Proves slices ``{i: files}`` for any number of inputs; construct through ``ProverPool``."""

    def __init__(self, slices: dict[int, dict[str, str]], blobs: dict | None, device: str, node_cache: str | None = None):
        os.environ.setdefault("RUST_LOG", "error")  # before EZKL is imported: it reads this once
        if device == "gpu":
            os.environ.setdefault("ENABLE_ICICLE_GPU", "true")  # used only by a source-built ezkl with icicle
        t0 = time.perf_counter()
        from dsperse.proving import tasks as proving  # noqa: F401  (imports ezkl once per process)

        self.device = device
        self.root = node_cache_root(node_cache)
        self.shipped: list[dict] = []  # what this process wrote into the node cache (the rest was already there)
        self.files: dict[int, dict[str, str]] = {}
        for i, f in slices.items():
            self._take(int(i), f, (blobs or {}).get(int(i)))
        self.warm_seconds = time.perf_counter() - t0
        self.proved = 0

    def _take(self, slice_index: int, files: dict[str, str], blobs: dict | None) -> dict[str, str]:
        """Make one slice's files local (shipped ones into the node cache) and read them into the page cache."""
        f = self.files[slice_index] = self._materialize(files, blobs)
        for p in (f["compiled"], f["pk"], f["srs"]):
            _read_through(Path(p))  # page cache: the first prove does not wait on disk
        return f

    def _materialize(self, files: dict[str, str], blobs: dict | None) -> dict[str, str]:
        """Use the driver's paths, or the node cache's copy of each shipped file, fetched once per node.

        The cache is content-addressed (``<sha256>/<name>``) and shared by every actor on the node: a per-file
        lock makes a second actor wait for the first one's copy instead of fetching the same bytes again. Each
        fetch is appended to ``<cache>/shipped.jsonl`` (the node's shipping record) and to ``self.shipped``.
        """
        if not blobs:
            return files
        out = dict(files)
        for what, (name, ref) in blobs.items():
            out[what] = str(self._fetch(self.root / name, ref))
        return out

    def _fetch(self, dest: Path, ref) -> Path:
        from dsperse.util import storage

        if dest.exists():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest.parent / f".{dest.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
            if dest.exists():  # another actor on this node fetched it while we waited
                return dest
            t0 = time.perf_counter()
            data = ray.get(ref)
            storage.write_bytes(dest, data)
            rec = {"name": str(dest.relative_to(self.root)), "bytes": len(data), "seconds": round(time.perf_counter() - t0, 3),
                   "pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id(), "at": time.time()}
            with open(self.root / "shipped.jsonl", "a") as log:
                fcntl.flock(log, fcntl.LOCK_EX)
                log.write(json.dumps(rec) + "\n")
        self.shipped.append(rec)
        return dest

    def info(self) -> dict:
        """Who and where this prover is: for placement checks, fault injection and the dashboard."""
        ctx = ray.get_runtime_context()
        return {
            "pid": os.getpid(), "host": socket.gethostname(), "node_id": ctx.get_node_id(),
            "resources": ctx.get_assigned_resources(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "device": self.device, "slices": sorted(self.files), "files": self.files,
            "warm_seconds": self.warm_seconds, "proved": self.proved, "node_cache": str(self.root), "shipped": self.shipped,
        }

    def prove(self, slice_index: int, witness: bytes, proof_type: str, source: tuple | None = None) -> dict:
        """Prove one slice for one input; returns the proof bytes and how long EZKL took.

        ``source`` is the slice's ``(files, blobs)`` as the pool holds them: a slice this process was not built
        with (moved here from an actor on a lost node, or this actor was restarted) is made local first.
        """
        from dsperse.proving.tasks import ProveTask, prove_slice

        f = self.files.get(slice_index)
        if f is None:
            if source is None:
                raise KeyError(f"slice {slice_index} is not on this SliceProver and no source was given")
            f = self._take(slice_index, *source)
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
