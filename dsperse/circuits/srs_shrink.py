"""Derive a small SRS from a large one with the SAME secret, so circuits skip EZKL's per-call shrink.

Aggregated slices must use the aggregator's SRS (k >= 21), and a ceremony file is usually larger than a slice.
EZKL accepts a larger file but re-reads and shrinks it on every call: measured here, a k=15 slice took 147 s to
prove and 82 s to verify with the k=21 file (vs 8 s and 0.06 s with the derived file). The k-row SRS of the
same secret is the first 2^k monomial points plus their Lagrange form, an inverse FFT over G1 that halo2's own ``downsize``
does; this module computes it once with ffjavascript (npm, WASM) and writes a halo2 raw params file.
Check: a slice set up with the derived file has a byte-identical verifying key to one set up with the large
file, and proofs made with either verify with either.
"""
from __future__ import annotations

import logging
import os
import struct
import subprocess
import tempfile
from pathlib import Path

from filelock import FileLock

from dsperse.circuits.srs import SRS, cache_dir
from dsperse.errors import SRSError
from dsperse.util import storage

FR = 21888242871839275222246405745257275088548364400416034343698204186575808495617
ROOT_OF_UNITY_2_28 = 0x03DDB9F5166D18B798865EA93DD31F743215CF6DD39329C8D34F1ED960C37C9C
"""halo2curves bn256 ``Fr::ROOT_OF_UNITY`` (order 2^28): halo2's evaluation domain of size 2^k uses its 2^(28-k) power."""
G1_RAW = 64
G2_RAW = 128
SCRIPT = Path(__file__).with_name("srs_ifft.cjs")
log = logging.getLogger(__name__)


def _node_path() -> str:
    from dsperse.chain.toolchain import _node_modules_dirs

    for d in _node_modules_dirs():
        if (d / "ffjavascript").is_dir():
            return str(d)
    raise SRSError("deriving a small SRS needs the npm package ffjavascript (npm install ffjavascript@0.3.1); "
                   "or pass the large SRS and accept EZKL's per-call shrink")  # fmt: skip


def shrink(src: SRS | Path | str, logrows: int, cache: Path | str | None = None) -> SRS:
    """The ``logrows`` SRS with ``src``'s secret (cached under <cache>/srs/derived/)."""
    src_srs = src if isinstance(src, SRS) else SRS(Path(src), _read_k(Path(src)), dev=False)
    if logrows > src_srs.logrows:
        raise SRSError(f"cannot derive k={logrows} from an SRS with k={src_srs.logrows}")
    if logrows == src_srs.logrows:
        return src_srs
    dest = cache_dir(cache) / "srs" / "derived" / f"{src_srs.id[:24]}-k{logrows}.srs"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if not dest.exists():
            with storage.atomic_path(dest) as tmp:
                _derive(src_srs.path, logrows, tmp)
    return SRS(dest, logrows, src_srs.dev)


def for_circuits(src: SRS, logrows: int, cache: Path | str | None = None) -> SRS:
    """``src`` cut down to ``logrows`` when it is larger; ``src`` itself (and a warning) when that is not possible."""
    if src.logrows <= logrows:
        return src
    try:
        return shrink(src, logrows, cache)
    except SRSError as exc:
        log.warning("using the k=%d SRS for k=%d circuits: EZKL will shrink it on every call (slow). %s",
                    src.logrows, logrows, exc)  # fmt: skip
        return src


def _read_k(path: Path) -> int:
    with open(path, "rb") as f:
        return struct.unpack("<I", f.read(4))[0]


def _derive(src: Path, k: int, out: Path) -> None:
    with open(src, "rb") as f:
        big_k = struct.unpack("<I", f.read(4))[0]
        n, big_n = 1 << k, 1 << big_k
        g = f.read(G1_RAW * n)
        f.seek(4 + G1_RAW * big_n * 2)
        tail = f.read()
    if len(g) != G1_RAW * n or len(tail) != 2 * G2_RAW:
        raise SRSError(f"{src}: not a halo2 raw KZG params file of k={big_k}")
    with tempfile.TemporaryDirectory(prefix="dsperse-srs-") as td:
        gin, lout = Path(td) / "g.bin", Path(td) / "l.bin"
        gin.write_bytes(g)
        env = dict(os.environ, NODE_PATH=_node_path())
        proc = subprocess.run(["node", str(SCRIPT), str(gin), str(lout)], capture_output=True, text=True, env=env, timeout=3600)
        if proc.returncode != 0:
            raise SRSError(f"G1 inverse FFT failed: {proc.stderr[-500:]}")
        import json

        w_ff = int(json.loads(proc.stdout.strip().splitlines()[-1])["w"])
        lag = lout.read_bytes()
    if len(lag) != G1_RAW * n:
        raise SRSError("G1 inverse FFT returned the wrong number of points")
    # ffjavascript's root w_ff = w^j for halo2's root w: its output i is halo2's Lagrange point m = i*j mod n
    w = pow(ROOT_OF_UNITY_2_28, 1 << (28 - k), FR)
    powers, x = {}, 1
    for e in range(n):
        powers[x] = e
        x = x * w % FR
    if w_ff not in powers:
        raise SRSError("ffjavascript's FFT root is not in halo2's domain")
    jinv = pow(powers[w_ff], -1, n)
    with open(out, "wb") as f:
        f.write(struct.pack("<I", k))
        f.write(g)
        for m in range(n):
            i = m * jinv % n
            f.write(lag[G1_RAW * i : G1_RAW * (i + 1)])
        f.write(tail)
