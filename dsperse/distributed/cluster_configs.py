"""Offline checks for the cluster configs in clusters/.

A typo in a cluster YAML otherwise surfaces minutes into `ray up` or `kubectl apply`,
after machines were paid for. `validate_cluster_yaml` runs the same validation that
`ray up` runs, without credentials or network; `validate_rayjob_yaml` checks the
structure of a KubeRay RayJob, for which no CRD schema ships offline.

CLI:  python -m dsperse.distributed.cluster_configs clusters/*.yaml
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from dsperse.errors import ClusterConfigError

GiB = 1 << 30

# Smallest `memory` an aggregator node may advertise. Measured (FIELD-NOTES): a 2-proof
# aggregate at k=22 took 22 GB to set up and ran out of memory above 20 GB while proving;
# each doubling of the proof count adds one to k and doubles that.
AGGREGATOR_MIN_MEMORY_BYTES = 64 * GiB

RAYJOB_API_VERSION = "ray.io/v1"
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGTPE]i|[kMGTPE]|m)?$")
_SUFFIX = {
    None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60,
}


# -- Ray cluster launcher ------------------------------------------------------
def validate_cluster_yaml(path) -> dict[str, Any]:
    """Validate a Ray cluster launcher YAML as `ray up` does; return the prepared config.

    Steps, in `ray up` order (ray.autoscaler._private.commands.create_or_update_cluster
    and _bootstrap_config): load YAML, reject an unknown provider type, prepare_config
    (merge the provider's defaults.yaml, merge setup commands, check docker, fill per-type
    min/max workers), then validate_config (ray-schema.json plus head-type and
    max_workers checks).

    Skipped, because they call the cloud API and need credentials: the provider's
    fillout_available_node_types_resources (AWS asks EC2 for CPU/GPU/memory of each
    instance type; without credentials `ray up` warns and goes on, as here) and
    bootstrap_config (IAM roles, key pairs, subnets, AMI lookup). Hence every node type
    must list its `resources`; `ray up` without credentials requires the same. The
    /tmp config cache of `ray up` is neither read nor written.
    """
    from ray.autoscaler._private.providers import _NODE_PROVIDERS
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _load_yaml(path)
    provider = config.get("provider")
    if not isinstance(provider, dict):
        raise ClusterConfigError(path, "missing `provider` section (e.g. provider: {type: aws, region: ...})")
    ptype = provider.get("type")
    if ptype not in _NODE_PROVIDERS or _NODE_PROVIDERS[ptype] is None:
        known = ", ".join(sorted(k for k, v in _NODE_PROVIDERS.items() if v is not None))
        raise ClusterConfigError(path, f"unknown provider type {ptype!r}; Ray knows: {known}")

    try:
        prepared = prepare_config(copy.deepcopy(config))
    except Exception as e:  # Ray reports bad values as KeyError/TypeError/ClickException here
        hint = _schema_hint(config)
        raise ClusterConfigError(
            path, f"rejected while preparing the config: {_describe(e)}" + (f" (likely cause: {hint})" if hint else "")
        ) from e

    import jsonschema

    try:
        validate_config(prepared)
    except jsonschema.ValidationError as e:
        where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ClusterConfigError(path, f"schema violation at {where}: {e.message}") from e
    except Exception as e:
        raise ClusterConfigError(path, _describe(e)) from e
    return prepared


def _schema_hint(config: dict[str, Any]) -> str | None:
    """First ray-schema.json violation in the raw config, ignoring fields defaults fill in.

    prepare_config fails with bare TypeErrors on some bad values (e.g. a string
    max_workers with the local provider); this names the field instead.
    """
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    for err in jsonschema.Draft7Validator(schema).iter_errors(config):
        if err.validator != "required":
            where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
            return f"{where}: {err.message}"
    return None


def node_types_with(config: dict[str, Any], resource: str) -> dict[str, dict[str, Any]]:
    """Node types of a prepared launcher config that advertise `resource` (> 0)."""
    return {
        name: spec
        for name, spec in config.get("available_node_types", {}).items()
        if spec.get("resources", {}).get(resource, 0) > 0
    }


# -- KubeRay RayJob ------------------------------------------------------------
def validate_rayjob_yaml(path) -> dict[str, Any]:
    """Check a KubeRay RayJob manifest's structure; return the parsed manifest.

    Covers what the RayJob CRD and the operator reject most often: apiVersion/kind,
    metadata.name, spec.entrypoint, a head group, worker groups with unique groupName,
    integer replicas within [minReplicas, maxReplicas], pod templates with containers,
    rayStartParams values as strings, and `resources` params that parse as a JSON object.
    """
    doc = _load_yaml(path)
    problems: list[str] = []

    def need(cond: bool, msg: str) -> bool:
        if not cond:
            problems.append(msg)
        return cond

    need(doc.get("apiVersion") == RAYJOB_API_VERSION,
         f"apiVersion must be {RAYJOB_API_VERSION!r}, got {doc.get('apiVersion')!r}")
    need(doc.get("kind") == "RayJob", f"kind must be 'RayJob', got {doc.get('kind')!r}")
    name = (doc.get("metadata") or {}).get("name")
    need(isinstance(name, str) and len(name) <= 63 and bool(_DNS1123.match(name)),
         f"metadata.name must be a lowercase DNS name of at most 63 characters, got {name!r}")

    spec = doc.get("spec")
    if not need(isinstance(spec, dict), "missing spec"):
        raise ClusterConfigError(path, "; ".join(problems))
    entry = spec.get("entrypoint")
    need(isinstance(entry, str) and entry.strip() != "", "spec.entrypoint must be a non-empty command string")

    cluster = spec.get("rayClusterSpec")
    if need(isinstance(cluster, dict), "missing spec.rayClusterSpec (this manifest must bring its own cluster)"):
        head = cluster.get("headGroupSpec")
        if need(isinstance(head, dict), "missing spec.rayClusterSpec.headGroupSpec"):
            _check_group(head, "headGroupSpec", problems)
        groups = cluster.get("workerGroupSpecs", [])
        if need(isinstance(groups, list), "spec.rayClusterSpec.workerGroupSpecs must be a list"):
            seen: set[str] = set()
            for i, g in enumerate(groups):
                where = f"workerGroupSpecs[{i}]"
                if not need(isinstance(g, dict), f"{where} must be a mapping"):
                    continue
                gname = g.get("groupName")
                if need(isinstance(gname, str) and gname != "", f"{where}.groupName is required"):
                    need(gname not in seen, f"{where}.groupName {gname!r} is used twice")
                    seen.add(gname)
                    where = f"workerGroupSpecs[{gname}]"
                _check_replicas(g, where, problems)
                _check_group(g, where, problems)
    if problems:
        raise ClusterConfigError(path, "; ".join(problems))
    return doc


def group_custom_resources(group: dict[str, Any]) -> dict[str, float]:
    """The custom resources a KubeRay group passes to `ray start --resources`."""
    raw = (group.get("rayStartParams") or {}).get("resources")
    if raw is None:
        return {}
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':  # KubeRay's documented '"{...}"' form
        text = text[1:-1].replace('\\"', '"')
    value = json.loads(text)
    if not isinstance(value, dict) or not all(isinstance(v, (int, float)) for v in value.values()):
        raise ValueError(f"resources must be a JSON object of numbers, got {raw!r}")
    return value


def container_limits(group: dict[str, Any]) -> dict[str, float]:
    """Sum of the containers' resource limits in a KubeRay group (memory in bytes)."""
    total: dict[str, float] = {}
    for c in group["template"]["spec"]["containers"]:
        for key, q in ((c.get("resources") or {}).get("limits") or {}).items():
            total[key] = total.get(key, 0) + parse_quantity(q)
    return total


