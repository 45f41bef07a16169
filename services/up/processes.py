"""The processes of `arb up`: each worker an `arb` command of its own, in its own session (the
terminal's Ctrl+C reaches arb up alone, which stops them in order), killed with arb up if arb
up is killed (so a crash of the supervisor is a crash of the stack, which a restart recovers
from the facts, and never a stack running on unsupervised)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import sys
import time
from pathlib import Path

from redis.exceptions import RedisError

from services.up.plan import Worker


class StackError(Exception):
    """The stack cannot start as configured; the message says why and what to do."""


def say(text: str) -> None:
    print(text, flush=True)


class Interrupts:
    """Ctrl+C (or SIGTERM) pressed during a run: the first asks for the stop in order, the
    second says what the stop is waiting for (`stage`), the third forces it."""

    def __init__(self) -> None:
        self.stop, self.force = asyncio.Event(), asyncio.Event()
        self.count = 0
        self.stage = "starting"  # what the supervisor is doing now

    def press(self, sig: int) -> None:
        self.count += 1
        what = "Ctrl+C" if sig == signal.SIGINT else "SIGTERM"
        if self.count == 1:
            self.stop.set()
            say(f"\n{what}: stopping in order; the executor closes the open trades first "
                f"({what} again: what it waits for; a third time: stop at once, leaving what is open)")
        elif self.count == 2:
            say(f"\n{what}: still {self.stage}. {what} once more stops at once and leaves it as it is")
        else:
            self.force.set()
            say(f"\n{what}: stopping at once (was {self.stage}); the summary names what is left open")


def die_with_parent(sig: signal.Signals):
    """A preexec_fn that has the kernel send `sig` to the child when arb up dies (Linux's
    PR_SET_PDEATHSIG; elsewhere None: children outlive a killed arb up there)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def set_it() -> None:
        libc.prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # arb up died before the line above
            os.kill(os.getpid(), int(sig))

    return set_it


async def spawn(w: Worker, env: dict[str, str], log: Path) -> None:
    with open(log, "ab") as out:  # the child has its own copy of the descriptor
        w.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", *w.argv, env=env, stdout=out, stderr=out,
            start_new_session=True, preexec_fn=die_with_parent(signal.SIGKILL))


async def stop(w: Worker, timeout_s: float, force: asyncio.Event) -> str:
    """SIGTERM, then wait up to `timeout_s` (or until `force`), then SIGKILL; '' or what happened."""
    proc = w.proc
    if proc is None or proc.returncode is not None:
        return ""
    proc.send_signal(signal.SIGTERM)
    waits = [asyncio.ensure_future(proc.wait()), asyncio.ensure_future(force.wait())]
    await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
    if proc.returncode is not None:
        return ""
    proc.kill()
    await proc.wait()
    return "killed (forced)" if force.is_set() else f"did not stop in {timeout_s:g} s: killed"


class PidLock:
    """STATE/up.pid, locked (flock) for as long as arb up runs: whether a stack runs from a state
    folder is whether the lock is held, never whether a pid that may have been reused is alive.
    The kernel drops the lock when arb up dies, however it dies."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "up.pid"
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = running_pid(self.path.parent)
            raise StackError(f"arb up is already running from {self.path.parent} (pid {pid}); `arb stop` stops it"
                             ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self.fd)
            self.fd = None


def running_pid(state_dir: Path) -> int:
    """The pid of the arb up running from `state_dir`; 0 when none runs (its lock is free)."""
    try:
        fd = os.open(state_dir / "up.pid", os.O_RDONLY)
    except OSError:
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: running
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return 0
    finally:
        os.close(fd)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on host:port now (as servers do, with SO_REUSEADDR: a
    connection in TIME_WAIT there does not count)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def until(check, timeout_s: float, worker: Worker | None = None, stop: asyncio.Event | None = None) -> bool:
    """Poll `check` (async, truthy when done) every 100 ms; False on timeout, if `worker` exits,
    or once `stop` is set (Ctrl+C while starting)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker is not None and worker.proc is not None and worker.proc.returncode is not None:
            return False
        if stop is not None and stop.is_set():
            return False
        with contextlib.suppress(RedisError, OSError):
            if await check():
                return True
        await asyncio.sleep(0.1)
    return False


async def http_ok(url: str) -> bool:
    import aiohttp

    try:
        async with aiohttp.ClientSession() as http, http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False
