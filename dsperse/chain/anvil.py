"""A local EVM chain (foundry's anvil) that this process starts, owns and stops.

Used by tests, benchmarks and ``dsperse.chain.local()``. It binds 127.0.0.1
only, on a free port, with anvil's default funded dev accounts. Only the
process started here is ever stopped.
"""
from __future__ import annotations

import atexit
import json
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from dsperse.chain.toolchain import find_toolchain
from dsperse.errors import ChainUnavailableError, ToolchainError

DEFAULT_GAS_LIMIT = 30_000_000
"""anvil's default block gas limit, also Ethereum mainnet's for years: the bench caps slice counts with it."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rpc_ready(url: str, timeout: float = 1.0) -> bool:
    """True when ``url`` answers ``eth_chainId``."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return "result" in json.loads(r.read())
    except (OSError, ValueError, urllib.error.URLError):
        return False


@dataclass
class LocalChain:
    """An anvil process. Use as a context manager, or call :meth:`start` / :meth:`stop`.

    ``accounts`` holds ``(address, private_key)`` of the funded dev accounts.
    """

    gas_limit: int = DEFAULT_GAS_LIMIT
    code_size_limit: int | None = None
    """Runtime code size limit in bytes; None keeps EIP-170 (24,576)."""
    chain_id: int = 31337
    state: Path | None = None
    """If set, anvil loads its state from this file at start and writes it back at stop (``--state``),
    so a stopped chain can come back with its contracts, e.g. to test a node outage."""
    startup_timeout: float = 30.0
    port: int = 0
    url: str = ""
    accounts: list[tuple[str, str]] = field(default_factory=list)
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def start(self) -> "LocalChain":
        if self._proc is not None:
            return self
        anvil = find_toolchain().anvil
        self._tmp = tempfile.TemporaryDirectory(prefix="dsperse-anvil-")
        cfg = Path(self._tmp.name) / "accounts.json"
        last_err = ""
        for _ in range(3):  # a free port can be taken between probe and bind: retry on a new one
            self.port = self.port or _free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            cmd = [
                str(anvil), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", str(self.chain_id),
                "--gas-limit", str(self.gas_limit), "--accounts", "10", "--config-out", str(cfg),
            ]  # fmt: skip
            if self.state is not None:
                cmd += ["--state", str(self.state)]
            if self.code_size_limit is not None:
                cmd += ["--code-size-limit", str(self.code_size_limit)]
            log = open(Path(self._tmp.name) / "anvil.log", "wb")
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
            atexit.register(self.stop)
            if self._wait_ready():
                self._read_accounts(cfg)
                return self
            last_err = (Path(self._tmp.name) / "anvil.log").read_text(errors="replace")[-1000:]
            self._kill()
            self.port = 0
        raise ChainUnavailableError(f"anvil did not start: {last_err}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            if rpc_ready(self.url, timeout=0.5):
                return True
            time.sleep(0.05)
        return False

    def _read_accounts(self, cfg: Path) -> None:
        deadline = time.monotonic() + 5
        while not cfg.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            data = json.loads(cfg.read_text())
        except (OSError, ValueError) as exc:
            raise ToolchainError(f"anvil wrote no readable account list ({exc})") from exc
        from eth_account import Account

        self.accounts = [(Account.from_key(k).address, k) for k in data["private_keys"]]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the anvil this object started (and nothing else). Safe to call twice."""
        self._kill()
        atexit.unregister(self.stop)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "LocalChain":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


Anvil = LocalChain
