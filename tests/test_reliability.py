"""The reliability suite (issue 10), short form: each test states the figure it measures.
`pytest -m reliability` runs only these.

- Bad configuration matrix [every bad value refused at start with the one-line error]: every
  constrained setting just outside its bounds, of the wrong type, or not among its choices, and
  the settings whose values must name something real.
- Security [occurrences of the API secret in logs, output and Redis = 0; metrics on loopback]:
  `arb up` trading live on the simulator with a distinctive secret and DEBUG logs; and
  [a Redis with a password, or an ACL user with the default user off, works; its password
  appears nowhere]: `arb up` against such a Redis.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import typing
from pathlib import Path

import annotated_types as at
import pytest
import redis
from typer.testing import CliRunner

from services.cli import app
from shared.settings import Settings
from tests.conftest import free_port
from tests.figures import figure

pytestmark = pytest.mark.reliability
ROOT = Path(__file__).resolve().parents[1]

# values that pass the type but name nothing real
SEMANTIC = [("REDIS_URL", "localhost:6379"), ("SYMBOLS_TO_TRADE", "BTC-USDT!"), ("EXECUTOR_VENUES", "nasdaq"),
            ("VENUE_HOSTS", "okx"), ("VENUE_HOSTS", "nasdaq=127.0.0.1:9000"), ("SYNTHETIC_VENUE", "nasdaq"),
            ("BYBIT_REST_URL", "api.bybit.com"), ("BYBIT_WS_PRIVATE_URL", "https://stream.bybit.com"),
            ("UNIVERSE_VENUES", "nasdaq"), ("SYMBOLS_TO_TRADE", "all,BTCUSDT"), ("REDIS_KEY_PREFIX", "a{b}")]


def _bad_values() -> list[tuple[str, str]]:
    """For every constrained setting: just outside each bound, and a value of the wrong type;
    for every choice: a value that is none of them."""
    out = []
    for name, field in Settings.model_fields.items():
        env = name.upper()
        kind = typing.get_args(field.annotation) or (field.annotation,)
        if typing.get_origin(field.annotation) is typing.Literal:
            out.append((env, "nonsense"))
            continue
        for m in field.metadata:
            if isinstance(m, at.Ge):
                out.append((env, str(m.ge - 1)))
            elif isinstance(m, at.Gt):
                out.append((env, str(m.gt)))
            elif isinstance(m, at.Le):
                out.append((env, str(m.le + 1)))
            elif isinstance(m, at.Lt):
                out.append((env, str(m.lt)))
        if any(t in kind for t in (int, float)) or "Decimal" in str(field.annotation):
            out.append((env, "twelve"))
        elif bool in kind:
            out.append((env, "maybe"))
    return out + SEMANTIC


MATRIX = _bad_values()


@pytest.mark.parametrize("env, value", MATRIX, ids=[f"{e}={v}" for e, v in MATRIX])
def test_every_bad_value_is_refused_at_start_with_one_line_naming_it(env, value):
    result = CliRunner().invoke(app, ["config"], env={env: value})
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, f"{env}={value!r} was accepted:\n{result.output}"
    assert len(lines) == 1 and lines[0].startswith(f"config error: {env}="), result.output
    assert "Traceback" not in result.output


def test_the_matrix_covers_every_constrained_setting():
    covered = {env for env, _ in MATRIX}
    constrained = {name.upper() for name, f in Settings.model_fields.items()
                   if f.metadata or typing.get_origin(f.annotation) is typing.Literal}
    figure(10, f"bad configuration: settings with a constraint covered by the matrix ({len(MATRIX)} values over "
           f"{len(covered)} settings; each value is its own test)", f"{len(constrained & covered)} of {len(constrained)}",
           "all", constrained <= covered)
    assert constrained <= covered


@pytest.mark.slow
def test_the_api_secret_appears_nowhere_and_metrics_listen_on_loopback(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("needs a private redis-server to search whole")
    secret = "s3cr3t-NEVER-SHOWN-7f3a9c1e"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "VENUE_ENV", "ENVIRONMENT")}
    env.update(PYTHONPATH=str(ROOT), SIM_PORT=str(free_port()), ARB_STATE_DIR=str(tmp_path / "state"),
               REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", SIM_API_SECRET=secret, LOG_LEVEL="DEBUG", SYNTHETIC_HOLD_S="2", SIGNAL_COOLDOWN_S="2")
    base = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--duration", "12", "--metrics-port",
                             str(base)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    listening: set[str] = set()
    output = []
    for line in proc.stdout:
        output.append(line)
        if " is up;" in line:
            listening = _listening_tcp()
            client = redis.Redis.from_url((tmp_path / "state" / "redis.url").read_text().strip())
            break
    output += proc.stdout.readlines()
    assert proc.wait(60) == 0, "".join(output)
    # the run traded with the key (so the secret was in use), and signed every request with it
    assert int(next(x for x in output if x.startswith("trades ")).split()[1]) >= 1
    logs = "".join(output) + "".join(p.read_text(errors="replace") for p in (tmp_path / "state" / "logs").glob("*"))
    assert logs.count(secret) == 0
    # the metrics endpoints: 127.0.0.1 only
    ports = [line.split("metrics http://")[1].split("/")[0] for line in output if "metrics http://" in line]
    assert len(ports) == 4 and all(p.startswith("127.0.0.1:") for p in ports)
    assert all(f"127.0.0.1:{p.split(':')[1]}" in listening for p in ports)
    assert not any(addr.endswith(":" + p.split(":")[1]) and not addr.startswith("127.") for addr in listening
                   for p in ports)
    del client
    # and nowhere in Redis: its AOF holds every write the run made
    aof = b"".join(p.read_bytes() for p in (tmp_path / "state" / "redis").rglob("*") if p.is_file())
    assert aof and aof.count(secret.encode()) == 0
    figure(11, f"API secret in the logs / output / Redis AOF ({len(aof):,} bytes) of a live run; metrics endpoints "
           "on 127.0.0.1", f"0 / 0 / 0; {len(ports)} of {len(ports)}", "0 / 0 / 0; all", True)


def _listening_tcp() -> set[str]:
    """host:port of every listening TCP socket (IPv4), from /proc/net/tcp."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state != "0A":  # LISTEN
            continue
        ip_hex, port_hex = local.split(":")
        ip = ".".join(str(int(ip_hex[i:i + 2], 16)) for i in (6, 4, 2, 0))
        out.add(f"{ip}:{int(port_hex, 16)}")
    return out


