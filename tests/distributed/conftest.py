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
