"""Toolchain discovery and install decisions, solc-js compilation, the EZKL solc wrapper, and the pure value
conversions of the client. (A real `dsperse toolchain install` from a wheel: tests/test_wheel_install.py.)"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from eth_utils import keccak

from dsperse import cli
from dsperse.chain import install as inst, toolchain as tc
from dsperse.chain.client import FIELD, Submission, expected_hashes, felt_to_uint, job_id_bytes, signed
from dsperse.errors import ToolchainError


def test_missing_toolchain_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(tc, "_node_modules_dirs", lambda: [tmp_path])
    monkeypatch.setattr(tc.shutil, "which", lambda name: None)
    with pytest.raises(ToolchainError, match="run `dsperse toolchain install`") as info:
        tc.find_toolchain()
    assert "anvil" in str(info.value) and "solc-js 0.8.20" in str(info.value) and "scripts/" not in str(info.value)


def _fake_install(dest: Path, versions: dict[str, str] | None = None) -> Path:
    """A node_modules under ``dest`` laid out as npm ci of the pinned manifest leaves it (tools are tiny scripts)."""
    nm = dest / "node_modules"
    for name, version in (versions or inst.pinned()).items():
        (nm / name).mkdir(parents=True, exist_ok=True)
        (nm / name / "package.json").write_text(json.dumps({"name": name, "version": version}))
    for tool, pkg in (("anvil", tc.ANVIL_PACKAGE), ("cast", tc.CAST_PACKAGE)):
        exe = nm / pkg / "bin" / tool
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text(f"#!/bin/sh\necho '{tool} Version: 1.7.1'\n")
        exe.chmod(0o755)
    (nm / "solc" / "soljson.js").write_text("")
    for f in inst.MANIFEST_FILES:
        shutil.copyfile(tc.MANIFEST_DIR / f, dest / f)
    return nm


def test_install_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("DSPERSE_TOOLCHAIN", raising=False)
    monkeypatch.setenv("DSPERSE_CACHE", str(tmp_path / "cache"))
    assert tc.toolchain_dir() == tmp_path / "cache" / "toolchain"
    monkeypatch.setenv("DSPERSE_TOOLCHAIN", str(tmp_path / "tc"))
    assert tc.toolchain_dir() == tmp_path / "tc"
    assert tc._node_modules_dirs()[0] == tmp_path / "tc" / "node_modules"


def test_tools_in_the_install_dir_are_found_first(monkeypatch, tmp_path):
    monkeypatch.delenv("DSPERSE_NODE_MODULES", raising=False)
    monkeypatch.setenv("DSPERSE_TOOLCHAIN", str(tmp_path / "tc"))
    nm = _fake_install(tmp_path / "tc")
    found = tc.find_toolchain()
    assert found.anvil == nm / tc.ANVIL_PACKAGE / "bin" / "anvil" and found.solc_js == nm / "solc"
    assert inst.is_installed(tmp_path / "tc")
    lines, ok = inst.status()
    assert ok and any("anvil" in ln and "[install dir]" in ln for ln in lines), lines


def test_npm_runs_only_when_the_pinned_packages_are_not_there(tmp_path):
    """What makes `dsperse toolchain install` idempotent: another version, or another manifest, means npm ci."""
    assert not inst.is_installed(tmp_path)
    _fake_install(tmp_path)
    assert inst.is_installed(tmp_path)
    _fake_install(tmp_path, {"solc": "0.8.19"})
    assert not inst.is_installed(tmp_path)
    _fake_install(tmp_path)
    (tmp_path / "package-lock.json").write_text("{}")
    assert not inst.is_installed(tmp_path)


def test_install_without_node_or_npm_names_what_is_missing(monkeypatch):
    monkeypatch.setattr(inst.shutil, "which", lambda name: None)
    with pytest.raises(ToolchainError, match="Node.js not found on PATH.*npm.*dsperse toolchain install"):
        inst.install()
    monkeypatch.setattr(inst.shutil, "which", lambda name: "/usr/bin/node" if name == "node" else None)
    with pytest.raises(ToolchainError, match="npm not found on PATH"):
        inst.install()


def test_demo_installs_a_missing_toolchain_before_proving(monkeypatch, tmp_path, capsys):
    calls = []

    def missing(node_modules=None):
        if not calls:
            raise ToolchainError("EVM toolchain incomplete, missing: anvil; " + tc.INSTALL_HINT)
        return "toolchain"

    monkeypatch.setattr(inst, "find_toolchain", missing)
    monkeypatch.setattr(inst, "install", lambda dest=None, **kw: calls.append("install"))
    monkeypatch.setattr("dsperse.tools.demo.run_demo", lambda **kw: calls.append("demo") or 0)
    assert cli.main(["demo", "-w", str(tmp_path)]) == 0
    assert calls == ["install", "demo"]
    assert "demo: EVM toolchain incomplete, missing: anvil; installing it now into" in capsys.readouterr().out

    calls.clear()
    assert cli.main(["demo", "-w", str(tmp_path), "--no-install"]) == 1  # refuses early (the environment lacks a tool: exit 1, as toolchain status)
    assert calls == [] and "dsperse toolchain install" in capsys.readouterr().err


def test_toolchain_status_exits_1_and_names_the_install_command(monkeypatch, capsys):
    monkeypatch.setattr(inst, "locate", lambda: {"anvil": None, "cast": None, "node": None, "solc_js": None})
    assert cli.main(["toolchain", "status"]) == 1
    out = capsys.readouterr().out
    assert "MISSING anvil" in out and "run `dsperse toolchain install`" in out


def test_compile_solidity_returns_abi_and_bytecode(toolchain):
    src = "pragma solidity ^0.8.20; contract Answer { function get() external pure returns (uint256) { return 42; } }"
    out = tc.compile_solidity({"Answer.sol": src})
    c = out["Answer"]
    assert c.abi[0]["name"] == "get" and c.bytecode.startswith("0x60") and 0 < c.runtime_size < 1000
    with pytest.raises(ToolchainError, match="ParserError|DeclarationError|TypeError"):
        tc.compile_solidity({"Bad.sol": "pragma solidity ^0.8.20; contract Bad { function f( }"}, cache=False)


def test_ezkl_solc_wrapper_answers_like_solc(toolchain):
    path = tc.ensure_ezkl_solc()
    version = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True).stdout
    assert "Version: 0.8.20" in version
    std_in = {"language": "Solidity", "sources": {"A.sol": {"content": "pragma solidity ^0.8.20; contract A {}"}},
              "settings": {"outputSelection": {"*": {"*": ["evm.bytecode.object"]}}}}  # fmt: skip
    out = subprocess.run([str(path), "--standard-json"], input=json.dumps(std_in), capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["contracts"]["A.sol"]["A"]["evm"]["bytecode"]["object"]
    bad = subprocess.run([str(path), "--bin", "A.sol"], capture_output=True, text=True)
    assert bad.returncode != 0 and "unsupported flag" in bad.stderr


def test_field_values_map_to_signed_integers():
    assert felt_to_uint("01" + "00" * 31) == 1
    assert felt_to_uint("0001" + "00" * 30) == 256  # little-endian
    assert signed(5) == 5 and signed(FIELD - 631) == -631 and signed(FIELD // 2) == FIELD // 2


def test_job_ids_become_bytes32():
    assert job_id_bytes("job-1") == keccak(text="job-1")
    raw = bytes(range(32))
    assert job_id_bytes(raw) == raw and job_id_bytes("0x" + raw.hex()) == raw and job_id_bytes(raw.hex()) == raw
    with pytest.raises(ValueError):
        job_id_bytes(b"short")


def test_expected_hashes_pack_like_abi_encode_packed():
    sub = Submission("0x" + "00" * 32, "0x" + "11" * 32, ("0x",), ((7, 8, FIELD - 1),))
    ih, oh = expected_hashes(sub, num_inputs=1, num_outputs=2)
    assert ih == "0x" + keccak((7).to_bytes(32, "big")).hex()
    assert oh == "0x" + keccak((8).to_bytes(32, "big") + (-1).to_bytes(32, "big", signed=True)).hex()
    assert Submission.from_json(json.loads(json.dumps(sub.to_json()))) == sub
