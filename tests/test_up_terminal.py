"""`arb up` as a person runs it: Ctrl+C typed in a real terminal (the terminal signals the whole
foreground process group, not one pid), a `kill -9` of the whole group and a start again in the
same folder, and the README's redis-cli lines typed while it runs."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
import redis

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
ARB = [sys.executable, "-m", "services.cli"]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shutil.which("redis-server"),
                                                   reason="arb up starts its own redis-server: none on PATH")]


def _env(state: Path, redis_port: int, **extra: str) -> dict[str, str]:
    """arb up with its own redis-server on `redis_port` (nothing answers there), trades held long
    enough to be open when it is stopped."""
    env = {k: v for k, v in os.environ.items() if k not in ("VENUE_ENV", "ENVIRONMENT", "REDIS_KEY_PREFIX")}
    env.update(PYTHONPATH=str(ROOT), REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", SIM_PORT=str(free_port()),
               ARB_STATE_DIR=str(state), SYNTHETIC_HOLD_S="600", SIGNAL_COOLDOWN_S="2", LOG_LEVEL="INFO",
               TERM="dumb", COLUMNS="200")
    env.update(extra)
    return env


class Terminal:
    """`arb up` in a pseudo-terminal of its own, as the foreground process group of that
    terminal's session, the way a shell runs a command; keys typed are written to the master."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = os.openpty()

        def controlling_terminal() -> None:  # after setsid: this terminal is ours, we are its foreground
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen([*ARB, *args], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                     start_new_session=True, preexec_fn=controlling_terminal)
        os.close(slave)
        self.out = ""

    def read(self, timeout_s: float = 0.5) -> str:
        while select.select([self.master], [], [], timeout_s)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the other side closed: everything is read
                break
            if not chunk:
                break
            self.out += chunk.decode(errors="replace")
            timeout_s = 0.05
        return self.out

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if match := re.search(pattern, self.read()):
                return match
            assert self.proc.poll() is None, f"arb up exited {self.proc.returncode} first:\n{self.out}"
        raise AssertionError(f"no {pattern!r} in {timeout_s:g} s:\n{self.out[-4000:]}")

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:  # a failed test leaves nothing running
            os.killpg(self.proc.pid, signal.SIGKILL)

    def type_ctrl_c(self) -> None:
        os.write(self.master, b"\x03")  # the line discipline turns it into SIGINT to the foreground group

    def finish(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.read()
        self.read(0.2)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError(f"arb up still running after {timeout_s:g} s:\n{self.out[-4000:]}")
        os.close(self.master)
        return self.proc.returncode


def _three_open(term: Terminal) -> None:
    term.wait_for(r"trades open 3\b", 120)


def _summary(out: str, label: str) -> str:
    """A line of the run's summary (not of the metrics report printed after it)."""
    summary = out.replace("\r", "\n").rpartition("=== arb up:")[2]
    found = re.search(rf"^{label}\s+(.*?)\s*$", summary, re.M)
    assert found, f"no {label!r} line in:\n{out[-3000:]}"
    return found.group(1)


def _facts(port: int, state: Path) -> list[dict[str, str]]:
    return _stored(port, state)[0]


def _stored(port: int, state: Path) -> tuple[list[dict[str, str]], dict[str, str], dict[str, str]]:
    """The facts, the portfolio and the daily figures the run left, read from its AOF by a
    redis-server started on its data folder."""
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir",
                               str(state / "redis"), "--appendonly", "yes", "--save", ""], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, decode_responses=True)
        for _ in range(100):
            try:
                return ([fields for _, fields in client.xrange("strategy:events")],
                        client.hgetall("strategy:portfolio:state"), client.hgetall("strategy:metrics:daily"))
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("the redis-server on the run's data did not answer")
    finally:
        server.terminate()
        server.wait(10)


