"""Structured reference strings: a dev SRS made locally, or a real ceremony file.

A dev SRS made by ``ezkl.gen_srs`` has a secret that was in this machine's
memory: anyone who kept it can forge proofs. It is for development and tests
only. For production pass a ceremony SRS (e.g. the perpetual powers-of-tau
files EZKL publishes) with ``srs=PATH`` / ``--srs PATH``.

Slice proofs that will be linked or aggregated must share ONE SRS (one secret),
so a run uses a single file for every slice and for the aggregator.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from dsperse import proofsystem
from dsperse.errors import SRSError
from dsperse.util import storage

log = logging.getLogger(__name__)

DEV_WARNING = (
    "using a DEVELOPMENT SRS generated on this machine (ezkl.gen_srs): its toxic waste was in local memory, "
    "so proofs made with it are NOT trustworthy for production. Pass srs=<ceremony file> for real use."
)


def cache_dir(override: Path | str | None = None) -> Path:
    """Where SRS files, keys and verifiers are cached: argument, then ``paths.cache`` ($DSPERSE_CACHE, ~/.cache/dsperse)."""
    if override is not None:
        return Path(override).expanduser()
    from dsperse.config import DsperseConfig

    return DsperseConfig.from_env().paths.cache


@dataclass(frozen=True)
class SRS:
    path: Path
    logrows: int
    dev: bool

    @property
    def id(self) -> str:
        """Content id of the SRS; part of every key's cache address. Cached beside the file since SRS files are large."""
        return _file_id(self.path)


def srs_logrows(path: Path) -> int:
    """Read k from a halo2 KZG params file (first 4 bytes, little-endian u32)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) != 4:
        raise SRSError(f"{path}: too short to be an SRS file")
    return int.from_bytes(head, "little")


def dev_srs(logrows: int, cache: Path | str | None = None) -> SRS:
    """Return the cached dev SRS for ``logrows``, generating it once (slow for large k: see FIELD-NOTES)."""
    path = cache_dir(cache) / "srs" / f"dev-k{logrows}.srs"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not path.exists():
            log.warning("generating a dev SRS with k=%d into %s (one-time). %s", logrows, path, DEV_WARNING)
            with storage.atomic_path(path) as tmp:
                proofsystem.get().gen_srs(tmp, logrows, error=SRSError)
    return SRS(path=path, logrows=logrows, dev=True)


def resolve(logrows: int, srs: Path | str | None = None, cache: Path | str | None = None) -> SRS:
    """The SRS to use for circuits of size ``logrows``: the given file if any, else a cached dev SRS."""
    if srs is None:
        log.warning(DEV_WARNING)
        return dev_srs(logrows, cache)
    path = Path(srs).expanduser()
    if not path.exists():
        raise SRSError(f"SRS file not found: {path}")
    k = srs_logrows(path)
    if k < logrows:
        raise SRSError(f"{path} has k={k} but the circuits need k={logrows}; use a larger SRS")
    return SRS(path=path, logrows=k, dev=False)


def _file_id(path: Path) -> str:
    st = path.stat()
    marker = path.with_name(path.name + ".sha256")
    stamp = f"{st.st_size}:{st.st_mtime_ns}"
    if marker.exists():
        cached_stamp, _, digest = marker.read_text().partition(" ")
        if cached_stamp == stamp:
            return digest.strip()
    digest = storage.sha256_file(path)
    try:
        storage.write_bytes(marker, f"{stamp} {digest}".encode())
    except OSError:  # read-only ceremony location: just don't cache the hash
        pass
    return digest
