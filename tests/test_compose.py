"""docker-compose.yml run for real under podman-compose: the stack as it ships, on a fresh
clone with no .env, brings every service up (all but Grafana, which has no image here), trades
land in the compose Redis, Prometheus scrapes every arb service, and `down` leaves nothing.

Needs podman and podman-compose (`.ci/compose-setup` installs them and the stand-in images,
as CI does); skipped without them. Talks only to its own containers (`podman exec`) and to the
ports it publishes on 127.0.0.1: never to a Redis of this machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
ARB = [name for name, s in COMPOSE["services"].items() if s.get("image") == "perp-arb:latest"]
STARTED = [name for name in COMPOSE["services"] if name != "grafana"]  # no Grafana image here
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")

pytestmark = [pytest.mark.compose, pytest.mark.slow]


def _podman_compose() -> list[str] | None:
    if path := shutil.which("podman-compose"):
        return [path]
    if importlib.util.find_spec("podman_compose"):
        return [sys.executable, "-m", "podman_compose"]
    return None


PODMAN_COMPOSE = _podman_compose()
if not shutil.which("podman"):
    pytest.skip("podman is not installed (.ci/compose-setup installs it, as root)", allow_module_level=True)
if PODMAN_COMPOSE is None:
    pytest.skip("podman-compose is not installed (pip install podman-compose, or .ci/compose-setup)",
                allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], timeout: float, check: bool = True, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} -> {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


class Stack:
    """One compose project from a copy of the shipped files (so no .env of this checkout is read)."""

    def __init__(self, workdir: Path):
        self.project = f"arbtest{uuid.uuid4().hex[:10]}"
        self.dir = workdir
        shutil.copy(ROOT / "docker-compose.yml", workdir / "docker-compose.yml")
        shutil.copytree(ROOT / "prometheus", workdir / "prometheus")
        shutil.copytree(ROOT / "grafana", workdir / "grafana")
        self.prometheus_port, self.alertmanager_port = _free_port(), _free_port()
        # a fresh clone: no .env, none of the compose file's variables set by this shell
        self.env = {k: v for k, v in os.environ.items()
                    if k not in {"ARB_MODE", "EXECUTION", "GRAFANA_ADMIN_PASSWORD", "GRAFANA_PORT"}}
        self.env.update(PROMETHEUS_PORT=str(self.prometheus_port), ALERTMANAGER_PORT=str(self.alertmanager_port))

    def compose(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
        return _run([*PODMAN_COMPOSE, "-p", self.project, "-f", "docker-compose.yml", *args],
                    timeout, check=check, cwd=self.dir, env=self.env)

    def containers(self, service: str | None = None, running_only: bool = False) -> list[str]:
        args = ["podman", "ps", "--format", "{{.Names}}", "--filter", f"label=io.podman.compose.project={self.project}"]
        if service:
            args += ["--filter", f"label=com.docker.compose.service={service}"]
        if not running_only:
            args.insert(2, "-a")
        return _run(args, 30).stdout.split()

    def container(self, service: str) -> str:
        names = self.containers(service)
        assert len(names) == 1, f"{service}: containers {names}"
        return names[0]

    def logs(self, service: str) -> str:
        done = _run(["podman", "logs", "--tail", "30", self.container(service)], 30, check=False)
        return f"--- {service} logs:\n{done.stdout}{done.stderr}"

    def exec(self, service: str, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return _run(["podman", "exec", self.container(service), *args], timeout, check=False)

    def redis(self, *args: str) -> str:
        done = self.exec("redis", "redis-cli", *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def down(self) -> None:
        self.compose("down", "-v", timeout=180)


def _ready(stack: Stack, service: str) -> bool:
    if service == "redis":
        return stack.exec(service, "redis-cli", "ping").stdout.strip() == "PONG"
    if service in ARB:
        return stack.exec(service, "arb", "check", service).returncode == 0
    port = {"prometheus": stack.prometheus_port, "alertmanager": stack.alertmanager_port}[service]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=3) as answer:
            return answer.status == 200
    except OSError:
        return False


def _why(stack: Stack, service: str) -> str:
    out = stack.logs(service)
    if service in ARB:
        check = stack.exec(service, "arb", "check", service)
        out += f"--- arb check {service} -> {check.returncode}:\n{check.stdout}{check.stderr[-2000:]}"
    return out


def _wait(what: str, ready, timeout: float, why=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s\n{why()}")


def _prometheus(stack: Stack, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.prometheus_port}{path}", timeout=5) as answer:
        return json.load(answer)["data"]


def test_the_stack_runs_trades_is_scraped_and_goes_away(tmp_path):
    started = time.monotonic()
    build = ["podman", "build", "--pull=missing", "-q", "-t", "perp-arb:latest"]
    if HOST_CA.exists():  # pip inside the build reaches PyPI through this machine's certificates
        build += ["-v", f"{HOST_CA}:/etc/ssl/certs/host-ca.crt:ro", "--env", "PIP_CERT=/etc/ssl/certs/host-ca.crt"]
    _run([*build, str(ROOT)], 900)
    built = time.monotonic()

    stack = Stack(tmp_path)
    try:
        stack.compose("up", "-d", "--no-build", *STARTED)
        assert not [s for s in STARTED if not stack.containers(s)], "a service has no container"

        # healthchecks do not run under podman here: ask each service as its healthcheck would
        for service in STARTED:
            _wait(f"{service} ready", lambda s=service: _ready(stack, s), 120, lambda s=service: _why(stack, s))
        ready = time.monotonic()

        # synthetic trades at the simulator: opened at once, closed after SYNTHETIC_HOLD_S (30 s)
        def closed() -> int:
            return int(stack.redis("HGET", "strategy:portfolio:state", "closed_trades").strip() or 0)

        _wait("a closed trade in strategy:portfolio:state", lambda: closed() > 0, 150,
              lambda: stack.logs("executor") + stack.logs("strategy"))
        assert stack.redis("KEYS", "strategy:trades:closed:*").split()
        assert "trade_closed" in stack.redis("XREVRANGE", "strategy:events", "+", "-", "COUNT", "200").split()

        # Prometheus scrapes every arb service that serves metrics (all but the simulator)
        expected = {f"{name}:9100" for name in ARB if name != "sim"}

        def scraped() -> set[str]:
            try:
                targets = _prometheus(stack, "/api/v1/targets")["activeTargets"]
            except OSError:
                return set()
            return {t["labels"]["instance"] for t in targets if t["health"] == "up"}

        _wait(f"Prometheus scraping {sorted(expected)}", lambda: scraped() == expected, 60,
              lambda: f"up: {sorted(scraped())}")
        assert _prometheus(stack, "/api/v1/alertmanagers")["activeAlertmanagers"], "Prometheus has no Alertmanager"
        checked = time.monotonic()

        stack.down()
        assert stack.containers() == [], "containers left after down"
        print(f"\ncompose: build {built - started:.0f} s, up and ready {ready - built:.0f} s, "
              f"trades and scrapes {checked - ready:.0f} s, down {time.monotonic() - checked:.0f} s")
    finally:  # after a failure too; what went wrong above stays the error reported
        if stack.containers():
            stack.compose("down", "-v", timeout=180, check=False)
