"""Proving on a real multi-node Ray cluster: several raylets on this machine (ray.cluster_utils.Cluster), each with
its own resources and node cache (the `multinode` fixture in conftest.py).

What is checked, for real (EZKL proofs at k=15 on the zoo MLP's 3 slices):
* `ship` mode fetches each circuit, pk and SRS into a node's cache once: the node's shipping record and the
  files' mtimes show no second fetch by a second actor on that node, nor by a new pool for a second batch;
* slice actors land only on the prover nodes, an aggregation step's Ray task only on the aggregator node;
* a prover node removed mid-batch: its slices move to the surviving actors and the batch completes and verifies;
* a driver SIGKILLed mid-batch: the rerun proves only the slices its manifests do not record.
The node-loss test runs last: it leaves the cluster with one prover node.
"""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import dsperse
from dsperse.distributed import ProverPool, RayOptions, prove_on_ray
from dsperse.errors import AggregationError

from .conftest import MULTINODE_IP, REPO

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow

PROVERS = RayOptions(resources={"prover": 1})  # artifacts="auto": ship, since the cluster has several nodes


def _sha_of(name: str) -> str:
    return name.split("/")[0]


def _needs(infos: list[dict], node_id: str) -> set[str]:
    """Node-cache names (<sha256>/<file>) of every file the actors on ``node_id`` were built with."""
    return {str(Path(p).relative_to(Path(i["node_cache"]))) for i in infos if i["node_id"] == node_id
            for f in i["files"].values() for p in f.values()}  # fmt: skip


def _pid_of(prover: str) -> int:
    return int(prover.split(":")[2])  # "ray:<host>:<pid>:<device>"


def test_ship_once_per_node_and_slices_on_prover_nodes(multinode, mlp_plan, mlp_circuits, mlp_input, tmp_path):
    from dsperse.util import storage

    head, provers = multinode.head_id, multinode.prover_ids
    with ProverPool(mlp_circuits, PROVERS) as pool:
        infos = pool.infos
        nodes = [i["node_id"] for i in infos]
        assert set(nodes) <= set(provers) and head not in nodes, "a SliceProver landed off the prover nodes"
        assert sorted(nodes.count(n) for n in provers) == [1, 2], "3 actors on 2 nodes with {prover: 2} each"
        for info in infos:  # every file the actor proves from is its own node's cached copy of the driver's file
            cache = multinode.caches[info["node_id"]]
            assert Path(info["node_cache"]) == cache
            for i, f in info["files"].items():
                for what, p in f.items():
                    assert Path(p).parent.parent == cache
                    assert storage.sha256_file(p) == storage.sha256_file(getattr(pool.circuits[int(i)], what))
        shipped = {n: multinode.shipped(n) for n in provers}
        for n in provers:  # each file its actors need arrived once, nothing else did
            names = [r["name"] for r in shipped[n]]
            assert sorted(names) == sorted(_needs(infos, n)), n
            assert all(r["node_id"] == n and r["bytes"] > 0 for r in shipped[n])
        # The SRS (one for all three slices) reached the two-actor node once, though both actors use it.
        both = next(n for n in provers if nodes.count(n) == 2)
        srs = {str(Path(f["srs"]).relative_to(multinode.caches[both])) for i in infos if i["node_id"] == both
               for f in i["files"].values()}  # fmt: skip
        assert len(srs) == 1 and [r["name"] for r in shipped[both]].count(srs.pop()) == 1
        assert sum(len(i["shipped"]) for i in infos if i["node_id"] == both) == len(shipped[both])

        run = prove_on_ray(mlp_plan, [mlp_input], tmp_path / "a", circuits=mlp_circuits, job_id="mn-a", pool=pool,
                           progress=False)  # fmt: skip
        node_of_pid = {i["pid"]: i["node_id"] for i in infos}
        assert [node_of_pid[_pid_of(p.prover)] for p in run.proofs] == [pool.placement()[i] for i in range(3)]
        assert dsperse.verify(run, job_id="mn-a", expected_input=mlp_input)

    mtimes = {p: p.stat().st_mtime_ns for c in multinode.caches.values() for p in c.glob("*/*")}
    # A second pool (new actors, e.g. the next batch's): whatever node each lands on, a file already in that
    # node's cache is not fetched again (the record grows only by files the node never had) and stays as it was.
    with ProverPool(mlp_circuits, PROVERS) as pool2:
        infos2 = pool2.infos
    for info in infos2:
        assert info["node_id"] in provers
        before = {r["name"] for r in shipped[info["node_id"]]}
        assert not before & {r["name"] for r in info["shipped"]}, "re-fetched a file the node already had"
    for n in provers:
        names = [r["name"] for r in multinode.shipped(n)]
        assert len(names) == len(set(names)), f"node {n[:12]} fetched a file twice: {names}"
        assert _needs(infos2, n) <= set(names)
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    for n in provers:  # what shipping cost here, per node (-s shows it)
        rec = multinode.shipped(n)
        each = ", ".join(f"{Path(r['name']).name} {r['seconds']:.1f}s" for r in rec)
        print(f"node {n[:8]}: fetched {len(rec)} files, {sum(r['bytes'] for r in rec) / 1e6:.0f} MB ({each})")