def test_ctrl_c_in_a_terminal_closes_every_trade_and_the_next_start_trades_again_without_a_halt(tmp_path):
    state, port = tmp_path / "state", free_port()
    with Terminal(["up", "--metrics-port", str(free_port())], _env(state, port), tmp_path) as term:
        _three_open(term)
        term.type_ctrl_c()
        term.wait_for(r"Ctrl\+C: stopping in order", 10)
        code = term.finish(90)
    out = term.out
    assert code == 0, out[-4000:]
    trades = _summary(out, "trades")
    closed = int(trades.split()[0])
    assert closed >= 3 and trades.endswith(", 0 open"), trades
    assert "OPEN TRADES LEFT" not in out and "HALTED" not in out
    assert not (state / "up.pid").exists()
    facts, portfolio, daily = _stored(free_port(), state)
    shutdown = [x for x in facts if x["type"] == "exit_started" and x["reason"] == "shutdown"]
    assert len(shutdown) >= 3  # the executor closed them, at the simulator that was still running
    # the summary, the portfolio and the daily figures say the same (the status line reads the same hash)
    taken = sum(x["type"] == "signal_taken" for x in facts)
    rejected = sum(x["type"] == "signal_rejected" for x in facts)
    days = [json.loads(v) for v in daily.values()]
    assert (portfolio["signals_taken"], portfolio["rejected_signals"]) == (str(taken), str(rejected))
    assert sum(int(d["rejected_signals"]) for d in days) == rejected
    assert sum(int(d["trades"]) for d in days) == int(portfolio["closed_trades"]) == closed
    assert _summary(out, "signals").startswith(f"{taken + rejected} read: {taken} taken, {rejected} rejected")

    again = subprocess.run([*ARB, "up", "--duration", "15", "--metrics-port", str(free_port())], cwd=tmp_path,
                           env=_env(state, port, SYNTHETIC_HOLD_S="2"), capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr
    assert "HALTED" not in again.stdout
    signals = _summary(again.stdout, "signals")
    assert int(signals.split()[2]) > closed, signals  # taken, all runs: more than the first run's


def test_a_second_ctrl_c_says_what_it_waits_for_a_third_stops_at_once_and_the_next_start_closes_what_it_left(
        tmp_path):
    state = tmp_path / "state"
    # the executor takes SHUTDOWN_TIMEOUT_S to give up on a venue that never answers; here the
    # simulator is stopped first by hand, so the closing orders cannot be answered
    redis_port = free_port()
    with Terminal(["up", "--metrics-port", str(free_port())], _env(state, redis_port, SHUTDOWN_TIMEOUT_S="60"),
                  tmp_path) as term:
        _three_open(term)
        sim_pid = _pid_of("sim", state)
        os.kill(sim_pid, signal.SIGSTOP)  # the venue hangs: the exits wait on it
        term.type_ctrl_c()
        term.wait_for(r"stopping executor", 20)
        term.type_ctrl_c()
        term.wait_for(r"Ctrl\+C: still waiting for the executor \(pid \d+\), closing its open trades", 10)
        term.type_ctrl_c()
        term.wait_for(r"Ctrl\+C: stopping at once", 10)
        code = term.finish(60)
    assert code == 1
    assert "OPEN TRADES LEFT" in term.out
    left = re.findall(r"^\s+(\w{12}) \w+USDT \((?:active|exiting)\): long", term.out.replace("\r", "\n"), re.M)
    assert left
    with contextlib.suppress(ProcessLookupError):  # the hung simulator was killed with the rest
        os.kill(sim_pid, signal.SIGCONT)

    # the next start, at a simulator that holds nothing: the trades left exiting are found closed
    # outside, no order is sent for them, and trading goes on without a halt
    again = subprocess.run([*ARB, "up", "--duration", "15", "--metrics-port", str(free_port())], cwd=tmp_path,
                           env=_env(state, redis_port, SYNTHETIC_HOLD_S="2"), capture_output=True, text=True,
                           timeout=180)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr
    assert "HALTED" not in again.stdout
    assert f"{len(left)} of them found closed outside this system" in again.stdout


def _pid_of(name: str, state: Path) -> int:
    """The pid of `arb <name>` started for this state folder (from the process table)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if b"services.cli" in cmd and name.encode() in cmd and str(state).encode() in env:
            return int(pid)
    raise AssertionError(f"no arb {name} running for {state}")


def test_kill_9_of_the_whole_group_then_arb_up_again_records_what_became_of_each_trade_and_trades(tmp_path):
    state, port = tmp_path / "state", free_port()
    env = _env(state, port)
    first = subprocess.Popen([*ARB, "up", "--metrics-port", str(free_port())], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        client = redis.Redis(port=port, decode_responses=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if client.hget("strategy:portfolio:state", "active_trades") == "3":
                    break
            except redis.ConnectionError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("never 3 trades open")
        open_ids = {k.rsplit(":", 1)[1] for k in client.scan_iter("strategy:trades:active:*")}
        os.killpg(first.pid, signal.SIGKILL)  # a crash of everything in arb up's group
        first.wait(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the workers, the simulator and Redis die with it
            try:
                client.ping()
            except redis.ConnectionError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("Redis outlived the arb up that started it")
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert (state / "up.pid").exists()  # it had no chance to clean up

    again = subprocess.run([*ARB, "up", "--duration", "15", "--metrics-port", str(free_port())], cwd=tmp_path,
                           env={**env, "SYNTHETIC_HOLD_S": "2"}, capture_output=True, text=True, timeout=180)
    out = again.stdout
    assert again.returncode == 0, out[-4000:] + again.stderr
    assert "did not stop cleanly" in out and "HALTED" not in out
    assert _summary(out, "trades").endswith(", 0 open")
    facts = _facts(free_port(), state)
    gone = {x["trade_id"] for x in facts if x["type"] == "position_gone"}
    closed = {x["trade_id"]: x for x in facts if x["type"] == "trade_closed"}
    assert gone == open_ids  # the restarted simulator held none of their legs: closed outside, each recorded
    assert all(closed[t]["reason"] == "closed_outside" for t in open_ids)
    assert len([x for x in facts if x["type"] == "signal_taken"]) > 3  # and it traded again


def test_the_readmes_redis_cli_lines_show_the_running_systems_trades_and_portfolio(tmp_path):
    lines = [line for line in re.findall(r"^(redis-cli .+)$", (ROOT / "README.md").read_text(), re.M)
             if not line.startswith("redis-cli -c")]  # a cluster's lines: tests/test_cluster.py
    assert lines, "the README gives no redis-cli line"
    state, port = tmp_path / "state", free_port()
    up = subprocess.Popen([*ARB, "up", "--metrics-port", str(free_port())], cwd=tmp_path,
                          env=_env(state, port, SYNTHETIC_HOLD_S="3"), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        client = redis.Redis(port=port, decode_responses=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if int(client.hget("strategy:portfolio:state", "closed_trades") or 0) >= 1 and \
                        any(client.scan_iter("strategy:trades:active:*")):
                    break
            except redis.ConnectionError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("no trade closed and none open")
        shown = []
        for line in lines:  # typed as printed, on the port this run's Redis listens on
            words = line.split()
            words.insert(1, f"-p {port}")
            done = subprocess.run(" ".join(words), shell=True, capture_output=True, text=True, timeout=10)
            assert done.returncode == 0 and "ERR" not in done.stdout, (line, done.stdout, done.stderr)
            shown.append(done.stdout)
        text = "\n".join(shown)
        assert "cumulative_pnl" in text and "available_capital" in text  # the portfolio
        assert re.search(r"strategy:trades:(active|closed):\w{12}", text) or "trade_id" in text  # the trades
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        out = up.communicate(timeout=90)[0]
    assert up.returncode == 0, out[-3000:]
