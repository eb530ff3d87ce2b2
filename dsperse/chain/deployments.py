"""Where the registry and the slice verifiers live on each chain, remembered between runs.

A small JSON file (default ``<cache>/evm/deployments.json``, or
``$DSPERSE_DEPLOYMENTS``) maps chain id -> registry and verifier addresses,
each with the keccak of its runtime code. A record is trusted only while the
chain still holds that exact code there: a fresh anvil reuses chain id 31337
and the same addresses for other contracts, so stale entries are ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from filelock import FileLock

from dsperse.util import storage


def default_path() -> Path:
    """``chain.deployments`` ($DSPERSE_DEPLOYMENTS), else ``<cache>/evm/deployments.json``."""
    from dsperse.config import DsperseConfig

    cfg = DsperseConfig.from_env()
    return cfg.chain.deployments or cfg.paths.cache / "evm" / "deployments.json"


@dataclass
class Deployments:
    """Per-chain address book; every write is atomic and under a file lock (several processes may deploy)."""

    path: Path

    def _load(self) -> dict:
        return storage.read_json(self.path) if self.path.is_file() else {}

    def _update(self, fn: Callable[[dict], None]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            data = self._load()
            fn(data)
            storage.write_json(self.path, data)

    def get(self, chain_id: int, kind: str, name: str) -> dict | None:
        """``kind`` is "registry" (name "ProofOfInference") or "verifier" (name = verifier key)."""
        return self._load().get(str(chain_id), {}).get(kind, {}).get(name)

    def put(self, chain_id: int, kind: str, name: str, address: str, codehash: str, **extra) -> None:
        def upd(data: dict) -> None:
            data.setdefault(str(chain_id), {}).setdefault(kind, {})[name] = {"address": address, "codehash": codehash, **extra}

        self._update(upd)