REDIS_PASSWORD = "r3dis-PASS-9b2e"


@pytest.mark.slow
@pytest.mark.parametrize("auth", ["requirepass", "acl"])
def test_a_redis_with_a_password_or_an_acl_user_works_and_its_password_is_never_shown(tmp_path, auth):
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server")
    port = free_port()
    access = (["--requirepass", REDIS_PASSWORD] if auth == "requirepass" else
              ["--user", "default", "off", "--user", "arb", "on", f">{REDIS_PASSWORD}", "~*", "&*", "+@all"])
    server = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--dir", str(tmp_path), *access], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    user = "arb:" if auth == "acl" else ":"
    url = f"redis://{user}{REDIS_PASSWORD}@127.0.0.1:{port}/0"
    try:
        bare = redis.Redis(port=port, socket_connect_timeout=2)
        for _ in range(200):  # up, and refusing whoever has no password
            try:
                bare.ping()
            except redis.AuthenticationError:
                break
            except redis.ResponseError as exc:  # NOAUTH, or the default user off
                if "auth" in str(exc).lower() or "NOPERM" in str(exc):
                    break
                raise
            except redis.ConnectionError:
                time.sleep(0.025)
            else:
                raise AssertionError("the Redis under test answers without a password")
        env = {k: v for k, v in os.environ.items() if k not in ("VENUE_ENV", "ENVIRONMENT")}
        env.update(PYTHONPATH=str(ROOT), REDIS_URL=url, SIM_PORT=str(free_port()), ARB_STATE_DIR=str(tmp_path / "s"),
                   LOG_LEVEL="DEBUG", SYNTHETIC_HOLD_S="2", SIGNAL_COOLDOWN_S="2")
        run = subprocess.run([sys.executable, "-m", "services.cli", "up", "--duration", "10", "--metrics-port",
                              str(free_port())], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        output = run.stdout + run.stderr
        logs = output + "".join(p.read_text(errors="replace") for p in (tmp_path / "s" / "logs").glob("*"))
        trades = int(next(x for x in output.splitlines() if x.startswith("trades ")).split()[1])
        shown = logs.count(REDIS_PASSWORD)
        figure(11, f"Redis with {'an ACL user (default user off)' if auth == 'acl' else 'requirepass'}: arb up "
               "trades / its password in the output and logs", f"{trades} trades / {shown}", ">= 1 / 0",
               run.returncode == 0 and trades >= 1 and shown == 0)
        assert run.returncode == 0, output[-3000:]
        assert trades >= 1 and shown == 0
    finally:
        server.terminate()
        server.wait(10)
