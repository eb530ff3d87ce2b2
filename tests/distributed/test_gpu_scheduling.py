"""GPU scheduling on a cluster that advertises one (fake) GPU: provers ask for it and still prove."""
from __future__ import annotations

import ezkl
import pytest

from dsperse.distributed import ProverPool, RayOptions
from dsperse.proving.tasks import ProveTask

pytestmark = pytest.mark.slow

def test_provers_request_the_gpu_and_prove(ray_fake_gpu, mlp_circuits, mlp_run, tmp_path):
    with ProverPool(mlp_circuits) as pool:  # device="auto"
        assert pool.request.device == "gpu"
        for info in pool.infos:
            assert 0 < info["resources"]["GPU"] <= 1, info["resources"]
            assert info["gpu_ids"] == ["0"]
        c = mlp_circuits[0]
        out = tmp_path / "proof_0.json"
        [proof] = pool.prove([ProveTask.for_slice(c, mlp_run.witnesses[0].path, out)], lambda p: None)
        assert proof.prover.endswith(":gpu")
        assert ezkl.verify(str(out), str(c.settings), str(c.vk), str(c.srs))


def test_explicit_cpu_device_leaves_the_gpu_alone(ray_fake_gpu, mlp_circuits):
    with ProverPool(mlp_circuits[:1], RayOptions(device="cpu")) as pool:
        assert pool.infos[0]["resources"].get("GPU", 0) == 0 and pool.infos[0]["gpu_ids"] == []
