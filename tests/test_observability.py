"""The alert rules (promtool's unit tests), the Grafana dashboards as provisioned files, and a
real Prometheus scraping a running `arb up`: every dashboard query returns data and every
alert expression evaluates."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from bisect import bisect_left
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
import yaml

from services.report import STAGES, TRACED, read_samples
from shared.metrics import LATENCY_BUCKETS_S, bucket_quantile
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


# stages timed from a stream entry's id, whose stamp is a whole millisecond: their samples are 0 or
# 1 ms apart, so a quantile jumps from the lowest bucket to 0.5-1 ms as the share of same-millisecond
# reads crosses it (seen in CI: p50 9 us in the snapshot, 0.51 ms in the scrape 5 s later)
WHOLE_MS = {"arb_strategy_queue_seconds"}


async def _report_agrees_with_prometheus(query, tmp_path: Path, env: dict) -> None:
    """Each stage's p50/p95/p99 in `arb report` (from the snapshots in Redis) and Prometheus's
    histogram_quantile over the same histogram fall within two buckets of each other (the
    snapshot is up to 5 s older than the scrape, and the buckets are 0.5-1 ms apart from 1 to
    5 ms: a p99 that moved from 1.98 to 2.57 ms in those seconds crossed two, seen in CI). A stage whose snapshot and scrape hold
    different samples is compared only when both hold 100 or more: a quantile of a handful
    moves by whole buckets with one sample more (seen: exchange stamp -> venue's answer)."""
    url = env.get("REDIS_URL") or (tmp_path / "state" / "redis.url").read_text().strip()
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        samples = await read_samples(client, env.get("REDIS_KEY_PREFIX", ""))
    finally:
        await client.aclose()
    compared = 0
    for name, label in STAGES + TRACED:
        count = await query(f"sum({name}_count)")
        scraped = float(count["data"]["result"][0]["value"][1]) if count["data"]["result"] else 0.0
        held = samples.buckets.get(name, {}).get(math.inf, 0.0)
        if held != scraped and min(held, scraped) < 100:
            continue
        for q in (0.5, 0.95, 0.99):
            mine = samples.quantile(name, q)
            body = await query(f"histogram_quantile({q}, sum by (le) ({name}_bucket))")
            result = body["data"]["result"]
            if mine is None or not result or result[0]["value"][1] == "NaN":
                continue
            theirs = float(result[0]["value"][1])
            compared += 1
            if name in WHOLE_MS and max(mine, theirs) <= 0.001:
                continue  # both say "within its millisecond": all a millisecond-stamped stage can say
            assert abs(bisect_left(LATENCY_BUCKETS_S, mine) - bisect_left(LATENCY_BUCKETS_S, theirs)) <= 2, \
                (label, q, mine, theirs)
    assert compared >= 12  # every stage that saw traffic


def test_the_report_interpolates_buckets_as_prometheus_does():
    # the alert test's histogram: 98 of 100 under 5 ms, 2 between 25 and 50 ms (promtool: 37.5 ms)
    buckets = [(0.005, 98), (0.025, 98), (0.05, 100), (math.inf, 100)]
    assert bucket_quantile(0.99, buckets) == pytest.approx(0.0375)
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.005 * 50 / 98)
    assert bucket_quantile(1.0, [(0.001, 1), (math.inf, 2)]) == 0.001  # the +Inf bucket: the highest bound
    assert bucket_quantile(0.5, [(0.001, 0), (math.inf, 0)]) is None


