"""The alert rules (promtool's unit tests), the Grafana dashboards as provisioned files, and a
real Prometheus scraping a running `arb up`: every dashboard query returns data and every
alert expression evaluates."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.conftest import free_port
from tests.test_strategy_service import wait_for

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
ALERTS = ROOT / "prometheus" / "alerts.yml"


def _tool(name: str) -> str:
    """A Prometheus binary from PATH; in CI its absence is a failure, elsewhere a skip."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (Debian's prometheus package; .ci/run installs it)")
        pytest.skip(f"{name} is not installed (apt-get install prometheus)")
    return path


def _queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard panel target."""
    return [(f"{path.name}: {panel['title']}", target["expr"]) for path in DASHBOARDS
            for panel in json.loads(path.read_text())["panels"] for target in panel["targets"]]


def _alert_exprs() -> list[tuple[str, str]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [(rule["alert"], rule["expr"]) for group in groups for rule in group["rules"]]


def test_the_alert_rules_pass_their_unit_tests_and_the_config_checks():
    promtool = _tool("promtool")
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", str(ROOT / "prometheus" / "alerts_test.yml")],
                 ["check", "config", "--syntax-only", str(ROOT / "prometheus" / "prometheus.yml")]):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
    for name, _ in _alert_exprs():  # every alert has a runbook line
        rule = next(r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"] if r["alert"] == name)
        assert rule["annotations"]["runbook"] and rule["labels"]["severity"] in ("critical", "warning")


def test_the_dashboards_are_provisionable_grafana_json():
    provisioning = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = provisioning["datasources"][0]["uid"]
    dashboards = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/arb.yml").read_text())
    assert dashboards["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert len(DASHBOARDS) >= 3
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] not in uids and board["title"] and board["panels"]
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == uid and panel["targets"], (path.name, panel["title"])
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, (path.name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid and target["expr"].strip()
                assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


@pytest.mark.slow
async def test_prometheus_scraping_arb_up_has_data_for_every_panel_and_evaluates_every_alert(tmp_path, redis_url,
                                                                                            prefix):
    prometheus = _tool("prometheus")
    base = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "VENUE_ENV", "ENVIRONMENT")}
    if not shutil.which("redis-server"):
        env.update(REDIS_URL=redis_url, REDIS_KEY_PREFIX=prefix)
    env.update(PYTHONPATH=str(ROOT), SIM_PORT=str(free_port()), ARB_STATE_DIR=str(tmp_path / "state"),
               SYNTHETIC_HOLD_S="2", SIGNAL_COOLDOWN_S="2", MAX_CONCURRENT_TRADES="1")  # rejections too
    up = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--duration", "120", "--metrics-port",
                           str(base)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    prom = None
    try:
        ports = []
        for line in up.stdout:
            ports += re.findall(r"metrics http://127\.0\.0\.1:(\d+)/metrics", line)
            if " is up;" in line or up.poll() is not None:
                break
        assert len(ports) == 4, "arb up did not come up"
        port = free_port()
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": [str(ALERTS)],
                  "scrape_configs": [{"job_name": "arb", "static_configs": [{"targets": [
                      f"127.0.0.1:{p}" for p in ports]}]}]}
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        prom = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api = f"http://127.0.0.1:{port}/api/v1"
        async with aiohttp.ClientSession() as http:

            async def query(expr: str) -> dict:
                async with http.get(f"{api}/query", params={"query": expr}) as response:
                    return await response.json()

            async def trades_closed() -> bool:
                try:
                    body = await query("sum(arb_executor_trades_successful_total) >= 2 and "
                                       "sum(arb_executor_rejections_total) > 0")
                except aiohttp.ClientError:
                    return False
                return bool(body.get("data", {}).get("result"))

            await wait_for(trades_closed, timeout_s=90)
            later = f"min(timestamp(up{{job='arb'}})) > {time.time() + 1.5}"  # two more scrapes of every target

            async def scraped() -> bool:
                return bool((await query(later))["data"]["result"])

            await wait_for(scraped)
            empty = []
            for where, expr in _queries():
                body = await query(expr)
                assert body["status"] == "success", (where, expr, body)
                if not body["data"]["result"]:
                    empty.append(where + ": " + expr)
            assert empty == [], "panels without data:\n" + "\n".join(empty)
            for name, expr in _alert_exprs():
                body = await query(expr)
                assert body["status"] == "success", (name, body)
            async with http.get(f"{api}/rules") as response:
                rules = [r for g in (await response.json())["data"]["groups"] for r in g["rules"]]
            assert len(rules) == len(_alert_exprs()) and all(r["health"] == "ok" for r in rules), rules
    finally:
        for proc in (prom, up):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if up.stdout:
            up.stdout.close()