def test_aggregation_steps_only_on_the_aggregator_node(multinode):
    """The placement decision of dsperse.aggregation.ray_task, on this cluster, and a real task scheduled with it.

    A real step (k=21, ~18 GB) cannot run on this box, so the task placed with the step's options is a cheap one.
    The prover nodes advertise more Ray memory than the aggregator: only the resource keeps the step off them.
    """
    from dsperse.aggregation import planning, ray_task

    nodes = ray_task.cluster_nodes()
    assert [n.node_id for n in nodes if n.aggregator] == [multinode.head_id]
    step = planning.estimate(1)  # one proof per step: k=21
    assert min(n.memory_bytes for n in nodes if not n.aggregator) > step.peak_bytes  # memory alone would allow them
    opts = ray_task.task_options(step, nodes)
    assert opts["resources"] == {"aggregator": 1} and opts["memory"] == int(step.peak_bytes)

    @ray.remote
    def where() -> str:
        return ray.get_runtime_context().get_node_id()

    assert set(ray.get([where.options(**opts).remote() for _ in range(3)], timeout=120)) == {multinode.head_id}
    # A step bigger than the aggregator node is refused at once, although the prover nodes have the memory:
    # such a task would wait forever.
    with pytest.raises(AggregationError, match="aggregator"):
        ray_task.task_options(planning.estimate(2), nodes)  # k=22: ~37 GB > the aggregator's 24 GiB


_DRIVER = """
import pickle, sys
import ray
from dsperse.distributed import RayOptions, prove_on_ray

plan, circuits, xs = pickle.loads(open(sys.argv[1], "rb").read())
ray.init(address=sys.argv[2], include_dashboard=False, log_to_driver=False, _node_ip_address=sys.argv[3])
prove_on_ray(plan, xs, sys.argv[4], circuits=circuits, job_id="drv", progress=False,
             options=RayOptions(resources={"prover": 1}))
print("finished")
"""


def _recorded(workdir: Path, n: int) -> dict[tuple[int, int], str]:
    """(input, slice) -> proof sha256 for every proof the runs' manifests record."""
    out = {}
    for k in range(n):
        m = workdir / str(k) / "manifest.json"
        try:
            proofs = json.loads(m.read_text())["proofs"] if m.exists() else {}
        except (json.JSONDecodeError, OSError):  # written atomically; read again next time round
            proofs = {}
        out.update({(k, int(i)): r["sha256"] for i, r in proofs.items()})
    return out