def test_the_alert_rules_pass_their_unit_tests_and_the_config_checks():
    promtool = _tool("promtool")
    tests = [str(ROOT / "prometheus" / name) for name in ("alerts_test.yml", "alerts_test_daily.yml")]
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", *tests],
                 ["check", "config", "--syntax-only", str(ROOT / "prometheus" / "prometheus.yml")]):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
    for name, _ in _alert_exprs():  # every alert has a runbook line
        rule = next(r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"] if r["alert"] == name)
        assert rule["annotations"]["runbook"] and rule["labels"]["severity"] in ("critical", "warning", "info")


# The deployment guide's tiers ("Alerts": critical, warning, info): each rule's severity and every
# comparison in its expression, in order (the thresholds, and the floors on how many trades or
# orders make a rate worth judging). A changed threshold or operator fails here even where
# promtool is not installed to run prometheus/alerts_test.yml.
TIERS = {
    "SuccessRateCritical": ("critical", [("<", 0.90), (">=", 10)]),
    "SuccessRateLow": ("warning", [("<", 0.95), (">=", 10)]),
    "SuccessRateFair": ("info", [(">=", 0.95), ("<", 0.98), (">=", 10)]),
    "LatencyHigh": ("warning", [(">", 0.015)]),
    "LatencyElevated": ("info", [(">", 0.010), ("<=", 0.015)]),
    "ErrorRateHigh": ("warning", [(">", 0.03), (">=", 20)]),
    # the last hour > 3x the 23 hours before's hourly average, at least 20, and a day of history
    "UnusualTradeVolume": ("warning", [(">", 3), (">=", 20), (">=", 0)]),
}
COMPARISON = re.compile(r"(<=|>=|==|!=|<|>)\s*(\d+(?:\.\d+)?)")


def _rules() -> dict[str, dict]:
    return {r["alert"]: r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}


def _comparisons(expr: str) -> list[tuple[str, float]]:
    return [(op, float(n)) for op, n in COMPARISON.findall(expr)]


def test_each_alert_tier_has_the_deployment_guides_thresholds():
    rules = _rules()
    for name, (severity, comparisons) in TIERS.items():
        assert rules[name]["labels"]["severity"] == severity, name
        assert _comparisons(rules[name]["expr"]) == comparisons, name
    for name in ("LatencyHigh", "LatencyElevated"):  # the p99 of signal -> order sent
        assert rules[name]["expr"].count("histogram_quantile(0.99, sum by (le) (rate("
                                         "arb_executor_signal_to_order_seconds_bucket[5m])))") == len(TIERS[name][1])
    # one quantity's tiers meet without a gap or an overlap: < 90 % critical, < 95 % warning,
    # 95-98 % info; p99 > 15 ms warning, 10-15 ms info
    assert TIERS["SuccessRateFair"][1][0] == (">=", TIERS["SuccessRateLow"][1][0][1])
    assert TIERS["LatencyElevated"][1][1] == ("<=", TIERS["LatencyHigh"][1][0][1])
    assert {r["labels"]["severity"] for r in rules.values()} == {"critical", "warning", "info"}
    normal = rules["NormalOperation"]
    assert normal["labels"]["severity"] == "info"
    assert normal["expr"] == 'vector(1) unless on() ALERTS{alertstate="firing", severity=~"critical|warning"}'


def test_latency_alerts_compare_at_a_bucket_bound():
    """histogram_quantile interpolates inside a bucket: at a bound, "p99 > 15 ms" means fewer
    than 99 % of the observations took 15 ms or less, whatever their spread."""
    checked = 0
    for name, rule in _rules().items():
        if "_seconds_bucket" in rule["expr"]:
            for _, threshold in _comparisons(rule["expr"]):
                assert threshold in LATENCY_BUCKETS_S, (name, threshold)
                checked += 1
    assert checked >= 4


def test_every_series_an_alert_reads_is_exported_by_a_service():
    from prometheus_client import CollectorRegistry

    from services.executor.service import ExecutorService
    from services.ingestor.service import Ingestor
    from services.latency.service import LatencyMonitor
    from services.strategy.service import StrategyService
    from shared.settings import Settings

    settings = Settings(redis_url="redis://127.0.0.1:1/0", venue_env="sim", _env_file=None)
    registry = CollectorRegistry()
    for service in (ExecutorService(settings), StrategyService(settings), Ingestor(settings, "bybit", ["BTCUSDT"]),
                    LatencyMonitor(settings, ["bybit"])):
        service.register_metrics(registry)
    families = list(registry.collect())  # a family with no sample yet (halt_reason) counts by its name
    exported = {f.name for f in families} | {sample.name for f in families for sample in f.samples}
    read = {m for _, expr in _alert_exprs() for m in re.findall(r"\barb_[a-z0-9_]+", expr)}
    assert read and read <= exported, sorted(read - exported)


def test_alertmanager_repeats_each_tier_at_its_review_interval():
    route = yaml.safe_load((ROOT / "prometheus" / "alertmanager.yml").read_text())["route"]
    by_severity = {r["matchers"][0]: r for r in route["routes"]}
    assert by_severity['severity="critical"']["repeat_interval"] == "15m"  # immediate action
    assert route["repeat_interval"] == "1h"  # warnings: review within the hour
    assert by_severity['severity="info"']["repeat_interval"] == "24h"  # review daily, in one message
    assert by_severity['severity="info"']["group_by"] == ["severity"]


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
    if shutil.which("redis-server"):  # arb up starts its own there
        env.update(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    else:
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
            await _report_agrees_with_prometheus(query, tmp_path, env)
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


async def test_arb_report_prints_what_the_snapshots_in_redis_hold(r, prefix, redis_url):
    from prometheus_client import CollectorRegistry

    from shared import metrics

    hist = metrics.LatencyHistogram()
    for us in (100, 200, 300, 40_000):
        hist.observe_ns(us * 1000)
    registry = CollectorRegistry()
    registry.register(metrics.CallbackCollector(lambda: [
        metrics.counter("arb_executor_trades_executed_total", "", {}, 4),
        metrics.counter("arb_executor_trades_successful_total", "", {}, 3),
        metrics.counter("arb_executor_trades_failed_total", "", {}, 1),
        metrics.counter("arb_executor_timeouts_total", "", {}, 1),
        hist.family("arb_executor_signal_to_order_seconds", "", {})]))
    await r.set(f"{prefix}metrics:executor", json.dumps({"ts_ms": 1, "families": metrics.snapshot(registry)}))
    env = {**os.environ, "REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "services.cli", "report"], env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert "4 executed: 3 successful, 1 failed (success rate 75.0%)" in done.stdout
    assert "timeouts 1" in done.stdout
    # cumulative: <= 100 us 1, <= 250 us 2, <= 500 us 3, <= 50 ms 4. p50 (rank 2) ends the 250 us
    # bucket; p95 (rank 3.8) and p99 (3.96) interpolate inside (25, 50] ms: 45 and 49 ms; the mean is
    # the exact sum over the count, (100 + 200 + 300 + 40,000) / 4 us = 10.15 ms, printed 10.1
    row = next(line for line in done.stdout.splitlines() if line.startswith("signal -> order sent"))
    assert row.split()[-5:] == ["4", "10.1", "0.250", "45.0", "49.0"], row
    await r.delete(f"{prefix}metrics:executor")
    empty = subprocess.run([sys.executable, "-m", "services.cli", "report"], env=env, capture_output=True, text=True,
                           timeout=30)
    assert empty.returncode == 2 and "no metrics snapshots" in empty.stderr
