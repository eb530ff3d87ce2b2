"""The proof-system seam: only dsperse/proofsystem/ imports ``ezkl``, the registry, and a real EZKL round trip
(witness, prove, verify, a tampered proof rejected) through the interface on a cached slice of the zoo MLP."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import dsperse
from dsperse import proofsystem
from dsperse.errors import DsperseError, MissingArtifactError, ProofError, VerificationError
from dsperse.proofsystem import ProofSystem, ProofSystemError

PACKAGE = Path(dsperse.__file__).resolve().parent
ALLOWED = PACKAGE / "proofsystem"
BACKEND = "ezkl"


def _imports_of(source: str, backend: str = BACKEND) -> list[int]:
    """Line numbers where ``source`` imports ``backend``: import / from-import at any depth (functions too),
    importlib.import_module("...") and __import__("...")."""

    def hits(name: str | None) -> bool:
        return name is not None and (name == backend or name.startswith(backend + "."))

    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(hits(a.name) for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and hits(node.module):
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if fname in ("import_module", "__import__") and isinstance(node.args[0].value, str) and hits(node.args[0].value):
                lines.append(node.lineno)
    return lines


def test_the_scan_sees_every_form_of_import():
    src = """
import os, ezkl
import ezkl.foo as f
from ezkl import gen_witness
def later():
    import ezkl
    from ezkl.sub import x
