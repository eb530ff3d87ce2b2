"""Install and inspect the pinned EVM toolchain: what ``dsperse toolchain install`` and ``status`` run.

Why it lives in the package: a wheel carries this module, the pinned npm manifest (``npm/``) and
the solc-js wrapper, so ``pip install dsperse-ray`` plus one command gives the same toolchain a
source checkout gets (``scripts/install_toolchain.sh`` only calls :func:`install`).

:func:`install` runs ``npm ci`` of the packaged manifest in :func:`~.toolchain.toolchain_dir`
(skipped when the packages there already match it), writes the solc wrapper EZKL looks for at
``~/.svm/0.8.20/solc-0.8.20``, then checks that every tool answers.
"""
from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dsperse.chain.toolchain import (
    ANVIL_PACKAGE,
    CAST_PACKAGE,
    INSTALL_COMMAND,
    MANIFEST_DIR,
    SOLC_VERSION,
    Toolchain,
    _checkout_node_modules,
    _node_modules_dirs,
    ensure_ezkl_solc,
    ezkl_solc_path,
    find_toolchain,
    locate,
    package_version,
    toolchain_dir,
)  # fmt: skip
from dsperse.errors import ToolchainError

MIN_NODE_MAJOR = 20
"""The foundry npm packages declare engines.node >= 20."""
NPM_TIMEOUT_S = 1800
MANIFEST_FILES = ("package.json", "package-lock.json")
PROBE = {
    "language": "Solidity",
    "sources": {"P.sol": {"content": "pragma solidity ^0.8.20; contract P { function f() external pure returns (uint256) { return 1; } }"}},
    "settings": {"outputSelection": {"*": {"*": ["evm.bytecode.object"]}}},
}  # fmt: skip
Echo = Callable[[str], None]


@dataclass(frozen=True)
class Check:
    """One tool's answer: what ran, what it said, and whether that is what the pin asks for."""

    tool: str
    path: Path | None
    detail: str
    ok: bool

    def line(self) -> str:
        mark = "ok " if self.ok else "BAD"
        return f"  {mark} {self.tool:<13} {self.path or '-'}  {self.detail}"


def pinned() -> dict[str, str]:
    """npm package -> exact version, from the packaged manifest."""
    return dict(json.loads((MANIFEST_DIR / "package.json").read_text())["dependencies"])


