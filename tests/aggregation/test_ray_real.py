"""A real local Ray cluster: node memory and the 'aggregator' resource are read back, steps reserve them,
and a step no node can hold is refused before it is submitted (it would otherwise pend forever)."""
from __future__ import annotations


import pytest

from dsperse import aggregation as agg
from dsperse.aggregation import planning, ray_task as RT
from dsperse.errors import AggregationError

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    ray.init(address="local", num_cpus=1, resources={"aggregator": 1}, _memory=4 * 10**9,
             include_dashboard=False, log_to_driver=False)  # fmt: skip
    try:
        yield
    finally:
        ray.shutdown()


def test_nodes_report_memory_and_aggregator(cluster):
    nodes = RT.cluster_nodes()
    assert len(nodes) == 1 and nodes[0].aggregator
    assert nodes[0].memory_bytes == pytest.approx(4e9, rel=0.01)


def test_plan_for_cluster_refuses_a_small_cluster(cluster):
    with pytest.raises(AggregationError, match="largest node has 4.0 GB"):
        agg.plan_for_cluster(1)


def test_step_reserves_memory_and_the_aggregator_resource(cluster):
    small = planning.estimate(1, observations=[
        planning.Observation(s, 21, 1, 1.0, 1e9, pk_bytes=1e8) for s in planning.STAGES
    ])  # a made-up 1 GB step: the point is what Ray is asked for
    opts = RT.task_options(small, RT.cluster_nodes())
    assert opts["memory"] == 10**9 and opts["resources"] == {"aggregator": 1}

    def assigned():
        return ray.get_runtime_context().get_assigned_resources()

    got = ray.get(ray.remote(assigned).options(**opts).remote(), timeout=120)
    assert got.get("aggregator") == 1 and got.get("memory") == 10**9


def test_unschedulable_step_is_refused_not_submitted(cluster):
    with pytest.raises(AggregationError, match="no Ray node can hold"):
        RT.submit_step(RT.StepSpec(("p.json",), "out.json", "w", 21, "srs", False, "evm"), planning.estimate(1))


def test_prove_with_a_cluster_plans_for_that_cluster(cluster, mlp_plan, mlp_input, tmp_path):
    """cluster= given: the plan is made for the cluster's nodes (4 GB here), not for this machine, and refused
    before any slice is compiled or proven."""
    import dsperse

    with pytest.raises(AggregationError, match="largest node has 4.0 GB"):
        dsperse.prove(mlp_plan, mlp_input, tmp_path / "run", aggregate=True, cluster="auto", progress=False)
    assert not (tmp_path / "run").exists()
