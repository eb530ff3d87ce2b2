"""A hashed model input (issue 11, item 4): slice 0's proof states one Poseidon hash instead of every input element.

Real EZKL proofs of the zoo MLP with ``input_visibility="hashed"``, a real anvil: the receipt's input commitment
is keccak256 of that hash, which a requester computes from the input alone (quantize, Poseidon, keccak).
"""
from __future__ import annotations

import pytest
from eth_utils import keccak

import dsperse
from dsperse.circuits.build import AUTO_HASH_MIN_INPUTS, CircuitConfig, resolve_input_visibility
from dsperse.errors import VerificationError
from dsperse.linking.receipts import input_instances

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hashed_run(zoo_model, mlp_input, cache_dir, tmp_path_factory) -> dsperse.Run:
    plan = dsperse.slice(zoo_model("mlp"), tmp_path_factory.mktemp("hashed-slices"), max_slices=3, strategy="layers")
    circuits = dsperse.compile(plan, cache=cache_dir, calibration_input=mlp_input,
                               config=CircuitConfig(input_visibility="hashed"))  # fmt: skip
    return dsperse.prove(plan, mlp_input, tmp_path_factory.mktemp("hashed-run"), circuits=circuits, job_id="hashed-1",
                         progress=False)  # fmt: skip


def test_hashed_input_run_states_the_inputs_poseidon_hash(hashed_run, mlp_input):
    r = hashed_run.receipt
    assert r.input_visibility == "hashed" and hashed_run.circuits[0].input_visibility == "hashed"
    want = input_instances(mlp_input, hashed_run.circuits[0].input_scale, "hashed")
    assert len(want) == 1 and r.input_felts == tuple(want)  # one instance, whatever the input's size
    assert dsperse.verify(hashed_run, expected_input=mlp_input, reference=True)


def test_hashed_input_run_for_another_input_is_rejected(hashed_run, mlp_input):
    other = mlp_input.copy()
    other[0, 0] += 0.5
    with pytest.raises(VerificationError, match="different input"):
        dsperse.verify(hashed_run, expected_input=other)


def test_hashed_input_receipt_on_chain_commits_to_the_requesters_hash(toolchain, hashed_run, mlp_run, mlp_input, tmp_path):
    """The chain stores keccak256(Poseidon(x)) as the receipt's input hash: what a requester posts for input x,
    computed without the proofs. The public-input receipt of the same model pays for every input element."""
    from dsperse.chain.client import felt_to_uint, model_spec, registry_model_id
    from dsperse.sampling.actors import quantized_input_commitment
    from dsperse.sampling.market import felt_ints, input_commitment

    with dsperse.chain.local(deployments=tmp_path / "d.json") as c:
        key = c.register_model(hashed_run)
        assert c.model(key)["num_inputs"] == 1 and "0x" + key == registry_model_id(model_spec(hashed_run))
        hashed = c.submit(hashed_run)
        rec = c.receipt("hashed-1")
        posted = input_commitment(felt_ints(input_instances(mlp_input, hashed_run.circuits[0].input_scale, "hashed")))
        assert rec.input_hash == "0x" + posted.hex()
        assert quantized_input_commitment(mlp_input.flatten(), hashed_run.circuits[0].input_scale, "hashed") == posted
        assert rec.input_hash == "0x" + keccak(felt_to_uint(hashed_run.receipt.input_felts[0]).to_bytes(32, "big")).hex()
        assert rec.output == pytest.approx(hashed_run.receipt.output, abs=0)
        public = c.submit(mlp_run, job_id="public-1")
        print(f"\nreceipt gas, 4-element input: hashed {hashed.gas_used:,}, public {public.gas_used:,}")


@pytest.mark.parametrize("n, k, want", [(16, 15, "public"), (AUTO_HASH_MIN_INPUTS, 15, "hashed"), (256, 15, "hashed"),
                                        (3072, 15, "public"), (3072, 17, "hashed")])  # fmt: skip
def test_auto_input_visibility_hashes_large_inputs_that_fit(n, k, want):
    """3,072 elements (a CIFAR image) need ~126 k hash rows: over 2^15, within 2^17."""
    assert resolve_input_visibility("auto", n, k) == want
    assert resolve_input_visibility("public", n, k) == "public"