def require_node() -> tuple[Path, Path]:
    """node and npm from $PATH, or a :class:`ToolchainError` saying which one is missing and why it is needed."""
    why = "dsperse installs its EVM toolchain (anvil, cast, solc-js 0.8.20) with npm"
    node = shutil.which("node")
    if node is None:
        raise ToolchainError(f"Node.js not found on PATH: {why}; install Node.js >= {MIN_NODE_MAJOR} and npm "
                             f"(e.g. apt-get install nodejs npm), then run `{INSTALL_COMMAND}`")  # fmt: skip
    npm = shutil.which("npm")
    if npm is None:
        raise ToolchainError(f"npm not found on PATH (node is at {node}): {why}; install npm "
                             f"(e.g. apt-get install npm), then run `{INSTALL_COMMAND}`")  # fmt: skip
    version = _answer([node, "--version"]).strip().lstrip("v")
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise ToolchainError(f"{node} --version printed {version!r}, not a Node.js version") from None
    if major < MIN_NODE_MAJOR:
        raise ToolchainError(f"Node.js {version} at {node} is too old: the pinned foundry npm packages need "
                             f"node >= {MIN_NODE_MAJOR}")  # fmt: skip
    if not (sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")):
        raise ToolchainError(f"the pinned anvil/cast npm packages are Linux x86-64 builds; this is {sys.platform} "
                             f"{platform.machine()}: put foundry's anvil and cast on PATH and solc-js {SOLC_VERSION} "
                             "in $DSPERSE_NODE_MODULES instead")  # fmt: skip
    return Path(node), Path(npm)


def installed_versions(dest: Path) -> dict[str, str | None]:
    """Each pinned package's installed version under ``dest/node_modules`` (None when absent)."""
    return {name: package_version(dest / "node_modules" / name) for name in pinned()}


def is_installed(dest: Path) -> bool:
    """True when ``dest`` holds this package's manifest and exactly the pinned versions (npm ci can be skipped)."""
    same_manifest = all(
        (dest / f).is_file() and (dest / f).read_bytes() == (MANIFEST_DIR / f).read_bytes() for f in MANIFEST_FILES
    )
    return same_manifest and installed_versions(dest) == pinned()


def install(dest: Path | str | None = None, *, force: bool = False, echo: Echo = print) -> Toolchain:
    """Install the pinned toolchain into ``dest`` (default :func:`toolchain_dir`) and check that it answers.

    Idempotent: npm runs only when ``dest`` lacks the pinned packages (or ``force``); the wrapper and the
    checks run every time, so a second call repairs ``~/.svm`` and reports what is there.
    """
    from filelock import FileLock

    dest = Path(dest if dest is not None else toolchain_dir()).expanduser().resolve()
    _, npm = require_node()
    dest.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest / ".install.lock")):  # two installs at once would both delete node_modules
        if force or not is_installed(dest):
            echo(f"toolchain: npm ci of the pinned manifest ({_pins_text()}) into {dest}")
            for name in MANIFEST_FILES:
                shutil.copyfile(MANIFEST_DIR / name, dest / name)
            _npm_ci(npm, dest)
            if not is_installed(dest):
                raise ToolchainError(f"npm ci in {dest} finished but the installed versions are {installed_versions(dest)}, "
                                     f"not {pinned()}")  # fmt: skip
        else:
            echo(f"toolchain: {dest} already holds the pinned packages; npm skipped (--force to reinstall)")
    tc = find_toolchain(dest / "node_modules")
    solc = ensure_ezkl_solc(tc)
    checks = check(tc, solc, dest / "node_modules")
    for c in checks:
        echo(c.line())
    if bad := [c.tool for c in checks if not c.ok]:
        raise ToolchainError(f"toolchain installed in {dest} but {', '.join(bad)} did not answer as pinned (see above)")
    if (dest / "node_modules") not in _node_modules_dirs():
        echo(f"note: {dest} is not where dsperse looks by default ({toolchain_dir()}); "
             f"export DSPERSE_TOOLCHAIN={dest} to use it")  # fmt: skip
    return tc


def ensure_toolchain(*, auto_install: bool = True, echo: Echo = print) -> Toolchain:
    """The toolchain if found; else install it once into :func:`toolchain_dir` (``dsperse demo`` uses this)."""
    try:
        return find_toolchain()
    except ToolchainError as exc:
        if not auto_install:
            raise
        echo(f"{str(exc).split(';')[0]}; installing it now into {toolchain_dir()} from the npm registry "
             f"(one time; the same as `{INSTALL_COMMAND}`)")  # fmt: skip
    install(echo=echo)
    return find_toolchain()


def check(tc: Toolchain, solc: Path, node_modules: Path | None = None) -> list[Check]:
    """Ask every tool for its version, and have EZKL's solc compile a probe contract."""
    pins = pinned()
    out = [
        _version_check("anvil", tc.anvil, pins[ANVIL_PACKAGE]),
        _version_check("cast", tc.cast, pins[CAST_PACKAGE]),
        _version_check("node", tc.node, None),
        Check("solc-js", tc.solc_js, package_version(tc.solc_js) or "?", package_version(tc.solc_js) == SOLC_VERSION),
        _version_check("ezkl solc", solc, f"Version: {SOLC_VERSION}"),
    ]
    try:
        compiled = _answer([str(solc), "--standard-json"], stdin=json.dumps(PROBE))
        ok = '"object":"60' in compiled
        out.append(Check("probe compile", solc, "compiled a probe contract" if ok else compiled[-200:], ok))
    except ToolchainError as exc:
        out.append(Check("probe compile", solc, str(exc), False))
    if node_modules is not None and "ffjavascript" in pins:
        have = package_version(node_modules / "ffjavascript")
        out.append(Check("ffjavascript", node_modules / "ffjavascript", f"{have} (aggregation's SRS shrink)",
                         have == pins["ffjavascript"]))  # fmt: skip
    return out


