"""docker-compose.yml, the Dockerfile, .env.example, the Prometheus and Grafana files, checked
without containers (tests/test_compose.py runs the stack for real): a fresh clone with no .env
starts on the simulator; every command parses with the real `arb` command line; every variable
set is a setting; every mounted file is in the repository; every health check names the key its
service keeps; nothing is published beyond 127.0.0.1 and Redis not at all; Prometheus scrapes
each service on the metrics port it serves; Grafana is provisioned with the shipped dashboards."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer.main
import yaml

from services.cli import app
from shared.settings import Settings
from shared.venues import NAMES

ROOT = Path(__file__).resolve().parents[1]
RAW = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(RAW)
SERVICES = COMPOSE["services"]
ARB_SERVICES = {name: s for name, s in SERVICES.items() if s.get("image") == "perp-arb:latest"}
SETTINGS = {name.upper() for name in Settings.model_fields}
# read by compose for interpolation (or by Grafana), not by Settings
COMPOSE_ONLY = {"ARB_MODE", "GRAFANA_ADMIN_PASSWORD", "PROMETHEUS_PORT", "ALERTMANAGER_PORT", "GRAFANA_PORT"}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?([^}]*)\}")


def _fresh(value):
    """`value` as compose interpolates it on a fresh clone: no .env and none of its variables set."""
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    if not isinstance(value, str):
        return value

    def default(m: re.Match) -> str:
        _name, op, arg = m.groups()
        assert op in (":-", "-"), f"{m.group(0)}: a fresh clone has no .env, so every variable needs a default"
        return arg

    out = _VAR.sub(default, value.replace("$$", "\0"))
    assert "$" not in out, f"{value!r}: write variables as ${{NAME:-default}}"
    return out.replace("\0", "$")


FRESH = _fresh(SERVICES)


def _cli():
    return typer.main.get_command(app)


def _health_name(command: list[str]) -> str:
    """The health key a worker keeps, from its command (services/cli/workers.py's heartbeat names)."""
    return f"ingest-{command[command.index('--venue') + 1]}" if command[0] == "ingest" else command[0]


def _metrics_port(service: dict) -> str | None:
    """The port the service serves /metrics on: --metrics-port, else METRICS_PORT (arb sim serves none)."""
    command = service["command"]
    if command[0] == "sim":
        return None
    if "--metrics-port" in command:
        return command[command.index("--metrics-port") + 1]
    return (service.get("environment") or {}).get("METRICS_PORT")


def test_a_fresh_clone_starts_everything_with_plain_up_and_no_env_file():
    assert set(SERVICES) == {"redis", "sim", "ingest-bybit", "ingest-binance", "ingest-okx", "latency", "strategy",
                             "executor", "prometheus", "alertmanager", "grafana"}
    assert not [name for name, s in SERVICES.items() if s.get("profiles")], "plain `up` must start every service"
    for name, service in SERVICES.items():
        for env_file in service.get("env_file") or []:
            assert isinstance(env_file, dict) and env_file["required"] is False, f"{name}: .env must stay optional"
    # podman-compose cannot parse ${VAR:?message with spaces}; and a fresh clone sets nothing: no :? at all
    assert ":?" not in RAW and FRESH


def test_every_service_command_parses_with_the_real_command_line():
    cli = _cli()
    for name, service in FRESH.items():
        if name not in ARB_SERVICES:
            continue
        command = service["command"]
        sub = cli.commands.get(command[0])
        assert sub is not None, f"{name}: arb has no command {command[0]!r}"
        ctx = sub.make_context(command[0], list(command[1:]), resilient_parsing=False)  # raises on a bad option
        params = ctx.params
        if "mode" in params:
            assert params["mode"] in ("cross", "synthetic"), name
        if params.get("execution") is not None:
            assert params["execution"] in ("paper", "live"), name
        if "venue" in params and command[0] == "ingest":
            assert params["venue"] in NAMES, name
        if command[0] == "latency":
            assert set(params["venues"].split(",")) <= set(NAMES), name


def test_each_health_check_asks_for_the_key_its_service_keeps():
    check = _cli().commands["check"]
    for name, service in FRESH.items():
        if name not in ARB_SERVICES:
            continue
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "arb", "check"], name
        assert check.make_context("check", test[3:]).params["service"] == test[3]
        assert test[3] == ("sim" if name == "sim" else _health_name(service["command"])), name
    assert FRESH["redis"]["healthcheck"]["test"] == ["CMD-SHELL", "redis-cli ping | grep -q PONG"]


def test_every_variable_a_service_gets_is_a_setting():
    for name, service in SERVICES.items():
        if name in ARB_SERVICES:
            unknown = set(service.get("environment") or {}) - SETTINGS
            assert not unknown, f"{name} sets {unknown}, which no setting reads"
    interpolated = set(m.group(1) for m in _VAR.finditer(RAW))
    assert interpolated <= SETTINGS | COMPOSE_ONLY, interpolated - SETTINGS - COMPOSE_ONLY


