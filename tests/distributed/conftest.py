"""Real Ray clusters for the distributed tests, started and stopped by the tests themselves.

The machine is shared: never `ray stop` (it kills every Ray process of every user).
In-process clusters end with ray.shutdown(); the `ray start` head used for job
submission runs in its own session and temp dir, and only that session's
processes are killed. Keys and the SRS come from the root conftest's shared cache.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]
RAY_BIN = Path(sys.executable).with_name("ray")


def start_local_ray(**kwargs) -> None:
    """A fresh in-process cluster (never one that happens to run on this machine)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", include_dashboard=False, log_to_driver=False, **kwargs)


@pytest.fixture(scope="module")
def ray_cpu():
    """A 2-CPU, GPU-less local cluster for one test module."""
    start_local_ray(num_cpus=2, num_gpus=0)
    yield ray.cluster_resources()
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_fake_gpu():
    """A local cluster that advertises one GPU on this CPU box (Ray trusts the count): GPU scheduling without a GPU."""
    start_local_ray(num_cpus=2, num_gpus=1)
    yield ray.cluster_resources()
    ray.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_port_block(taken: set[int]) -> int:
    """The first port of 100 for Ray's workers, clear of `taken` and of the kernel's ephemeral range.

    free_port() hands out ephemeral ports, so a worker block drawn from that range can
    swallow the GCS port (CI failed once on exactly that). In-process test clusters use
    Ray's default worker ports (10002-19999), so stay above those too.
    """
    try:
        ephemeral_lo = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_lo = 32768
    clear = [lo for lo in range(20000, 60000, 100) if not any(lo <= port < lo + 100 for port in taken)]
    return random.choice([lo for lo in clear if lo + 100 <= ephemeral_lo] or clear)


def _session_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def _mentions(pid: int, marker: str) -> bool:
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class RayStartRaced(RuntimeError):
    """`ray start` lost a port between free_port() choosing it and Ray binding it."""


@dataclass
class RayHead:
    """A `ray start --head --block` on loopback, in its own session and temp dir."""

    temp_dir: Path
    dashboard_port: int
    gcs_port: int
    proc: subprocess.Popen | None = None
    env: dict = field(default_factory=dict)

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start(self, num_cpus: int = 2, timeout: float = 180, attempts: int = 3) -> None:
        """Start the head; a start that dies on a port another process took meanwhile is retried on fresh ports."""
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(num_cpus, timeout)
            except RayStartRaced:
                self.stop()
                if attempt == attempts:
                    raise
                self.dashboard_port, self.gcs_port = free_port(), free_port()

    def _start_once(self, num_cpus: int, timeout: float) -> None:
        ports = {name: free_port() for name in (
            "ray-client-server-port", "node-manager-port", "object-manager-port", "metrics-export-port",
            "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port")}
        worker_lo = worker_port_block({self.gcs_port, self.dashboard_port, *ports.values()})
        cmd = [
            str(RAY_BIN), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
            f"--port={self.gcs_port}", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
            "--include-dashboard=true", f"--temp-dir={self.temp_dir}", f"--num-cpus={num_cpus}", "--num-gpus=0",
            *(f"--{name}={port}" for name, port in ports.items()),
            f"--min-worker-port={worker_lo}", f"--max-worker-port={worker_lo + 99}", "--disable-usage-stats",
        ]
        log_path = self.temp_dir / "ray-start.log"
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = log_path.read_text()[-3000:]
                raced = "already in use" in text or "used by other components" in text
                raise (RayStartRaced if raced else RuntimeError)(f"ray start exited {self.proc.returncode}: {text}")
            try:
                urllib.request.urlopen(f"{self.dashboard}/api/version", timeout=2).read()
                return
            except urllib.error.HTTPError:  # it answers (401 under token auth): it is up
                return
            except OSError:
                time.sleep(1)
        raise RuntimeError(f"Ray dashboard at {self.dashboard} did not come up within {timeout}s")

    def stop(self) -> None:
        """Stop only this head: its `ray start` session, then anything left that names its temp dir."""
        if self.proc is None:
            return
        sid = self.proc.pid
        try:
            os.killpg(sid, signal.SIGTERM)
            self.proc.wait(timeout=10)  # Ray drains up to 30 s on SIGTERM; the rest is SIGKILLed below
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        for _ in range(2):
            mine = [int(p) for p in os.listdir("/proc") if p.isdigit()
                    and (_session_of(int(p)) == sid or _mentions(int(p), str(self.temp_dir)))]
            for pid in mine:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(1)
        self.proc = None


