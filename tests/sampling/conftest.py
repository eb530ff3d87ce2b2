"""Fixtures for the PoSP market tests: one anvil per module, a compiled market, funded roles, Ray.

Every chain test talks to a real anvil process started here (and stopped here, by its own pid).
"""
from __future__ import annotations

import pytest
from web3 import Web3

from dsperse.sampling.market import Market, MarketConfig, compile_market


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
def deploy(w3, keys, chain, market_artifact):
    """deploy(**config_overrides, poi=None) -> Market with validators v1..v3 registered (quorum 2 by default)."""

    def make(poi: str | None = None, **overrides) -> Market:
        cfg = MarketConfig(**overrides)
        validators = [chain.accounts[i][0] for i in (5, 6, 7)]
        return Market.deploy(w3, keys["owner"], poi, cfg, validators=validators)

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
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        started = True
    yield ray
    if started:
        ray.shutdown()
