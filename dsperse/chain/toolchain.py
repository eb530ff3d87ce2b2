"""Find the pinned EVM toolchain (anvil, cast, node + solc-js 0.8.20) and compile Solidity with it.

The toolchain comes from npm: the pinned manifest (``npm/package.json`` and
``npm/package-lock.json``, package data next to this file, so a wheel carries
it) is installed by ``dsperse toolchain install`` (see :mod:`.install`) into
:func:`toolchain_dir`. No binary comes from anywhere but the npm registry.

Search order, first hit wins per tool: ``$DSPERSE_NODE_MODULES``, the
install dir's ``node_modules``, a source checkout's ``node_modules``,
``./node_modules``, then ``$PATH`` (anvil, cast and node only).

EZKL's verifier generator looks for solc at ``~/.svm/0.8.20/solc-0.8.20`` and
tries to download it otherwise; :func:`ensure_ezkl_solc` puts a node wrapper
around solc-js there (see ``solc_wrapper.js``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from dsperse.errors import ToolchainError
from dsperse.util import storage

SOLC_VERSION = "0.8.20"
INSTALL_COMMAND = "dsperse toolchain install"
INSTALL_HINT = f"run `{INSTALL_COMMAND}` (needs Node.js >= 20 and npm; fetches the pinned npm packages once)"
MANIFEST_DIR = Path(__file__).with_name("npm")
"""The pinned npm manifest (package.json + package-lock.json): the one source of truth for tool versions."""
REPO_ROOT = Path(__file__).resolve().parents[2]
WRAPPER_TEMPLATE = Path(__file__).with_name("solc_wrapper.js")
EIP170_LIMIT = 24_576
"""Largest runtime bytecode (bytes) mainnet accepts; anvil enforces it too unless told otherwise."""
ANVIL_PACKAGE = "@foundry-rs/anvil-linux-amd64"
CAST_PACKAGE = "@foundry-rs/cast-linux-amd64"


def toolchain_dir() -> Path:
    """Where ``dsperse toolchain install`` puts the npm packages: ``$DSPERSE_TOOLCHAIN``, else ``<cache>/toolchain``.

    ``<cache>`` is ``$DSPERSE_CACHE`` or ``~/.cache/dsperse``, so a wheel install needs no source checkout.
    """
    from dsperse.config import DsperseConfig

    cfg = DsperseConfig.from_env()
    return cfg.chain.toolchain or cfg.paths.cache / "toolchain"


def _checkout_node_modules() -> Path | None:
    """``node_modules`` of a source checkout (older installs put it there); None for a wheel install."""
    return REPO_ROOT / "node_modules" if (REPO_ROOT / "pyproject.toml").is_file() else None


@dataclass(frozen=True)
class Toolchain:
    anvil: Path
    cast: Path
    node: Path
    solc_js: Path
    """Directory of the npm ``solc`` package (solc-js)."""


@dataclass(frozen=True)
class CompiledContract:
    """ABI and bytecode of one contract, as solc's standard-json reports them."""

    name: str
    abi: list
    bytecode: str
    """Creation code, ``0x``-prefixed hex."""
    deployed_bytecode: str
    """Runtime code, ``0x``-prefixed hex; its size is what EIP-170 limits."""

    @property
    def runtime_size(self) -> int:
        return (len(self.deployed_bytecode) - 2) // 2


def _node_modules_dirs() -> list[Path]:
    """Every ``node_modules`` searched, in order (srs_shrink looks for ffjavascript in the same places)."""
    from dsperse.config import DsperseConfig

    dirs = []
    if (env := DsperseConfig.from_env().chain.node_modules) is not None:
        dirs.append(env)
    dirs.append(toolchain_dir() / "node_modules")
    if (checkout := _checkout_node_modules()) is not None:
        dirs.append(checkout)
    dirs.append(Path.cwd() / "node_modules")
    return list(dict.fromkeys(dirs))  # a checkout is often also the cwd


def _find_bin(name: str, package: str, dirs: list[Path], path: bool = True) -> Path | None:
    for nm in dirs:
        p = nm / package / "bin" / name
        if p.is_file() and os.access(p, os.X_OK):
            return p
    found = shutil.which(name) if path else None
    return Path(found) if found else None


def _find_solc_js(dirs: list[Path]) -> Path | None:
    from dsperse.config import DsperseConfig

    chosen = DsperseConfig.from_env().chain.solc_dir  # $DSPERSE_SOLC_DIR: a solc-js package dir, used first
    if chosen is not None and (chosen / "soljson.js").is_file() and package_version(chosen) == SOLC_VERSION:
        return chosen
    for nm in dirs:
        p = nm / "solc"
        if (p / "soljson.js").is_file() and package_version(p) == SOLC_VERSION:
            return p
    return None