def test_driver_killed_mid_batch_rerun_proves_only_the_rest(multinode, mlp_plan, mlp_circuits, mlp_input, tmp_path):
    from dsperse.util import storage

    xs = [mlp_input, (mlp_input * -0.5).astype(np.float32)]
    workdir = tmp_path / "batch"
    job = tmp_path / "job.pkl"
    job.write_bytes(pickle.dumps((mlp_plan, mlp_circuits, xs)))
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER)
    log = tmp_path / "driver.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(script), str(job), multinode.address, MULTINODE_IP, str(workdir)],
                                cwd=REPO, env=multinode.driver_env(), stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 420
        while not _recorded(workdir, len(xs)):
            assert proc.poll() is None, f"the driver exited {proc.returncode} first:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no proof landed:\n{log.read_text()[-3000:]}"
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-batch: its actors die with it (they are owned by this driver)
        proc.wait()
    done = _recorded(workdir, len(xs))
    assert 1 <= len(done) < 3 * len(xs), done
    kept = {(k, i): (workdir / str(k) / f"proof_{i}.json").stat().st_mtime_ns for k, i in done}

    seen: list[tuple[int, int]] = []
    runs = prove_on_ray(mlp_plan, xs, workdir, circuits=mlp_circuits, job_id="drv", progress=False, options=PROVERS,
                        on_slice_proven=lambda p: seen.append((int(p.path.parent.name), p.slice_index)))  # fmt: skip
    everything = {(k, i) for k in range(len(xs)) for i in range(3)}
    assert sorted(seen) == sorted(everything - set(done)), "the rerun must prove exactly what was not recorded"
    for (k, i), sha in done.items():
        p = workdir / str(k) / f"proof_{i}.json"
        assert storage.sha256_file(p) == sha and p.stat().st_mtime_ns == kept[(k, i)], f"proof {k}/{i} was redone"
    for k, (r, x) in enumerate(zip(runs, xs)):
        assert dsperse.verify(r, job_id=f"drv/{k}", expected_input=x)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_prover_node_removed_mid_batch_still_completes(multinode, mlp_plan, mlp_circuits, mlp_input, tmp_path):
    """Runs last: the removed node does not come back."""
    xs = [mlp_input, (mlp_input * 2.0).astype(np.float32)]
    with ProverPool(mlp_circuits, RayOptions(resources={"prover": 1}, max_restarts=2, max_task_retries=2)) as pool:
        nodes = [i["node_id"] for i in pool.infos]
        victim_node = next(n for n in set(nodes) if nodes.count(n) == 1)  # the node with one actor
        victim = nodes.index(victim_node)
        [moved] = [i for i, j in pool.owner.items() if j == victim]
        pid = pool.infos[victim]["pid"]
        survivor = next(n for n in multinode.prover_ids if n != victim_node)
        base = _cpu_seconds(pid)
        landed: list = []
        result: dict = {}

        def work():
            try:
                result["runs"] = prove_on_ray(mlp_plan, xs, tmp_path / "runs", circuits=mlp_circuits, job_id="lost",
                                              pool=pool, progress=False, on_slice_proven=landed.append)  # fmt: skip
            except BaseException as exc:  # surfaced below
                result["error"] = exc

        t = threading.Thread(target=work)
        t.start()
        deadline = time.monotonic() + 300
        while _cpu_seconds(pid) - base < 1.0:  # inside ezkl.prove for input 0
            assert time.monotonic() < deadline and t.is_alive(), "the victim's actor never started proving"
            time.sleep(0.2)
        assert not any(p.slice_index == moved for p in landed)
        removed_at = time.monotonic()
        multinode.remove(next(n for n in multinode.provers if n.node_id == victim_node))
        t.join(timeout=600)
        assert not t.is_alive(), "the batch hung after the node left"
        assert "error" not in result, result.get("error")
        print(f"batch finished {time.monotonic() - removed_at:.0f}s after the node left")

        assert pool.lost == {victim}
        assert set(pool.placement().values()) == {survivor}
        survivors = {i["pid"] for i in pool.infos if i["node_id"] == survivor}
        runs = result["runs"]
        for r, x in zip(runs, xs):
            assert dsperse.verify(r, job_id=r.receipt.job_id, expected_input=x)
            assert _pid_of(r.proofs[moved].prover) in survivors, "the moved slice was proven on the surviving node"
        names = [rec["name"] for rec in multinode.shipped(survivor)]
        assert len(names) == len(set(names))
        assert _needs(pool.infos, victim_node) <= set(names), "the moved slice's files are in the survivor's cache"
