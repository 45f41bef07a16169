"""`arb up` and the inspection commands: the whole stack from one command on a fresh state
folder, refusals at once, a SIGTERM that leaves nothing open at the venue, and `arb status` /
`arb trades` printing what Redis holds."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from services.sim.server import SimServer
from services.up import Worker, plan, refusals
from services.views import read_view, render_status, render_trades
from shared.settings import Settings
from tests.conftest import free_port, serve_app
from tests.test_strategy_service import wait_for

ARB = [sys.executable, "-m", "services.cli"]
ROOT = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    """The environment of an `arb up` child: its own redis-server on a free port when one is on
    PATH (what a user gets where nothing answers at REDIS_URL), else the tests' Redis under this
    test's prefix. Never 127.0.0.1:6379, which may be somebody else's."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "VENUE_ENV", "ENVIRONMENT")}
    if shutil.which("redis-server"):  # nothing answers there: arb up starts its own redis-server
        env.update(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    else:
        env.update(REDIS_URL=redis_url, REDIS_KEY_PREFIX=prefix)
    env.update({"PYTHONPATH": str(ROOT), "SIM_PORT": str(free_port()), "LOG_LEVEL": "INFO",
                "ARB_STATE_DIR": str(tmp_path / "state"), **extra})
    return env


def _summary_figure(out: str, label: str) -> str:
    match = re.search(rf"^{label}\s+(.*)$", out, re.M)
    assert match, f"no {label!r} line in:\n{out}"
    return match.group(1)


@pytest.mark.slow
def test_arb_up_on_a_fresh_state_folder_trades_on_the_simulator_and_exits_0_with_a_summary(tmp_path, redis_url,
                                                                                          prefix):
    env = _env(tmp_path, redis_url, prefix, SYNTHETIC_HOLD_S="3", SIGNAL_COOLDOWN_S="5")
    done = subprocess.run([*ARB, "up", "--duration", "20", "--metrics-port", str(free_port())], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for worker in ("ingest-bybit", "latency", "strategy", "executor"):
        assert re.search(rf"\] {worker}: up \(pid \d+", out), out
    trades = _summary_figure(out, "trades")
    closed = int(trades.split()[0])
    assert closed >= 2 and trades.endswith(", 0 open"), trades  # traded, and nothing left open
    assert int(_summary_figure(out, "market data").split()[0].replace(",", "")) > 100
    if shutil.which("redis-server"):  # its data stayed in the state folder, in the AOF
        assert any((tmp_path / "state" / "redis").rglob("*.aof*"))
    assert not (tmp_path / "state" / "up.pid").exists()


@pytest.mark.parametrize("extra, args, message", [
    ({"MAX_CONCURRENT_TRADES": "0"}, [], "config error: MAX_CONCURRENT_TRADES='0' is invalid: Input should be greater "
                                         "than or equal to 1"),
    ({}, ["--mode", "live"], "arb up: live mode needs the safety limits set: MAX_DAILY_LOSS, POSITION_SIZE_LIMIT"),
    ({"VENUE_ENV": "mainnet", "MAX_DAILY_LOSS": "50", "POSITION_SIZE_LIMIT": "10", "BYBIT_API_KEY": "k",
      "BYBIT_API_SECRET": "s"}, ["--mode", "live"], "arb up: live mode on VENUE_ENV=mainnet trades real money: "
                                                    "add --confirm-mainnet"),
    ({"VENUE_ENV": "demo"}, [], "arb up: synthetic mode places orders at Bybit on VENUE_ENV=demo: set "
                               "BYBIT_DEMO_API_KEY and BYBIT_DEMO_API_SECRET"),
    ({}, ["--mode", "cross", "--venues", "bybit,nasdaq"], "--venues: no venue 'nasdaq'"),
    ({}, ["--symbols", "BTCUSD,FOOUSDT"], "arb up: BTCUSD, FOOUSDT are not perpetuals the simulator lists (it lists "
                                          "BTCUSDT, ETHUSDT, SOLUSDT, DOGEUSDT, and SIM0USDT, SIM1USDT ... for load); "
                                          "BTCUSD: did you mean BTCUSDT?"),
])
def test_a_bad_setting_stops_arb_up_at_once_with_its_one_line_error(tmp_path, redis_url, prefix, extra, args,
                                                                    message):
    env = _env(tmp_path, redis_url, prefix, **extra)
    done = subprocess.run([*ARB, "up", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[0].startswith(message), done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "state").exists()  # nothing was started


@pytest.mark.slow
async def test_sigterm_with_active_trades_leaves_no_open_position_at_the_simulator(tmp_path, redis_url, prefix):
    key, secret = "sim-api-key", "sim-api-secret"
    server = SimServer(["BTCUSDT", "ETHUSDT"], seed=4, step_ms=10, api_keys={key: secret})
    async with serve_app(server.app()) as base:
        env = _env(tmp_path, redis_url, prefix, SIM_PORT=base.rsplit(":", 1)[1], SYMBOLS_TO_TRADE="BTCUSDT,ETHUSDT",
                   SYNTHETIC_HOLD_S="600")
        proc = await asyncio.create_subprocess_exec(*ARB, "up", "--no-sim", "--metrics-port", str(free_port()),
                                                    cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        try:
            account = server.matching.account(key)
            await wait_for(lambda: _open_lots(account), timeout_s=60)  # a trade is open at the venue
            proc.send_signal(signal.SIGTERM)
            out = (await asyncio.wait_for(proc.communicate(), 60))[0].decode()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, out
    assert "stopping executor (closing its open trades)" in out and _summary_figure(out, "trades").endswith(", 0 open")
    assert {k: p.lots for k, p in account.positions.items() if p.lots} == {}
    assert not account.open_orders()


async def _open_lots(account) -> bool:
    return any(p.lots for p in account.positions.values())


def test_the_plan_pins_strategy_and_executor_only_with_four_cpus_and_skips_taken_ports():
    s = Settings(_env_file=None, symbols_to_trade="BTCUSDT")
    taken = {9102}
    two = plan(s, "synthetic", ["bybit"], [0, 1], 9101, free=lambda p: p not in taken)
    assert [(w.name, w.cpu, w.metrics_port) for w in two.workers] == [
        ("ingest-bybit", None, 9101), ("latency", None, 9103), ("executor", None, 9104), ("strategy", None, 9105)]
    assert two.workers[2].argv[:5] == ["executor", "--mode", "synthetic", "--execution", "live"]
    four = plan(s, "cross", ["bybit", "binance", "okx"], [0, 1, 2, 3], 9101)
    pins = {w.name: w.cpu for w in four.workers if w.cpu is not None}
    assert pins == {"strategy": 2, "executor": 3} and four.execution == "paper"
    assert "--cpu" in next(w for w in four.workers if w.name == "executor").argv
    assert isinstance(four.workers[0], Worker) and [w.name for w in four.workers][:3] == [
        "ingest-bybit", "ingest-binance", "ingest-okx"]


def test_refusals_name_what_to_set():
    s = Settings(_env_file=None, environment="production")
    assert s.venue_env == "mainnet" and s.position_size_limit == Decimal(100)
    errors = refusals(s, "live", confirm_mainnet=True)
    assert errors == ["live mode places orders at Bybit on VENUE_ENV=mainnet: set BYBIT_API_KEY and BYBIT_API_SECRET",
                      "live mode needs the safety limits set: MAX_DAILY_LOSS (USD), e.g. MAX_DAILY_LOSS=50 "
                      "POSITION_SIZE_LIMIT=10 (deployment guide, phase 3)"]
    assert refusals(Settings(_env_file=None), "synthetic", False) == []  # the simulator's key is built in
    assert refusals(s, "paper", False) == ["--mode: 'paper' is not one of: synthetic, cross, live"]


def test_cross_mode_with_live_execution_is_refused_at_a_venue_without_live_trading_or_without_its_keys():
    demo = Settings(_env_file=None, venue_env="demo", max_daily_loss=50, position_size_limit=10)
    assert refusals(demo, "cross", False, "live", ["bybit", "okx"]) == [
        "cross mode places orders at Bybit on VENUE_ENV=demo: set BYBIT_DEMO_API_KEY and BYBIT_DEMO_API_SECRET",
        "cross mode places orders at OKX on VENUE_ENV=demo: set OKX_DEMO_API_KEY, OKX_DEMO_API_SECRET and "
        "OKX_DEMO_API_PASSPHRASE"]
    keyed = demo.model_copy(update={name: SecretStr("x") for name in (
        "bybit_demo_api_key", "bybit_demo_api_secret", "okx_demo_api_key", "okx_demo_api_secret")})
    assert refusals(keyed, "cross", False, "live", ["bybit", "okx"]) == [
        "cross mode places orders at OKX on VENUE_ENV=demo: set OKX_DEMO_API_KEY, OKX_DEMO_API_SECRET and "
        "OKX_DEMO_API_PASSPHRASE"]  # all three, the passphrase too
    keyed = keyed.model_copy(update={"okx_demo_api_passphrase": SecretStr("x")})
    assert refusals(keyed, "cross", False, "live", ["bybit", "okx"]) == []
    assert refusals(keyed, "cross", False, "live", ["bybit", "kucoin"]) == [
        "--execution live: no live trading at kucoin yet; live trading is at bybit, okx, bitget, binance (e.g. "
        "--venues bybit,okx)"]
    assert refusals(keyed, "cross", False, "live", ["bitget", "binance"]) == [
        "cross mode places orders at Bitget on VENUE_ENV=demo: set BITGET_DEMO_API_KEY, BITGET_DEMO_API_SECRET and "
        "BITGET_DEMO_API_PASSPHRASE",
        "cross mode places orders at Binance on VENUE_ENV=demo: set BINANCE_DEMO_API_KEY and BINANCE_DEMO_API_SECRET"]
    mainnet = keyed.model_copy(update={"venue_env": "mainnet", "max_daily_loss": None})
    assert [e.split(":")[0] for e in refusals(mainnet, "cross", False, "live", [])] == [
        "live execution on VENUE_ENV=mainnet trades real money", "live execution needs the safety limits set"]
    sim = Settings(_env_file=None)  # the simulator's keys are built in, and no money is at stake
    assert refusals(sim, "cross", False, "live", ["bybit", "okx"]) == []
    assert refusals(sim, "cross", False, "paper", ["binance"]) == []
    assert refusals(sim, "synthetic", False, "paper")[0].startswith("--execution paper: synthetic mode places real")
    assert plan(sim, "cross", ["bybit", "okx"], [], 9101, execution="live").execution == "live"
    assert "live" in next(w for w in plan(sim, "cross", ["bybit", "okx"], [], 9101, execution="live").workers
                          if w.name == "executor").argv


async def test_status_and_trades_print_what_redis_holds(r, prefix, redis_url):
    s = f"{prefix}strategy:"
    await r.hset(s + "portfolio:state", mapping={
        "starting_capital": "20000", "available_capital": "17500.25", "total_open_positions": "2500",
        "active_trades": "1", "cumulative_pnl": "0.25", "fees_paid": "1.5", "funding_paid": "0", "closed_trades": "1",
        "win_count": "1", "loss_count": "0", "win_rate": "1.0000", "utilization": "0.1250", "leg_out_count": "0",
        "trading": "halted", "halt_reason": "daily_loss", "halt_detail": "lost $60 today (UTC), the limit is $50"})
    await r.hset(s + "trades:active:aaa111", mapping={
        "trade_id": "aaa111", "symbol": "ETHUSDT", "long_exchange": "binance", "short_exchange": "okx",
        "status": "active", "qty": "0.50", "position_size_usd": "2500", "entry_spread_bps": "31.5",
        "projected_profit_usd": "4.20", "entry_time": "1795000000000"})
    await r.hset(s + "marks", mapping={
        "ts_ms": "1795000000000", "open_trades": "1", "aaa111:spread_bps": "12.25",
        "aaa111:unrealised_pnl_usd": "-1.0375", "unrealised_pnl_usd": "-1.0375", "equity_usd": "19999.2125",
        "unpriced_trades": "0"})
    await r.hset(s + "trades:closed:bbb222", mapping={
        "trade_id": "bbb222", "symbol": "BTCUSDT", "long_exchange": "bybit", "short_exchange": "okx", "qty": "0.010",
        "position_size_usd": "1000", "outcome": "closed", "close_reason": "profit_target", "actual_profit_usd": "0.25",
        "leg_out_events": "0", "exit_time": "1795000000000", "entry_long_price": "100000.0",
        "entry_short_price": "100070.0", "exit_long_price": "100039.9", "exit_short_price": "100050.0",
        "projected_profit_usd": "0.31", "price_pnl_usd": "0.599", "fees_usd": "0.349", "funding_usd": "0"})
    await r.hset(s + "latency:okx", mapping={"latency_ms": "12.5", "rtt_ms": "30.1", "is_stale": "1",
                                             "reason": "no poll succeeded", "local_time_ms": "1795000000000"})
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        view = await read_view(client, prefix, closed=True)
    finally:
        await client.aclose()
    text = render_status(view)
    assert "trading        HALTED (daily_loss): lost $60 today (UTC), the limit is $50" in text
    assert "capital        $17,500.25 available of $20,000.00; $2,500.00 in 1 active trades (utilization 12.5%)" in text
    assert re.search(r"aaa111\s+ETHUSDT\s+binance/okx\s+active\s+0\.50\s+\$2,500\.00\s+31\.5\s+12\.2\s+\$4\.20\s+"
                     r"-\$1\.04", text)
    assert re.search(r"unrealised     -\$1\.04 on 1 open trades; equity \$19,999\.21 \(marked \S+ ago\)", text)
    assert re.search(r"okx\s+12\.5\s+30\.1\s+STALE no poll succeeded", text)
    closed = "\n".join(render_trades(view, closed=True))
    # what a reader recomputes the PnL from: the price PnL 0.010 x (100,039.9 - 100,000.0 + 100,070.0 - 100,050.0)
    # = 0.599, then PnL = price - fees - funding = 0.599 - 0.349 - 0 = 0.25
    assert re.search(r"bbb222\s+BTCUSDT\s+bybit/okx\s+0\.010\s+\$1,000\.00\s+closed\s+profit_target\s+"
                     r"100000\.0/100070\.0\s+100039\.9/100050\.0\s+\$0\.31\s+\$0\.60\s+\$0\.35\s+\$0\.00\s+\$0\.25\s+0",
                     closed)

    env = {**os.environ, "REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix, "PYTHONPATH": str(ROOT)}
    shown = subprocess.run([*ARB, "trades", "--closed"], env=env, capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and "bbb222" in shown.stdout and "profit_target" in shown.stdout


@pytest.mark.slow
def test_without_redis_server_arb_up_runs_on_an_in_process_fakeredis_and_says_nothing_persists(tmp_path, redis_url,
                                                                                              prefix):
    bare = tmp_path / "bin"  # a PATH with Python only: no redis-server to find
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    env = _env(tmp_path, redis_url, prefix, PATH=str(bare))
    env.update(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing answers there
    env.pop("REDIS_KEY_PREFIX", None)
    done = subprocess.run([*ARB, "up", "--duration", "12", "--metrics-port", str(free_port())], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "an in-process fakeredis" in done.stdout and "nothing persists" in done.stdout
    assert int(_summary_figure(done.stdout, "trades").split()[0]) >= 1  # it traded through it


@pytest.mark.parametrize("args, code, message", [
    (["stop", "--state-dir", "nowhere"], 2, "no `arb up` running from nowhere (nothing holds nowhere/up.pid)"),
    (["check", "executor"], 1, "executor: no health key (down, hung, or not started)"),
    (["history", "prices", "--start", "2025-06-01", "--end", "2025-06-02"], 2, "kind: 'prices' is not klines, funding or instruments"),
    (["history", "klines"], 2, "--start and --end: both are needed"),
    (["history", "klines", "--start", "2025-06-02", "--end", "2025-06-01"], 2, "--end 2025-06-01 is not after --start"),
    (["history", "klines", "--start", "June", "--end", "2025-06-01"], 2, "--start: 'June' is not a date"),
    (["history", "klines", "--start", "2025-06-01", "--end", "2999-01-01"], 2,
     "history: the range ends in the future (2999-01-01 00:00 UTC)"),
    (["replay", "nope.jsonl"], 2, "replay: nope.jsonl: No such file or directory"),
    (["backtest", "spread", "nope.jsonl"], 2, "backtest: nope.jsonl: No such file or directory"),
])
def test_operator_commands_refuse_with_one_clear_line(args, code, message, redis_url, prefix, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from services.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args, env={"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix,
                                                "ARB_STATE_DIR": str(tmp_path / "none")})
    assert result.exit_code == code, result.output
    assert result.output.strip().splitlines()[-1].startswith(message), result.output
    assert "Traceback" not in result.output


def test_the_summary_names_what_is_left_open_and_where_and_is_clean_only_with_nothing_open_and_exit_0():
    from services.up.totals import Totals

    t = Totals(ticks=12, portfolio={"signals_taken": "3", "rejected_signals": "1", "closed_trades": "2",
                                    "active_trades": "1", "cumulative_pnl": "-1.5", "trading": "halted",
                                    "halt_reason": "manual", "halt_detail": "arb stop --emergency"})
    assert t.verdict({"executor": 0}, "sim")[1] is True
    t.open_trades = [{"trade_id": "abc123def456", "symbol": "ETHUSDT", "status": "exiting", "long_held": "0",
                      "long_exchange": "bybit", "short_held": "-1.3", "short_exchange": "bybit"}]
    lines, clean = t.verdict({"executor": 0, "sim": -9}, "demo")
    assert not clean
    assert "signals       4 read: 3 taken, 1 rejected; 0 taken were never filled" in lines
    assert any(line.startswith("trading       HALTED (manual): arb stop --emergency. No new trades until `arb resume`")
               for line in lines)
    assert "OPEN TRADES LEFT at the venue (VENUE_ENV=demo); the next `arb up` in this folder picks them up:" in lines
    assert "  abc123def456 ETHUSDT (exiting): long 0 at bybit, short 1.3 at bybit" in lines
    assert "this run      3 signals taken, 1 rejected; 2 trades closed, PnL -$1.50" in lines  # nothing before it
    assert lines[-1] == "exit codes    sim -9"
    assert not Totals(open_trades=[]).verdict({"executor": 1}, "sim")[1]
    assert not Totals(open_trades=t.open_trades).verdict({"executor": 0}, "sim")[1]  # open: not clean
    t.before = {"signals_taken": "1", "rejected_signals": "1", "closed_trades": "1", "cumulative_pnl": "-2.5",
                "closed_outside_trades": "0"}
    t.portfolio["closed_outside_trades"] = "1"
    lines = t.verdict({}, "sim")[0]
    assert lines[1:4] == [
        "this run      2 signals taken, 0 rejected; 1 trades closed, PnL $1.00",
        "              1 of them found closed outside this system: the venue no longer held their legs "
        "(`arb trades --closed`, reason closed_outside)",
        "all runs      (this Redis's portfolio, strategy:portfolio:state)"]


def test_a_symbol_the_simulator_does_not_list_is_refused_with_the_real_names_close_to_it():
    from services.sim.market import unmodelled

    assert unmodelled(["BTCUSDT", "ETHUSDT", "SIM0USDT", "SIM39USDT"]) == ""  # SIM{n}USDT: load tests
    assert unmodelled(["BTCUSD"]).endswith("; BTCUSD: did you mean BTCUSDT?")
    assert unmodelled(["FOOUSDT"]) == ("FOOUSDT is not a perpetual the simulator lists (it lists BTCUSDT, ETHUSDT, "
                                       "SOLUSDT, DOGEUSDT, and SIM0USDT, SIM1USDT ... for load)")  # nothing close
    assert unmodelled(["SIMUSDT"]).startswith("SIMUSDT is not") and unmodelled(["SIM1USDTX"]).startswith("SIM1USDTX")


@pytest.mark.parametrize("args", [["stop", "--emergency", "--reason", "test"], ["resume"]])
def test_an_operator_command_with_no_stack_running_and_no_redis_url_refuses_instead_of_writing_somewhere(
        args, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from services.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    result = CliRunner().invoke(app, args, env={"ARB_STATE_DIR": str(tmp_path / "none")})
    assert result.exit_code == 2, result.output
    assert f"no `arb up` is running from {tmp_path / 'none'} and REDIS_URL is not set" in result.output


@pytest.mark.redis
async def test_fresh_deletes_this_systems_keys_only_and_refuses_while_a_real_venue_holds_open_trades(
        r, prefix, settings, tmp_path):
    from services.up.processes import StackError
    from services.up.redis_place import RedisPlace
    from services.up.stack import Stack

    ours = [f"{prefix}md:tickers", f"{prefix}strategy:events", f"{prefix}strategy:trades:active:abc",
            f"{prefix}health:executor", f"{prefix}metrics:executor", f"{prefix}bybit:linear:tickers:BTCUSDT",
            f"{prefix}okx:swap:tickers:BTCUSDT"]
    theirs = [f"{prefix}sessions:42", f"{prefix}queue:jobs", f"{prefix}strategyx", f"{prefix}health:web",
              f"{prefix}metrics:requests"]  # health:* and metrics:* of some other program
    for key in ours + theirs:
        await r.set(key, "1") if "trades" not in key else await r.hset(key, mapping={"trade_id": "abc"})
    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        live = Stack(settings.model_copy(update={"venue_env": "demo"}), plan(settings, "synthetic", ["bybit"], [], 1),
                     tmp_path, True, None, fresh=True)
        live.redis = RedisPlace(settings.redis_url)
        with pytest.raises(StackError, match="--fresh: the facts hold 1 open trades on VENUE_ENV=demo"):
            await live.clear(client)
        assert await r.exists(*ours) == len(ours)  # nothing deleted
        sim = Stack(settings, plan(settings, "synthetic", ["bybit"], [], 1), tmp_path, True, None, fresh=True)
        sim.redis = RedisPlace(settings.redis_url)
        await sim.clear(client)
    finally:
        await client.aclose()
    assert await r.exists(*ours) == 0 and await r.exists(*theirs) == len(theirs)


def test_a_running_arb_up_is_known_by_the_lock_on_its_pid_file_not_by_a_pid_that_may_be_reused(tmp_path):
    from services.up.processes import PidLock, StackError, running_pid

    assert running_pid(tmp_path) == 0  # no file
    (tmp_path / "up.pid").write_text("1")  # left by a killed run; pid 1 is alive, but holds no lock
    assert running_pid(tmp_path) == 0
    lock = PidLock(tmp_path)
    lock.acquire()
    try:
        assert running_pid(tmp_path) == os.getpid()
        with pytest.raises(StackError, match=re.escape(f"arb up is already running from {tmp_path} (pid {os.getpid()})")):
            PidLock(tmp_path).acquire()
    finally:
        lock.release()
    assert running_pid(tmp_path) == 0 and not (tmp_path / "up.pid").exists()


@pytest.mark.skipif(not shutil.which("redis-server"), reason="starts a redis-server")
async def test_the_redis_arb_up_starts_takes_the_urls_password_without_showing_it_in_the_process_list(tmp_path):
    from urllib.parse import quote

    from services.up.redis_place import place

    port, password = free_port(), 'pa ss"wo\\rd'
    url = f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/0"
    (tmp_path / "logs").mkdir()
    settings = Settings(_env_file=None, redis_url=url)
    where = await place(settings, tmp_path, explicit=True)
    try:
        assert where.proc is not None and where.cli_line() == f"redis-cli -p {port} --askpass"
        assert password.encode() not in Path(f"/proc/{where.proc.pid}/cmdline").read_bytes()
        client = aioredis.Redis(port=port, password=password)
        try:
            assert await client.ping()
        finally:
            await client.aclose()
        bare = aioredis.Redis(port=port)
        try:
            with pytest.raises(Exception, match=r"(?i)auth"):
                await bare.ping()
        finally:
            await bare.aclose()
    finally:
        await where.stop()


def test_a_summary_that_could_not_be_read_is_not_a_clean_stop():
    from services.up.totals import Totals

    lines, clean = Totals(unread="ConnectionError: Connection refused").verdict({"executor": 0}, "sim")
    assert not clean and any(line.startswith("UNKNOWN       the final figures could not be read") for line in lines)


@pytest.mark.redis
async def test_arb_up_refuses_to_start_a_second_system_on_a_redis_where_one_runs(r, prefix, settings, tmp_path):
    from services.up.processes import StackError
    from services.up.redis_place import RedisPlace
    from services.up.stack import Stack

    await r.set(f"{prefix}health:executor", '{"pid": 4242}')  # kept fresh by a running executor
    stack = Stack(settings, plan(settings, "synthetic", ["bybit"], [], 1), tmp_path, True, None)
    stack.redis = RedisPlace(settings.redis_url)
    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        with pytest.raises(StackError, match=r"another system is running on the Redis at .* \(its executor keep"):
            await stack.alone(client)
        await r.delete(f"{prefix}health:executor")  # it stopped: its key went
        await stack.alone(client)
    finally:
        await client.aclose()


async def test_arb_reset_asks_deletes_this_systems_keys_only_and_refuses_while_a_stack_runs(r, redis_url, prefix,
                                                                                             tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from services.cli import app
    from services.up.processes import PidLock

    await r.set(f"{prefix}strategy:portfolio:state", "1")
    await r.xadd(f"{prefix}strategy:events", {"v": "1"})
    await r.set(f"{prefix}queue:jobs", "theirs")
    monkeypatch.chdir(tmp_path)
    env = {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix, "ARB_STATE_DIR": str(tmp_path / "state")}

    def arb(*args: str, **kw):  # the command runs its own event loop: in a thread of its own
        return asyncio.to_thread(CliRunner().invoke, app, list(args), env=env, **kw)

    (tmp_path / "state").mkdir()
    lock = PidLock(tmp_path / "state")
    lock.acquire()
    try:
        running = await arb("reset", "--yes")
    finally:
        lock.release()
    assert running.exit_code == 2 and "arb up is running from" in running.output
    asked = await arb("reset", input="n\n")
    assert asked.exit_code == 2 and "add --yes" in asked.output  # not a terminal: nobody to ask
    done = await arb("reset", "--yes")
    assert done.exit_code == 0 and "deleted this system's 2 keys" in done.output, done.output
    assert await r.get(f"{prefix}queue:jobs") == b"theirs"


def test_arb_reset_with_no_redis_running_deletes_the_data_arb_ups_own_redis_left(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from services.cli import app

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "state" / "redis"
    data.mkdir(parents=True)
    (data / "appendonly.aof").write_text("*1\r\n")
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "ARB_STATE_DIR": str(tmp_path / "state")}
    done = CliRunner().invoke(app, ["reset", "--yes"], env=env)
    assert done.exit_code == 0 and "the next arb up starts clean" in done.output and not data.exists()
    again = CliRunner().invoke(app, ["reset", "--yes"], env=env)
    assert again.exit_code == 0 and "nothing to reset" in again.output


def test_money_is_to_the_cent_with_the_sign_in_front_and_no_negative_zero():
    from services.views import money

    assert [money(x) for x in ("-0.0012", "-0.004", "0", None, "-0.006", "1234.5", "-1234.567")] == [
        "$0.00", "$0.00", "$0.00", "$0.00", "-$0.01", "$1,234.50", "-$1,234.57"]


@pytest.mark.parametrize("args, message", [
    (["up", "--mode", "synthetic", "--symbols", "all"], "--symbols all: synthetic mode trades named symbols"),
    (["strategy", "--shard", "2/2"], "--shard: shard 2 of 2: shards are numbered 0 to 1"),
    (["strategy", "--shard", "0/2"], "--shard: shard 0/2: the ingestors write MD_SHARDS=1 shards"),
])
def test_a_universe_or_a_shard_that_cannot_be_is_refused_with_one_clear_line(args, message, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from services.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args, env={"ARB_STATE_DIR": str(tmp_path / "state"), "MD_SHARDS": "1"})
    assert result.exit_code == 2 and message in result.output, result.output


async def test_redis_cluster_on_a_redis_that_is_no_cluster_node_says_so(redis_url, tmp_path):
    from services.up.processes import StackError
    from services.up.redis_place import place_cluster

    with pytest.raises(StackError, match="is not a cluster node"):
        await place_cluster(Settings(_env_file=None, redis_url=redis_url, redis_cluster=True), tmp_path, explicit=True)