importlib.import_module("ezkl")
__import__("ezkl")
import ezkl_solc  # another package
from dsperse.proofsystem import ezkl  # our module, not the backend
from .ezkl import EzklProofSystem  # relative: ours
"""
    assert _imports_of(src) == [2, 3, 4, 6, 7, 8, 9]


def test_only_the_proofsystem_package_imports_ezkl():
    offenders = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50  # the whole package was walked
    for path in files:
        if ALLOWED in path.parents:
            continue
        for line in _imports_of(path.read_text()):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    assert not offenders, "import ezkl outside dsperse/proofsystem/ (call dsperse.proofsystem.get() instead): " + ", ".join(offenders)
    # and the scan is not vacuous: the implementation does import it
    assert _imports_of((ALLOWED / "ezkl.py").read_text())


def test_importing_dsperse_does_not_load_the_backend():
    code = "import sys, dsperse, dsperse.chain, dsperse.aggregation, dsperse.proofsystem; print('ezkl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the registry -------------------------------------------------------------------------------------------------
def test_get_the_default_system():
    ps = proofsystem.get()
    assert isinstance(ps, ProofSystem)
    assert ps.name == "ezkl" and ps.version == "22.3.0" and ps.is_available()
    assert proofsystem.get("ezkl").name == "ezkl"
    assert "ezkl" in proofsystem.available() and "ezkl" in proofsystem.known()
    assert proofsystem.cache_tag(ps) == "22.3.0"  # key ids made before the registry stay valid


def test_an_unknown_name_names_the_known_ones():
    with pytest.raises(ProofSystemError, match=r"unknown proof system 'plonky9'; known: .*ezkl") as info:
        proofsystem.get("plonky9")
    assert isinstance(info.value, DsperseError)


class FakeSystem:
    """Enough of a ProofSystem to be registered (the protocol is structural)."""

    name = "fake"
    version = "0.1"

    def __init__(self, available: bool = True):
        self.available = available

    def is_available(self) -> bool:
        return self.available

    def unavailable_reason(self) -> str:
        return "the fake prover is switched off"

    def __getattr__(self, attr):  # every other method of the protocol
        if attr in ProofSystem.__dict__:
            return lambda *a, **k: None
        raise AttributeError(attr)


@pytest.fixture
def registered():
    names = []

    def reg(name, factory):
        proofsystem.register(name, factory)
        names.append(name)

    yield reg
    for n in names:
        proofsystem.unregister(n)


def test_a_registered_system_is_returned_by_get(registered):
    fake = FakeSystem()
    registered("fake", lambda: fake)
    assert proofsystem.get("fake") is fake
    assert sorted(proofsystem.available()) == ["ezkl", "fake"]
    assert proofsystem.get().name == "ezkl"  # the default is untouched
    assert proofsystem.cache_tag(fake) == "fake 0.1"
    with pytest.raises(ProofSystemError, match="known: ezkl, fake"):
        proofsystem.get("nope")


def test_an_unavailable_system_says_why(registered):
    def broken():
        import dsperse_no_such_prover  # noqa: F401

    registered("broken", broken)
    registered("off", lambda: FakeSystem(available=False))
    with pytest.raises(ProofSystemError, match=r"'broken' is unavailable: ModuleNotFoundError: No module named 'dsperse_no_such_prover'"):
        proofsystem.get("broken")
    with pytest.raises(ProofSystemError, match="'off' is unavailable: the fake prover is switched off"):
        proofsystem.get("off")
    assert proofsystem.available() == ["ezkl"]
    with pytest.raises(ProofSystemError):
        proofsystem.unregister("ezkl")


# -- EZKL through the interface ------------------------------------------------------------------------------------
def test_field_conversions_and_poseidon():
    ps = proofsystem.get()
    felt = ps.float_to_felt(1.5, 7)
    assert isinstance(felt, str) and len(felt) == 64
    assert ps.felt_to_float(felt, 7) == 1.5
    h = ps.poseidon_hash([felt, ps.float_to_felt(-2.0, 7)])
    assert isinstance(h, list) and len(h) == 1 and h == ps.poseidon_hash([felt, ps.float_to_felt(-2.0, 7)])


def test_failures_arrive_as_the_stage_error(tmp_path):
    ps = proofsystem.get()
    with pytest.raises(ProofError, match=r"EZKL gen_witness \(slice 7\) failed: ") as info:
        ps.gen_witness(tmp_path / "no.json", tmp_path / "no.ezkl", tmp_path / "w.json", error=ProofError, context="slice 7")
    assert info.value.__cause__ is not None and proofsystem.reason(info.value)


def test_round_trip_witness_prove_verify_and_a_tampered_proof(mlp_circuits, mlp_input, tmp_path):
    ps = proofsystem.get()
    c = mlp_circuits[0]
    data = tmp_path / "in.json"
    data.write_text(json.dumps({"input_data": [mlp_input.flatten().tolist()]}))
    ps.gen_witness(data, c.compiled, tmp_path / "w.json", c.vk, c.srs, context="slice 0")
    w = ps.read_witness(tmp_path / "w.json")
    assert list(w.inputs[0]) == [ps.float_to_felt(float(v), c.input_scale) for v in mlp_input.flatten()]
    assert w.input_commitment is None and w.output_commitment is not None  # public input, committed output
    assert len(w.outputs) == 1 and len(w.outputs[0]) == 8
    ps.prove(tmp_path / "w.json", c.compiled, c.pk, tmp_path / "p.json", c.srs)
    assert ps.verify(tmp_path / "p.json", c.settings, c.vk, c.srs) is True
    pf = ps.read_proof(tmp_path / "p.json")
    assert pf.transcript == "evm" and pf.instances[0][: len(w.inputs[0])] == w.inputs[0]
    assert pf.proof[c.layout[0].offset : c.layout[0].offset + 64]  # the committed output's first column sits there
    assert ps.commitment_layout(json.loads(Path(c.settings).read_text())) == c.layout

    proof = json.loads((tmp_path / "p.json").read_text())
    raw = bytearray(bytes.fromhex(proof["hex_proof"][2:]))
    raw[200] ^= 0x01
    proof["hex_proof"], proof["proof"] = "0x" + raw.hex(), list(raw)
    (tmp_path / "bad.json").write_text(json.dumps(proof))
    try:
        ok = ps.verify(tmp_path / "bad.json", c.settings, c.vk, c.srs, context="slice 0")
    except VerificationError as exc:
        assert str(exc).startswith("EZKL verify (slice 0) failed: ") and proofsystem.reason(exc)
    else:
        assert ok is False


def test_reading_a_missing_or_foreign_proof_or_witness_names_the_problem(tmp_path):
    ps = proofsystem.get()
    with pytest.raises(MissingArtifactError):
        ps.read_proof(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "other.json").write_text(json.dumps({"hex_proof": "0xzz", "instances": []}))
    for name, says in (("bad.json", "not valid JSON"), ("list.json", "holds a list"), ("other.json", "not an EZKL proof")):
        with pytest.raises(ProofError, match=says):
            ps.read_proof(tmp_path / name)
    with pytest.raises(ProofError, match="not an EZKL witness"):
        ps.read_witness(_write(tmp_path / "w.json", {"outputs": 3}))


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_evm_calldata_reads_an_evm_transcript_proof_through_the_interface(mlp_run, tmp_path):
    """The aggregate's calldata reader on a single EVM-transcript proof (the same file format; a real aggregate
    needs ~20 GB: tests/aggregation, bigmem)."""
    from dsperse.aggregation.aggregate import evm_calldata
    from dsperse.chain.encoding import felts_to_uints
    from dsperse.errors import AggregationError

    pf = proofsystem.get().read_proof(mlp_run.proofs[0].path)
    pb, inst = evm_calldata(mlp_run.proofs[0].path)
    assert pb == pf.proof and inst == felts_to_uints(f for col in pf.instances for f in col) and len(pb) > 1000
    with pytest.raises(AggregationError, match="not found"):
        evm_calldata(tmp_path / "none.json")