def status() -> tuple[list[str], bool]:
    """Lines saying where each tool is found (and from which search place), its version, and what is missing."""
    dirs = _node_modules_dirs()
    dest = toolchain_dir()
    state = "holds the pinned packages" if is_installed(dest) else "not installed there"
    lines = [f"pinned ({MANIFEST_DIR}): {_pins_text()}", f"install dir: {dest}  [{state}]",
             "search order: " + ", ".join(_label(d, dirs) + f" {d}" for d in dirs) + ", $PATH"]  # fmt: skip
    found = locate()
    pins = pinned()
    want = {"anvil": pins[ANVIL_PACKAGE], "cast": pins[CAST_PACKAGE], "node": None}
    for tool, path in found.items():
        if path is None:
            lines.append(f"  MISSING {tool}")
        elif tool == "solc_js":
            lines.append(f"  found   solc-js       {path}  {package_version(path)}  [{_label(path, dirs)}]")
        else:
            c = _version_check(tool, path, want[tool])
            lines.append(f"  found   {tool:<13} {path}  {c.detail}  [{_label(path, dirs)}]")
    solc = ezkl_solc_path()
    lines.append(f"  {'found  ' if solc.is_file() else 'MISSING'} ezkl solc     {solc}  {_solc_kind(solc)}")
    ok = all(p is not None for p in found.values())
    lines.append("complete" if ok else f"incomplete: run `{INSTALL_COMMAND}` (needs Node.js >= {MIN_NODE_MAJOR} and npm)")
    if ok and not solc.is_file():
        lines.append(f"note: the ezkl solc wrapper is written on first use (or by `{INSTALL_COMMAND}`)")
    return lines, ok


# -- helpers ------------------------------------------------------------------------


def _pins_text() -> str:
    return ", ".join(f"{k.rsplit('/', 1)[-1]} {v}" for k, v in pinned().items())


def _npm_ci(npm: Path, dest: Path) -> None:
    # --prefer-offline: the lockfile pins exact versions and hashes, so a cached tarball is as good as a fetched one
    cmd = [str(npm), "ci", "--no-audit", "--no-fund", "--prefer-offline"]
    try:
        proc = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise ToolchainError(f"npm ci in {dest} took over {NPM_TIMEOUT_S}s (is the npm registry reachable?)") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ToolchainError(f"npm ci in {dest} failed (exit {proc.returncode}); it needs the npm registry or a "
                             f"warm npm cache ($npm_config_cache):\n{tail}")  # fmt: skip


def _answer(cmd: list[str], stdin: str | None = None) -> str:
    """stdout of a tool that must exit 0 within a minute, else a ToolchainError."""
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolchainError(f"{cmd[0]} did not run: {exc}") from exc
    if proc.returncode != 0:
        raise ToolchainError(f"{' '.join(cmd[:2])} exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return proc.stdout


def _version_check(tool: str, path: Path, want: str | None) -> Check:
    try:
        text = _answer([str(path), "--version"])
    except ToolchainError as exc:
        return Check(tool, path, str(exc), False)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    shown = next((ln for ln in lines if want and want in ln), lines[0] if lines else "")
    return Check(tool, path, shown, want is None or want in text)


def _label(path: Path, dirs: list[Path]) -> str:
    """Which search place ``path`` came from."""
    from dsperse.config import DsperseConfig

    env = DsperseConfig.from_env().chain.node_modules
    for d in dirs:
        if path == d or d in path.parents:
            if env is not None and d == env:
                return "$DSPERSE_NODE_MODULES"
            if d == toolchain_dir() / "node_modules":
                return "install dir"
            if d == _checkout_node_modules():
                return "source checkout"
            return "./node_modules"
    return "$PATH"


def _solc_kind(solc: Path) -> str:
    """What sits where EZKL looks for solc: our wrapper (and the solc-js it loads), a native binary, or nothing."""
    if not solc.is_file():
        return ""
    head = solc.read_bytes()[:2000].decode(errors="replace")
    if "solc-js" not in head:
        return "native solc binary"
    target = m.group(1) if (m := re.search(r'DSPERSE_SOLC_DIR \|\| "([^"]*)"', head)) else "?"
    answers = f"Version: {SOLC_VERSION}" in (_answer_or_none([str(solc), "--version"]) or "")
    return f"solc-js wrapper -> {target}" + ("" if answers else "  (does NOT answer --version: reinstall)")


def _answer_or_none(cmd: list[str]) -> str | None:
    try:
        return _answer(cmd)
    except ToolchainError:
        return None