@pytest.fixture
def ray_head():
    """A separate Ray head for job submission (a short temp dir: Ray's socket paths must stay under 107 bytes)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="dsr-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    head = RayHead(temp_dir=temp_dir, dashboard_port=free_port(), gcs_port=free_port(), env=env)
    try:
        head.start()
        yield head
    finally:
        head.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


# -- a multi-node cluster on this machine (ray.cluster_utils.Cluster) ----------------------------------------------
MULTINODE_IP = "127.0.0.2"
"""Loopback, but not 127.0.0.1: ray.init rewrites an address on 127.0.0.1 to the machine's outward IP, which the
nodes do not listen on. Every node and every driver uses this address."""
GiB = 1 << 30
FAST_NODE_DEATH = {"health_check_period_ms": 1000, "health_check_timeout_ms": 1000, "health_check_failure_threshold": 3}
"""A killed raylet is declared dead in ~3 s instead of Ray's default ~30 s (the pool waits for that verdict)."""


@dataclass
class MultiNode:
    """Several raylets on this machine: a head with {"aggregator": 1} and prover nodes with {"prover": 2}.

    Each prover node has its own node cache (``$DSPERSE_NODE_CACHE`` set in that raylet's environment, which its
    workers inherit), so what was shipped to which node can be read from disk.
    """

    cluster: object
    temp_dir: Path
    head: object
    provers: list = field(default_factory=list)
    caches: dict = field(default_factory=dict)  # node id -> that node's DSPERSE_NODE_CACHE

    @property
    def address(self) -> str:
        return self.cluster.address

    @property
    def head_id(self) -> str:
        return self.head.node_id

    @property
    def prover_ids(self) -> list[str]:
        return [n.node_id for n in self.provers]

    def add_prover(self, cpus: int = 2) -> object:
        cache = Path(tempfile.mkdtemp(prefix="cache-", dir=self.temp_dir))
        node = self.cluster.add_node(
            num_cpus=cpus, resources={"prover": cpus}, memory=32 * GiB, object_store_memory=700 << 20,
            node_ip_address=MULTINODE_IP, temp_dir=str(self.temp_dir), env_vars={"DSPERSE_NODE_CACHE": str(cache)},
        )  # fmt: skip
        self.provers.append(node)
        self.caches[node.node_id] = cache
        return node

    def remove(self, node) -> None:
        self.cluster.remove_node(node, allow_graceful=False)
        self.provers.remove(node)

    def shipped(self, node_id: str) -> list[dict]:
        """The node's shipping record: one line per file fetched into its cache."""
        import json

        log = self.caches[node_id] / "shipped.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def driver_env(self) -> dict:
        """Environment for a subprocess driver of this cluster (token auth as in this process)."""
        env = dict(os.environ, RAY_AUTH_MODE="token", PYTHONPATH=str(REPO))
        env.pop("RAY_ADDRESS", None)
        return env


def _token_auth() -> None:
    """Token auth as ray.init() sets it up for a new local cluster: the mode in this process, a token on disk."""
    from ray._private.authentication import authentication_token_setup as auth

    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        auth._enable_token_auth()
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
            or (Path.home() / ".ray" / "auth_token").exists()):  # fmt: skip
        auth.generate_and_save_token()


@pytest.fixture(scope="module")
def multinode():
    """A 3-node cluster for one module: head (1 CPU, aggregator) + 2 prover nodes (2 CPUs, prover: 2 each).

    The `memory` resources are logical: the prover nodes advertise MORE than the aggregator node, so a step that
    lands on the aggregator was placed there by the resource, not by memory. This process is the driver (on the
    head). Only this cluster's processes are stopped at the end (Cluster.shutdown), never `ray stop`.
    """
    from ray.cluster_utils import Cluster

    _token_auth()
    if ray.is_initialized():
        ray.shutdown()
    temp_dir = Path(tempfile.mkdtemp(prefix="dsr-mn-", dir="/tmp"))  # own temp dir: its address file stays in it
    cluster = Cluster(initialize_head=True, shutdown_at_exit=True, head_node_args=dict(
        num_cpus=1, resources={"aggregator": 1}, memory=24 * GiB, object_store_memory=1 * GiB,
        include_dashboard=False, node_ip_address=MULTINODE_IP, temp_dir=str(temp_dir),
        _system_config=FAST_NODE_DEATH))  # fmt: skip
    mn = MultiNode(cluster=cluster, temp_dir=temp_dir, head=cluster.head_node)
    try:
        for _ in range(2):
            mn.add_prover()
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, _node_ip_address=MULTINODE_IP)
        yield mn
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
