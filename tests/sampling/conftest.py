"""Fixtures for the PoSP market tests: one anvil per module, a compiled market, funded roles, Ray.

Every chain test talks to a real anvil process started here (and stopped here, by its own pid). Unless a
test passes a real ProofOfInference (test_receipts.py), markets read models and receipts from
MockRegistry.sol, a stand-in with setters, so market logic is tested without minutes of EZKL proving.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from web3 import Web3

from dsperse.sampling.market import ETHER, Market, MarketConfig, compile_market, send

VALIDATOR_STAKE = 3 * ETHER


class Registry:
    """MockRegistry on a chain: models (with MockSlice verifiers whose codehash names a circuit) and receipts."""

    def __init__(self, w3: Web3, deployer_key: str):
        from dsperse.chain.toolchain import compile_solidity

        c = compile_solidity({"MockRegistry.sol": Path(__file__).with_name("MockRegistry.sol")})
        self.w3, self.key, self._slice = w3, deployer_key, c["MockSlice"]
        rc = send(w3, deployer_key, w3.eth.contract(abi=c["MockRegistry"].abi, bytecode=c["MockRegistry"].bytecode).constructor())
        self.address = rc["contractAddress"]
        self.contract = w3.eth.contract(address=self.address, abi=c["MockRegistry"].abi)

    def slice(self, tag: int) -> str:
        """A fresh deployment of the verifier of circuit ``tag`` (same tag, same codehash)."""
        f = self.w3.eth.contract(abi=self._slice.abi, bytecode=self._slice.bytecode)
        return send(self.w3, self.key, f.constructor(tag))["contractAddress"]

    def register(self, key: str, model_id: bytes, tags: list[int], output_scale: int = 7, num_outputs: int = 3,
                 num_inputs: int = 1) -> bytes:  # fmt: skip
        """Register ``model_id`` with one verifier per circuit tag; ``key`` becomes its registrant. ``num_inputs=0``
        makes it a suffix part (ProofOfInference.registerPart)."""
        send(self.w3, key, self.contract.functions.setModel(model_id, [self.slice(t) for t in tags], output_scale, num_outputs))
        if num_inputs != 1:
            send(self.w3, key, self.contract.functions.setInputs(model_id, num_inputs))
        return model_id

    def store_receipt(self, key: str, receipt_id: bytes, model_id: bytes, input_hash: bytes, outputs: list[int]) -> bytes:
        """A receipt as if ``key`` had proven the job: the registry's outputHash of ``outputs``."""
        send(self.w3, key, self.contract.functions.setReceipt(receipt_id, model_id, input_hash, outputs))
        return receipt_id


@pytest.fixture(scope="session")
def market_artifact(toolchain):
    """(abi, bytecode) of PoSPMarket, compiled once (solc-js results are cached on disk too)."""
    return compile_market()


@pytest.fixture(scope="module")
def chain(toolchain):
    """A fresh anvil for this test module (10 dev accounts with 10,000 ETH each)."""
    from dsperse.chain.anvil import LocalChain

    with LocalChain() as ch:
        yield ch


@pytest.fixture(scope="module")
def w3(chain) -> Web3:
    return Web3(Web3.HTTPProvider(chain.url, request_kwargs={"timeout": 60}))


@pytest.fixture(scope="module")
def keys(chain) -> dict[str, str]:
    """Named private keys: deployer/owner, requester, two operators, challenger, three validators."""
    names = ["owner", "requester", "operator", "operator2", "challenger", "v1", "v2", "v3", "anyone", "spare"]
    return {n: k for n, (_, k) in zip(names, chain.accounts)}


@pytest.fixture(scope="module")
def registry(w3, keys, toolchain) -> Registry:
    """This module's MockRegistry (the default ProofOfInference of ``deploy``)."""
    return Registry(w3, keys["owner"])


@pytest.fixture(scope="module")
def deploy(w3, keys, chain, market_artifact, registry):
    """deploy(poi=None, **config_overrides) -> Market on ``poi`` (default: the MockRegistry) with validators
    v1..v3 admitted and staked VALIDATOR_STAKE each (quorum 2 by default)."""

    def make(poi: str | None = None, **overrides) -> Market:
        cfg = MarketConfig(**overrides)
        validators = [chain.accounts[i][0] for i in (5, 6, 7)]
        m = Market.deploy(w3, keys["owner"], poi or registry.address, cfg, validators=validators)
        for k in ("v1", "v2", "v3"):
            m.transact(keys[k], "stakeValidator", value=VALIDATOR_STAKE)
        return m

    return make


@pytest.fixture
def books_balance():
    """books_balance(market): every wei the market holds is a stake, an escrowed fee/bond or a credit."""

    def check(m: Market) -> None:
        t = m.totals()
        assert t["balance"] == t["staked"] + t["escrow"] + t["credit"], t

    return check


@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray instance with 2 CPUs for one module (reused if this process already has one; never
    `ray stop`). Module scope: later test modules may start their own differently-shaped cluster."""
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        started = True
    yield ray
    if started:
        ray.shutdown()