def package_version(pkg_dir: Path) -> str | None:
    """The ``version`` of an installed npm package directory, or None."""
    try:
        return json.loads((pkg_dir / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def locate(node_modules: Path | None = None) -> dict[str, Path | None]:
    """Each tool's path, or None: in ``node_modules`` only when given, else along the search order."""
    dirs = [node_modules] if node_modules is not None else _node_modules_dirs()
    on_path = node_modules is None
    return {
        "anvil": _find_bin("anvil", ANVIL_PACKAGE, dirs, on_path),
        "cast": _find_bin("cast", CAST_PACKAGE, dirs, on_path),
        "node": Path(p) if (p := shutil.which("node")) else None,
        "solc_js": _find_solc_js(dirs),
    }


def find_toolchain(node_modules: Path | None = None) -> Toolchain:
    """Locate every tool or raise :class:`ToolchainError` naming what is missing and how to install it."""
    found = locate(node_modules)
    missing = [("solc-js " + SOLC_VERSION if k == "solc_js" else k) for k, v in found.items() if v is None]
    if missing:
        where = f" in {node_modules}" if node_modules is not None else ""
        raise ToolchainError(f"EVM toolchain incomplete, missing: {', '.join(missing)}{where}; {INSTALL_HINT}")
    return Toolchain(**found)  # type: ignore[arg-type]


def missing_reason() -> str | None:
    """None when the toolchain is usable, else why not (for pytest skip messages)."""
    try:
        find_toolchain()
    except ToolchainError as exc:
        return str(exc)
    return None


# -- compiling -------------------------------------------------------------------


def _cache_root() -> Path:
    from dsperse.circuits.srs import cache_dir

    return cache_dir() / "evm"


def compile_solidity(
    sources: Mapping[str, Path | str],
    *,
    optimize_runs: int | None = 200,
    evm_version: str | None = None,
    cache: bool = True,
) -> dict[str, CompiledContract]:
    """Compile Solidity with solc-js 0.8.20 (standard-json) and return every contract by name.

    ``sources`` maps a unit name (e.g. ``"Verifier.sol"``) to a file path or to
    the source text. Results are cached by the hash of the compiler input, since
    compiling an EZKL verifier with solc-js takes seconds.
    """
    texts: dict[str, str] = {}
    for unit, src in sources.items():
        if isinstance(src, Path):
            if not src.is_file():
                raise ToolchainError(f"Solidity source {unit!r} not found: {src}")
            texts[unit] = src.read_text()
        else:
            texts[unit] = str(src)
    settings: dict = {
        "optimizer": {"enabled": optimize_runs is not None, "runs": optimize_runs or 200},
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
    }
    if evm_version:
        settings["evmVersion"] = evm_version
    std_in = json.dumps(
        {"language": "Solidity", "sources": {u: {"content": t} for u, t in texts.items()}, "settings": settings},
        sort_keys=True,
    )
    key = hashlib.sha256(f"solc-js {SOLC_VERSION}\n{std_in}".encode()).hexdigest()
    cached = _cache_root() / "solc" / f"{key}.json"
    if cache and cached.is_file():
        out = storage.read_json(cached)
    else:
        out = _run_solc(std_in)
        errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
        if errors:
            msg = "\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors)
            raise ToolchainError(f"Solidity compile failed:\n{msg[:4000]}")
        if cache:
            storage.write_json(cached, out)
    result: dict[str, CompiledContract] = {}
    for contracts in out.get("contracts", {}).values():
        for name, c in contracts.items():
            if name in result:
                raise ToolchainError(f"contract name {name!r} appears in two sources; rename one")
            result[name] = CompiledContract(
                name=name,
                abi=c["abi"],
                bytecode="0x" + c["evm"]["bytecode"]["object"],
                deployed_bytecode="0x" + c["evm"]["deployedBytecode"]["object"],
            )
    return result


def _run_solc(std_in: str) -> dict:
    tc = find_toolchain()
    env = dict(os.environ, DSPERSE_SOLC_DIR=str(tc.solc_js))
    proc = subprocess.run(
        [str(tc.node), str(WRAPPER_TEMPLATE), "--standard-json"],
        input=std_in.encode(),
        capture_output=True,
        env=env,
        timeout=600,
    )
    if proc.returncode != 0:
        raise ToolchainError(f"solc-js failed (exit {proc.returncode}): {proc.stderr.decode()[-2000:]}")
    try:
        return json.loads(proc.stdout)
    except ValueError as exc:
        raise ToolchainError(f"solc-js printed no JSON ({exc}); stderr: {proc.stderr.decode()[-2000:]}") from exc


# -- the solc EZKL runs ------------------------------------------------------------


def ezkl_solc_path() -> Path:
    """Where EZKL (through svm-rs) looks for solc 0.8.20."""
    return Path.home() / ".svm" / SOLC_VERSION / f"solc-{SOLC_VERSION}"


def render_wrapper(tc: Toolchain) -> str:
    text = WRAPPER_TEMPLATE.read_text()
    return text.replace("__NODE__", str(tc.node)).replace("__SOLC_DIR__", str(tc.solc_js))


def ensure_ezkl_solc(tc: Toolchain | None = None) -> Path:
    """Install (or refresh) the solc-js wrapper where EZKL looks, and check it answers like solc 0.8.20.

    ``tc`` defaults to :func:`find_toolchain`. Leaves a real solc binary alone if one is already there
    and reports 0.8.20.
    """
    tc = tc or find_toolchain()
    dest = ezkl_solc_path()
    want = render_wrapper(tc)
    current = dest.read_bytes() if dest.is_file() else None
    if current is not None and current.decode(errors="replace") != want and _reports_version(dest):
        if not current.startswith(b"#!") or b"solc-js" not in current[:600]:
            return dest  # a native solc 0.8.20 installed by svm or by hand: keep it
    if current is None or current.decode(errors="replace") != want:
        storage.write_bytes(dest, want.encode())
        dest.chmod(0o755)
    if not _reports_version(dest):
        raise ToolchainError(f"{dest} does not answer `--version` as solc {SOLC_VERSION}; {INSTALL_HINT}")
    return dest


def _reports_version(path: Path) -> bool:
    try:
        proc = subprocess.run([str(path), "--version"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and f"Version: {SOLC_VERSION}" in proc.stdout.decode(errors="replace")