def parse_quantity(q: Any) -> float:
    """A Kubernetes quantity ("112Gi", "500m", 2) as a number."""
    if isinstance(q, (int, float)) and not isinstance(q, bool):
        return float(q)
    m = _QUANTITY.match(str(q).strip())
    if not m:
        raise ValueError(f"not a Kubernetes quantity: {q!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def _check_replicas(g: dict[str, Any], where: str, problems: list[str]) -> None:
    vals = {k: g.get(k) for k in ("replicas", "minReplicas", "maxReplicas")}
    if vals["replicas"] is None:
        problems.append(f"{where}.replicas is required")
    for k, v in vals.items():
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            problems.append(f"{where}.{k} must be a non-negative integer, got {v!r}")
            return
    lo, n, hi = vals["minReplicas"], vals["replicas"], vals["maxReplicas"]
    if lo is not None and hi is not None and lo > hi:
        problems.append(f"{where}: minReplicas {lo} > maxReplicas {hi}")
    if n is not None and ((lo is not None and n < lo) or (hi is not None and n > hi)):
        problems.append(f"{where}.replicas {n} is outside [minReplicas, maxReplicas]")


def _check_group(g: dict[str, Any], where: str, problems: list[str]) -> None:
    params = g.get("rayStartParams", {})
    if not isinstance(params, dict):
        problems.append(f"{where}.rayStartParams must be a mapping")
    else:
        for k, v in params.items():
            if not isinstance(v, str):
                problems.append(f"{where}.rayStartParams.{k} must be a string (quote it), got {v!r}")
        if isinstance(params.get("resources"), str):
            try:
                group_custom_resources(g)
            except ValueError as e:  # json.JSONDecodeError is a ValueError
                problems.append(f"{where}.rayStartParams.resources is not a JSON object "
                                f"(KubeRay form: '\"{{\\\"aggregator\\\": 1}}\"'): {e}")
    containers = (((g.get("template") or {}).get("spec") or {}).get("containers"))
    if not isinstance(containers, list) or not containers:
        problems.append(f"{where}.template.spec.containers must be a non-empty list")
        return
    for i, c in enumerate(containers):
        if not isinstance(c, dict) or not c.get("name") or not c.get("image"):
            problems.append(f"{where}.template.spec.containers[{i}] needs a name and an image")
            continue
        for key, q in ((c.get("resources") or {}).get("limits") or {}).items():
            try:
                parse_quantity(q)
            except ValueError as e:
                problems.append(f"{where}.template.spec.containers[{i}].resources.limits.{key}: {e}")


# -- shared --------------------------------------------------------------------
def validate_file(path) -> dict[str, Any]:
    """Validate a Kubernetes manifest (has `kind`) or a Ray launcher YAML (has `provider`)."""
    doc = _load_yaml(path)
    return validate_rayjob_yaml(path) if "kind" in doc or "apiVersion" in doc else validate_cluster_yaml(path)


def _load_yaml(path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ClusterConfigError(path, f"cannot read: {e.strerror or e}") from e
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ClusterConfigError(path, f"not valid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise ClusterConfigError(path, f"expected a YAML mapping at the top level, got {type(doc).__name__}")
    return doc


def _describe(e: BaseException) -> str:
    msg = getattr(e, "message", None) or str(e)  # click.ClickException keeps it in .message
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Validate cluster files; print one line per file; exit 1 if any fails."""
    ap = argparse.ArgumentParser(prog="python -m dsperse.distributed.cluster_configs", description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", type=Path, help="Ray launcher YAMLs or KubeRay RayJob manifests")
    args = ap.parse_args(argv)
    failed = 0
    for p in args.paths:
        try:
            cfg = validate_file(p)
        except ClusterConfigError as e:
            print(f"FAIL {e}", file=sys.stderr)
            failed += 1
            continue
        if "kind" in cfg:
            groups = [g["groupName"] for g in cfg["spec"]["rayClusterSpec"].get("workerGroupSpecs", [])]
            print(f"ok   {p}: {cfg['kind']} {cfg['metadata']['name']}, worker groups: {', '.join(groups) or 'none'}")
        else:
            types = ", ".join(cfg["available_node_types"])
            print(f"ok   {p}: provider {cfg['provider']['type']}, node types: {types}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
