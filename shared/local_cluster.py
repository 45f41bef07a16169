"""A Redis Cluster on loopback ports for trying the system on one machine, and for tests:
`masters` redis-servers, each with `replicas` of its own, joined by `redis-cli --cluster
create`. Each node keeps its data (AOF) and its nodes.conf in a folder of its own.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis


class ClusterError(RuntimeError):
    """The cluster could not be started; the message says why."""


@dataclass
class LocalCluster:
    ports: list[int]
    workdir: Path
    masters: int = 3
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start_node(self, port: int, node_timeout_ms: int) -> None:
        folder = self.workdir / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(node_timeout_ms), "--appendonly", "yes", "--appendfsync", "everysec",
             "--save", "", "--dir", str(folder), "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def master_of(self, key: str) -> int:
        """The port of the master serving `key` now."""
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        for start, end, master, *_ in redis.Redis(port=self._alive()).execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(master[1])
        raise ClusterError(f"no master serves slot {slot}")

    def role(self, port: int) -> str:
        return redis.Redis(port=port).role()[0].decode()

    def kill(self, port: int) -> None:
        """SIGKILL one node, as a crash does."""
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(10)

    def _alive(self) -> int:
        return next(p for p in self.ports if p in self.procs and self.procs[p].poll() is None)

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Until every node still running reports cluster_state:ok and every slot is served."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if all(redis.Redis(port=p, socket_timeout=1).execute_command("CLUSTER INFO")["cluster_state"] == "ok"
                       for p in self.procs):
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"the cluster on ports {self.ports} did not become ok within {timeout_s:g} s")
            time.sleep(0.1)

    def stop(self) -> None:
        for port in list(self.procs):
            proc = self.procs.pop(port)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def free_ports(n: int) -> list[int]:
    """`n` loopback ports free now, whose cluster bus ports (+10000) are free too."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def start_cluster(workdir: Path, ports: list[int] | None = None, masters: int = 3, replicas: int = 1,
                  node_timeout_ms: int = 2000) -> LocalCluster:
    """Start the nodes and create the cluster; ready (every slot served) when this returns. When
    `workdir` holds a cluster of these ports already (each node's nodes.conf), its nodes are
    started again on their data instead: the same cluster, with what it held."""
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        raise ClusterError("a local cluster needs redis-server and redis-cli on PATH (apt-get install redis-server)")
    ports = ports or free_ports(masters * (1 + replicas))
    cluster = LocalCluster(ports, Path(workdir), masters)
    try:
        for port in ports:
            cluster.start_node(port, node_timeout_ms)
        for port in ports:
            _wait_ping(port)
        if all((Path(workdir) / str(p) / "nodes.conf").exists() for p in ports) and _known(ports[0]) == len(ports):
            cluster.wait_ok()
            return cluster
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas",
             str(replicas), "--cluster-yes"], capture_output=True, text=True, timeout=60)
        if created.returncode != 0:
            raise ClusterError(f"redis-cli --cluster create failed: {created.stdout[-500:]}{created.stderr[-500:]}")
        cluster.wait_ok()
        _wait_replicas(cluster, masters * replicas)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _known(port: int) -> int:
    """How many nodes the node on `port` knows (itself included)."""
    return int(redis.Redis(port=port).execute_command("CLUSTER INFO")["cluster_known_nodes"])


def _wait_ping(port: int) -> None:
    client = redis.Redis(port=port, socket_timeout=1)
    for _ in range(200):
        try:
            client.ping()
            return
        except redis.RedisError:
            time.sleep(0.025)
    raise ClusterError(f"redis-server on port {port} did not start")


def _wait_replicas(cluster: LocalCluster, n: int, timeout_s: float = 30.0) -> None:
    """Until `n` replicas have finished their first sync with their masters."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        synced = 0
        for port in cluster.procs:
            info = redis.Redis(port=port).info("replication")
            if info.get("role") == "slave" and info.get("master_link_status") == "up":
                synced += 1
        if synced >= n:
            return
        time.sleep(0.1)
    raise ClusterError(f"{n} replicas did not sync within {timeout_s:g} s")
