"""Cluster configs in clusters/ pass the checks `ray up` (and KubeRay) apply, offline.

No cluster is started: these run Ray's own prepare_config/validate_config on the files.
"""
from __future__ import annotations

import copy
import socket
from pathlib import Path

import pytest
import yaml

from dsperse.distributed.cluster_configs import (
    AGGREGATOR_MIN_MEMORY_BYTES,
    GiB,
    ClusterConfigError,
    container_limits,
    group_custom_resources,
    main,
    node_types_with,
    parse_quantity,
    validate_cluster_yaml,
    validate_file,
    validate_rayjob_yaml,
)

CLUSTERS = Path(__file__).resolve().parents[1] / "clusters"
ALL_FILES = sorted(CLUSTERS.glob("*.yaml")) + sorted(CLUSTERS.glob("*.yml"))


def _raw(p: Path) -> dict:
    return yaml.safe_load(p.read_text())


LAUNCHERS = [p for p in ALL_FILES if "provider" in _raw(p)]
# Launcher files that define their own node types (cloud providers; `local` has one implicit type).
CLOUD = [p for p in LAUNCHERS if "available_node_types" in _raw(p)]
RAYJOBS = [p for p in ALL_FILES if _raw(p).get("kind") == "RayJob"]

# Physical RAM of the machine types the YAMLs use: advertised `memory` must leave room
# for the object store and the OS. Add a type here when a YAML starts using it.
MACHINE_MEMORY = {
    "m6i.xlarge": 16 * GiB, "g5.2xlarge": 32 * GiB, "c6i.4xlarge": 32 * GiB, "r6i.4xlarge": 128 * GiB,
    "n2-standard-4": 16 * GiB, "n1-standard-8": 30 * GiB, "n2-standard-16": 64 * GiB,
    "n2-highmem-16": 128 * GiB,
}


def _machine(node_type: dict) -> str:
    nc = node_type["node_config"]
    return nc.get("InstanceType") or nc["machineType"]


def test_expected_files_are_present():
    names = {p.name for p in ALL_FILES}
    assert {"aws-gpu.yaml", "gcp-gpu.yaml", "local.yaml", "kuberay-rayjob.yaml"} <= names
    assert len(LAUNCHERS) + len(RAYJOBS) == len(ALL_FILES), "every file must be a launcher YAML or a RayJob"


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_cluster_file_validates(path):
    cfg = validate_file(path)
    if path in LAUNCHERS:
        assert cfg["head_node_type"] in cfg["available_node_types"]
        assert cfg["max_workers"] >= sum(t["min_workers"] for t in cfg["available_node_types"].values())
    else:
        assert cfg["spec"]["rayClusterSpec"]["workerGroupSpecs"]


def test_validation_needs_no_network(monkeypatch):
    def refuse(*a, **k):
        raise OSError("network access during offline validation")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for p in LAUNCHERS:
        assert validate_cluster_yaml(p)["provider"]["type"] == _raw(p)["provider"]["type"]


# -- broken launcher configs -----------------------------------------------------
def _drop_provider(c):
    del c["provider"]


