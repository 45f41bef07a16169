"""docker-compose.yml, the Dockerfile, .env.example and the Prometheus files, checked without a
Docker engine: every command is a real `arb` command with real options, every health check
names the health key its service keeps, nothing is published beyond 127.0.0.1, Redis keeps an
AOF and wants a password, and Prometheus scrapes every worker."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main
import yaml

from services.cli import app
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ARB_SERVICES = {name: s for name, s in SERVICES.items() if s.get("image") == "perp-arb:latest"}
COMPOSE_ONLY = {"REDIS_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "ARB_MODE"}  # read by compose, not by Settings


def _cli():
    return typer.main.get_command(app)


def _health_name(command: list[str]) -> str:
    """The health key a worker keeps, from its command (cli.py's _run_until_signal calls)."""
    return f"ingest-{command[command.index('--venue') + 1]}" if command[0] == "ingest" else command[0]


def test_every_service_command_is_an_arb_command_with_options_it_has():
    cli = _cli()
    assert set(ARB_SERVICES) >= {"sim", "ingest-bybit", "latency", "strategy", "executor"}
    for name, service in ARB_SERVICES.items():
        command = service["command"]
        sub = cli.commands.get(command[0])
        assert sub is not None, f"{name}: arb has no command {command[0]!r}"
        options = {opt for param in sub.params for opt in param.opts}
        for word in command[1:]:
            if word.startswith("--"):
                assert word in options, f"{name}: arb {command[0]} has no option {word}"


def test_each_health_check_asks_for_the_key_its_service_keeps():
    for name, service in ARB_SERVICES.items():
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "arb", "check"], name
        assert test[3] == ("sim" if name == "sim" else _health_name(service["command"])), name
    assert "check" in _cli().commands


def test_nothing_is_published_beyond_localhost_and_redis_keeps_an_aof_behind_a_password():
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port}"
    redis = SERVICES["redis"]["command"]
    assert "--appendonly yes" in redis and "--requirepass ${REDIS_PASSWORD:?" in redis
    for name, service in ARB_SERVICES.items():
        if name != "sim":
            assert service["environment"]["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?"), name
            assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
    assert "${GRAFANA_ADMIN_PASSWORD:?" in SERVICES["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]


def test_env_example_names_only_real_settings():
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    fields = {name.upper() for name in Settings.model_fields}
    assert names and not [n for n in names if n not in fields | COMPOSE_ONLY]
    env_vars = {v for s in SERVICES.values() for v in (s.get("environment") or {})}
    assert not [v for v in env_vars if v.isupper() and v not in fields | COMPOSE_ONLY and not v.startswith("GF_")]


def test_prometheus_scrapes_every_worker_on_its_metrics_port():
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    port = ARB_SERVICES["executor"]["environment"]["METRICS_PORT"]
    assert targets == {f"{name}:{port}" for name in ARB_SERVICES if name != "sim"}
    for rules in config["rule_files"]:
        assert yaml.safe_load((ROOT / "prometheus" / rules).read_text())["groups"]


def test_the_dockerfile_builds_the_project_and_runs_as_a_user():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    base = next(line for line in lines if line.startswith("FROM "))
    assert re.match(r"FROM python:3\.1[1-9][\w.-]*$", base), base  # a Python the project supports, pinned
    copied = " ".join(line for line in lines if line.startswith("COPY "))
    assert all(part in copied for part in ("pyproject.toml", "shared", "services"))
    assert any("pip install ." in line for line in lines)
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1] not in ("USER root", "USER 0")
    assert 'ENTRYPOINT ["arb"]' in lines
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".git" in ignored  # secrets and history stay out of the image