def test_without_env_the_stack_trades_at_the_simulator(monkeypatch):
    for field in Settings.model_fields:  # this shell's settings are not the containers'
        monkeypatch.delenv(field.upper(), raising=False)
    executor = FRESH["executor"]
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in executor["environment"].items()})
    params = _cli().commands["executor"].make_context("executor", executor["command"][1:]).params
    assert settings.venue_env == "sim" and params["mode"] == "synthetic" and params["execution"] == "live"
    assert settings.sim_host in SERVICES and settings.trading_endpoints("bybit").rest == "http://sim:8790"
    assert re.match(r"redis://redis:6379/\d+$", settings.redis_url)  # the compose network's Redis
    for name in ARB_SERVICES:
        if name != "sim":
            assert FRESH[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
            assert FRESH[name]["depends_on"]["sim"]["condition"] == "service_healthy", name


def test_nothing_is_published_beyond_localhost_and_redis_not_at_all():
    for name, service in FRESH.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port}"
            assert port.split(":")[1] != "6379", f"{name}: 6379 is a local redis-server's port"
    redis = FRESH["redis"]
    # no password: then Redis must stay inside the compose network
    assert not redis.get("ports") and "--requirepass" not in redis["command"]
    assert "--appendonly yes" in redis["command"] and "--protected-mode no" in redis["command"]
    grafana = FRESH["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert grafana and "${GRAFANA_ADMIN_PASSWORD:-" in SERVICES["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]


def test_every_mounted_file_is_in_the_repository():
    mounts = 0
    for name, service in FRESH.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
                mounts += 1
            else:
                assert source in COMPOSE["volumes"], f"{name}: volume {source} is not declared"
    assert mounts >= 4


def test_prometheus_scrapes_every_service_on_the_port_it_serves_metrics_on():
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    expected = set()
    for name, service in FRESH.items():
        if name in ARB_SERVICES and (port := _metrics_port(service)):
            assert service["environment"]["METRICS_HOST"] == "0.0.0.0", f"{name}: metrics not reachable"
            expected.add(f"{name}:{port}")
    assert expected and targets == expected
    alertmanagers = {t for a in config["alerting"]["alertmanagers"] for g in a["static_configs"] for t in g["targets"]}
    assert alertmanagers == {"alertmanager:9093"} and "alertmanager" in SERVICES
    for rules in config["rule_files"]:
        assert yaml.safe_load((ROOT / "prometheus" / rules).read_text())["groups"]
    mount = next(v for v in FRESH["prometheus"]["volumes"] if v.startswith("./prometheus:"))
    assert f"--config.file={mount.split(':')[1]}/prometheus.yml" in FRESH["prometheus"]["command"]


def test_grafana_is_provisioned_with_the_shipped_dashboards():
    mounts = dict(v.split(":")[:2] for v in FRESH["grafana"]["volumes"])
    by_target = {target: source for source, target in mounts.items()}
    provisioning = ROOT / by_target["/etc/grafana/provisioning"]
    providers = [p for f in (provisioning / "dashboards").glob("*.yml") for p in yaml.safe_load(f.read_text())["providers"]]
    assert providers
    for provider in providers:
        dashboards = ROOT / by_target[provider["options"]["path"]]  # KeyError: a path no volume provides
        assert dashboards == ROOT / "grafana" / "dashboards" and list(dashboards.glob("*.json"))
    sources = [d for f in (provisioning / "datasources").glob("*.yml") for d in yaml.safe_load(f.read_text())["datasources"]]
    assert {d["url"] for d in sources} == {"http://prometheus:9090"}
    uids = {d["uid"] for d in sources}
    for dashboard in (ROOT / "grafana" / "dashboards").glob("*.json"):
        used = {m for m in re.findall(r'"datasource":\s*\{[^}]*"uid":\s*"([^"]+)"', dashboard.read_text())}
        assert used and used <= uids, f"{dashboard.name}: data sources {used - uids} are not provisioned"
        json.loads(dashboard.read_text())


def _option_env_names() -> set[str]:
    """The environment variables the arb commands' own options read (e.g. ARB_CONFIRM_MAINNET)."""
    out = set()
    for command in _cli().commands.values():
        for param in command.params:
            env = param.envvar
            out |= set(env if isinstance(env, list | tuple) else [env] if env else [])
    return out


def test_env_example_names_only_real_settings():
    text = (ROOT / ".env.example").read_text()
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.M)
    assert names and not [n for n in names if n not in SETTINGS | COMPOSE_ONLY | _option_env_names()]
    # a live run's settings are all there
    for name in ("VENUE_ENV", "BYBIT_DEMO_API_KEY", "BYBIT_DEMO_API_SECRET", "BYBIT_API_KEY", "BYBIT_API_SECRET",
                 "MAX_DAILY_LOSS", "POSITION_SIZE_LIMIT", "ARB_CONFIRM_MAINNET"):
        assert name in names, name
    # copied as it is, it starts nothing live and sets nothing compose must keep for itself
    active = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", text, re.M))
    assert active.get("VENUE_ENV", "sim") == "sim" and not {"REDIS_URL", "SIM_HOST", "METRICS_PORT"} & set(active)


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