BROKEN = {
    "max_workers_string": (lambda c: c.update(max_workers="12"), "max_workers: '12' is not of type 'integer'"),
    "node_max_workers_string": (
        lambda c: c["available_node_types"]["aggregator"].update(max_workers="1"),
        "available_node_types.aggregator.max_workers",
    ),
    "unknown_top_level_key": (lambda c: c.update(max_worker=3), "'max_worker' was unexpected"),
    "missing_provider": (_drop_provider, "missing `provider`"),
    "unknown_provider": (lambda c: c["provider"].update(type="amazon"), "unknown provider type 'amazon'"),
    "fractional_resource": (
        lambda c: c["available_node_types"]["aggregator"]["resources"].update(memory=1.5),
        "resources.memory: 1.5 is not of type 'integer'",
    ),
    "missing_resources": (
        lambda c: c["available_node_types"]["aggregator"].pop("resources"),
        "'resources' is a required property",
    ),
    "head_type_not_defined": (lambda c: c.update(head_node_type="nope"), "must be one of `available_node_types`"),
    "min_workers_over_global_max": (
        lambda c: c["available_node_types"]["aggregator"].update(min_workers=99),
        "smaller than the sum of `min_workers`",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_launcher_yaml_is_rejected(case, tmp_path):
    mutate, expected = BROKEN[case]
    cfg = copy.deepcopy(_raw(CLUSTERS / "aws-gpu.yaml"))
    mutate(cfg)
    bad = tmp_path / f"{case}.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ClusterConfigError) as ei:
        validate_cluster_yaml(bad)
    assert expected in str(ei.value)
    assert str(bad) in str(ei.value) and ei.value.path == bad


def test_broken_local_yaml_names_the_field(tmp_path):
    cfg = _raw(CLUSTERS / "local.yaml")
    cfg["max_workers"] = "3"  # Ray itself fails here with a bare TypeError
    bad = tmp_path / "local.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ClusterConfigError, match=r"max_workers: '3' is not of type 'integer'"):
        validate_cluster_yaml(bad)


@pytest.mark.parametrize(
    "text, expected",
    [("provider: [unclosed\n", "not valid YAML"), ("- just\n- a list\n", "YAML mapping")],
)
def test_unreadable_files_are_rejected(tmp_path, text, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ClusterConfigError, match=expected):
        validate_file(bad)
    with pytest.raises(ClusterConfigError, match="cannot read"):
        validate_file(tmp_path / "missing.yaml")


# -- roles in the launcher configs -----------------------------------------------
@pytest.mark.parametrize("path", CLOUD, ids=lambda p: p.name)
def test_aggregator_node_type_has_the_memory(path):
    cfg = validate_cluster_yaml(path)
    aggregators = node_types_with(cfg, "aggregator")
    assert aggregators, f"{path.name}: no node type advertises the 'aggregator' resource"
    for name, t in aggregators.items():
        assert t["max_workers"] >= 1, name
        assert t["resources"].get("memory", 0) >= AGGREGATOR_MIN_MEMORY_BYTES, name


@pytest.mark.parametrize("path", CLOUD, ids=lambda p: p.name)
def test_gpu_prover_node_type_requests_a_gpu(path):
    cfg = validate_cluster_yaml(path)
    gpu_provers = {n: t for n, t in node_types_with(cfg, "GPU").items() if t["resources"].get("prover", 0) >= 1}
    assert gpu_provers, f"{path.name}: no node type has both GPU and 'prover'"
    for name, t in gpu_provers.items():
        nc = t["node_config"]
        has_gpu = (
            nc.get("InstanceType", "").startswith(("g", "p"))
            or bool(nc.get("guestAccelerators"))
            or nc.get("machineType", "").startswith(("g2-", "a2-", "a3-"))
        )
        assert has_gpu, f"{name}: machine {_machine(t)} has no GPU"
        assert "gpu" in t.get("docker", {}).get("worker_image", cfg["docker"].get("image", "")), (
            f"{name}: runs a CPU-only image"
        )


@pytest.mark.parametrize("path", CLOUD, ids=lambda p: p.name)
def test_head_runs_no_tasks_and_memory_fits_machines(path):
    cfg = validate_cluster_yaml(path)
    types = cfg["available_node_types"]
    assert types[cfg["head_node_type"]]["resources"].get("CPU") == 0
    for name, t in types.items():
        mem = t["resources"].get("memory")
        if mem is None:
            continue
        machine = _machine(t)
        assert machine in MACHINE_MEMORY, f"add {machine} to MACHINE_MEMORY"
        assert mem <= 0.75 * MACHINE_MEMORY[machine], f"{name}: {mem} B advertised on a {machine}"


# -- KubeRay RayJob --------------------------------------------------------------
@pytest.mark.parametrize("path", RAYJOBS, ids=lambda p: p.name)
def test_rayjob_groups_have_their_roles(path):
    job = validate_rayjob_yaml(path)
    assert job["spec"]["entrypoint"].startswith("python -m pipelines.prove ")
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = cluster["workerGroupSpecs"]
    gpu = [g for g in groups if container_limits(g).get("nvidia.com/gpu", 0) >= 1]
    assert gpu and all(group_custom_resources(g).get("prover") == 1 for g in gpu)
    aggs = [g for g in groups if group_custom_resources(g).get("aggregator", 0) >= 1]
    assert aggs and all(container_limits(g)["memory"] >= AGGREGATOR_MIN_MEMORY_BYTES for g in aggs)


def _set_head_param(j):
    j["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0


def _dup_group(j):
    groups = j["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    groups.append(copy.deepcopy(groups[0]))


BROKEN_JOBS = {
    "no_entrypoint": (lambda j: j["spec"].pop("entrypoint"), "spec.entrypoint"),
    "wrong_api_version": (lambda j: j.update(apiVersion="ray.io/v1alpha1"), "apiVersion must be 'ray.io/v1'"),
    "bad_name": (lambda j: j["metadata"].update(name="Dsperse_Prove"), "metadata.name"),
    "int_ray_start_param": (_set_head_param, "num-cpus must be a string"),
    "resources_not_json": (
        lambda j: j["spec"]["rayClusterSpec"]["workerGroupSpecs"][1]["rayStartParams"].update(resources="{aggregator: 1}"),
        "rayStartParams.resources is not a JSON object",
    ),
    "no_containers": (
        lambda j: j["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"].update(containers=[]),
        "containers must be a non-empty list",
    ),
    "replicas_over_max": (
        lambda j: j["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].update(replicas=99),
        "outside [minReplicas, maxReplicas]",
    ),
    "duplicate_group": (_dup_group, "is used twice"),
    "no_head": (lambda j: j["spec"]["rayClusterSpec"].pop("headGroupSpec"), "headGroupSpec"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_JOBS))
def test_broken_rayjob_is_rejected(case, tmp_path):
    mutate, expected = BROKEN_JOBS[case]
    job = copy.deepcopy(_raw(CLUSTERS / "kuberay-rayjob.yaml"))
    mutate(job)
    bad = tmp_path / f"{case}.yaml"
    bad.write_text(yaml.safe_dump(job))
    with pytest.raises(ClusterConfigError) as ei:
        validate_file(bad)
    assert expected in str(ei.value) and str(bad) in str(ei.value)


def test_parse_quantity():
    assert parse_quantity("112Gi") == 112 * GiB
    assert parse_quantity("500m") == 0.5
    assert parse_quantity(2) == 2.0
    assert parse_quantity("1.5G") == 1.5e9
    with pytest.raises(ValueError):
        parse_quantity("12 GB")


# -- CLI -------------------------------------------------------------------------
def test_cli_reports_each_file(tmp_path, capsys):
    assert main([str(p) for p in ALL_FILES]) == 0
    out = capsys.readouterr().out
    assert out.count("ok ") == len(ALL_FILES)
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster_name: x\n")
    assert main([str(CLUSTERS / "aws-gpu.yaml"), str(bad)]) == 1
    captured = capsys.readouterr()
    assert "aws-gpu.yaml" in captured.out and f"FAIL {bad}: missing `provider`" in captured.err
