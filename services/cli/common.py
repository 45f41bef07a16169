"""What every `arb` command shares: the exit with a message (_fail), the settings with the
command line's overrides (_settings), logging, CPU pinning, the metrics server, the run until
Ctrl+C/SIGTERM/--duration with the health key kept (_run_until_signal), reading Redis, and the
shared options."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import typer
from prometheus_client import CollectorRegistry

from shared import redis_io
from shared.settings import ConfigError, Settings, load_settings


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(2)


def _settings(cli: dict, running: bool = False) -> Settings:
    """Settings with `cli` overrides; with `running`, the Redis of a running `arb up` (its state
    folder: ARB_STATE_DIR or .arb) unless REDIS_URL or --redis-url says otherwise, named on stderr."""
    if not running:
        return _load(cli)
    settings, where, _ = _redis_settings(cli)
    typer.echo(f"redis: {where}", err=True)
    return settings


def _load(cli: dict) -> Settings:
    try:
        return load_settings(cli)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _state_dir():
    from pathlib import Path

    return Path(os.environ.get("ARB_STATE_DIR", ".arb"))


def _redis_settings(cli: dict) -> tuple[Settings, str, bool]:
    """Settings whose REDIS_URL is the one to read: --redis-url or REDIS_URL when given, else the
    running `arb up`'s; with where it is and why, and whether anything said which (False: only
    the default is left)."""
    from services.up.redis_place import where_to
    from services.up.stack import running_redis

    settings = _load(cli)
    if "redis_url" in settings.model_fields_set:
        given = "--redis-url" if cli.get("redis_url", (None, None))[1] else "REDIS_URL"
        return settings, f"{where_to(settings.redis_url)} ({given})", True
    state = _state_dir()
    url, cluster = running_redis(state)
    if url:
        return (settings.model_copy(update={"redis_url": url, "redis_cluster": cluster}),
                f"{where_to(url)} (the arb up running from {state.resolve()})", True)
    return settings, f"{where_to(settings.redis_url)} (REDIS_URL's default; no arb up is running from " \
                     f"{state.resolve()})", False


def _logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr)


def pin_to_cpu(cpu: int) -> None:
    """Run this process on one CPU only; a clear error where that is not possible."""
    if not hasattr(os, "sched_setaffinity"):
        raise _fail(f"--cpu {cpu}: CPU pinning needs Linux (os.sched_setaffinity); run without --cpu")
    allowed = sorted(os.sched_getaffinity(0))
    if cpu not in allowed:
        raise _fail(f"--cpu {cpu}: not available to this process; allowed CPUs: {allowed}")
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:
        raise _fail(f"--cpu {cpu}: cannot pin: {exc}") from None


def _serve_metrics(settings: Settings, register) -> None:
    from shared.metrics import serve

    registry = CollectorRegistry()
    register(registry)
    try:
        serve(registry, settings.metrics_host, settings.metrics_port)
    except OSError as exc:
        raise _fail(f"--metrics-port {settings.metrics_port}: {exc}") from None


async def _run_until_signal(main, duration: float | None, health: tuple | None = None):
    """`main(stop)` until Ctrl+C, SIGTERM or `duration`; with `health` (settings, service name,
    and its register_metrics), the service's health key and metrics snapshots are kept until
    `main` has returned (shared/control.py)."""
    from shared.control import heartbeat

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    done = asyncio.Event()
    beat = asyncio.ensure_future(heartbeat(health[0], health[1], done, *health[2:])) if health else None
    try:
        return await main(stop)
    finally:
        if beat is not None:
            done.set()
            await asyncio.gather(beat, return_exceptions=True)


def _read_redis(settings: Settings, read):
    """`await read(client, prefix)` on a client of settings' Redis; a clear error if it is down."""
    from redis.exceptions import RedisError

    async def run():
        client = redis_io.client(settings, socket_timeout=5, socket_connect_timeout=5,
                                         decode_responses=True)
        try:
            return await read(client, settings.redis_key_prefix)
        finally:
            await client.aclose()

    try:
        return asyncio.run(run())
    except (RedisError, OSError) as exc:
        raise _fail(f"cannot read Redis at REDIS_URL: {exc}") from None


_REDIS_OPTION = typer.Option(help="Redis to read. Default: REDIS_URL.")
