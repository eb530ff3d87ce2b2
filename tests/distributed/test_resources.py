"""Pure logic: what each SliceProver asks the cluster for (no Ray needed)."""
from __future__ import annotations

from pathlib import Path

import pytest

from dsperse.config import DsperseConfig, ProverConfig
from dsperse.distributed import ClusterError, NoGPUError, RayOptions, plan_resources


def test_auto_picks_gpu_only_when_the_cluster_has_one():
    assert plan_resources({"CPU": 16, "GPU": 4}, 3).as_options() == {"num_cpus": 1.0, "num_gpus": 1.0}
    r = plan_resources({"CPU": 16}, 3)
    assert (r.device, r.num_gpus) == ("cpu", 0.0)
    assert plan_resources({"CPU": 16, "GPU": 4}, 3, "cpu").num_gpus == 0.0


def test_gpu_on_a_gpu_less_cluster_fails_fast_with_a_clear_error():
    with pytest.raises(NoGPUError, match="device='cpu'"):
        plan_resources({"CPU": 2}, 3, "gpu")
    with pytest.raises(ClusterError, match="device must be"):
        plan_resources({"CPU": 2}, 3, "tpu")


@pytest.mark.parametrize(
    "total,n,share", [(2, 3, 0.5), (1, 3, 0.3333), (4, 3, 1.0), (3, 4, 0.5), (2.5, 3, 0.5), (0, 3, 1.0)]
)
def test_more_actors_than_units_share_them_in_fractions_that_pack(total, n, share):
    r = plan_resources({"CPU": total, "GPU": total}, n)
    assert r.num_cpus == share
    assert r.num_gpus == (share if total > 0 else 0.0)  # no GPU at all: auto means CPU
    if total >= 1:
        per_unit = int(1 / share + 1e-9)
        assert per_unit * int(total) >= n  # every actor fits on whole units


def test_custom_resources_pass_through_and_env_overrides(monkeypatch):
    assert plan_resources({"CPU": 8}, 2, extra={"prover": 1}).as_options()["resources"] == {"prover": 1}
    monkeypatch.setenv("DSPERSE_DEVICE", "cpu")
    monkeypatch.setenv("DSPERSE_RAY_ACTORS", "2")
    monkeypatch.setenv("DSPERSE_NODE_CACHE", "/tmp/node-cache-x")
    prover = DsperseConfig.from_env().prover  # the one reader of $DSPERSE_*; RayOptions is ProverConfig's old name
    assert prover == RayOptions(device="cpu", actors=2, node_cache=Path("/tmp/node-cache-x"))
    assert RayOptions is ProverConfig


def test_actors_find_their_node_cache_through_the_config(monkeypatch, tmp_path):
    from dsperse.distributed.actors import node_cache_root

    monkeypatch.setenv("DSPERSE_NODE_CACHE", str(tmp_path / "node"))
    assert node_cache_root() == tmp_path / "node"  # the node's own environment, through DsperseConfig.from_env
    assert node_cache_root(str(tmp_path / "driver")) == tmp_path / "driver"  # the driver's config wins
    monkeypatch.delenv("DSPERSE_NODE_CACHE")
    assert node_cache_root().name == "dsperse-node-cache"
