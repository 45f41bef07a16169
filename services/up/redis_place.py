"""Which Redis `arb up` uses: the one at REDIS_URL (default 127.0.0.1:6379), so that `redis-cli`
typed as printed reaches the running system's data.

- A Redis answers there: it is used. If it holds other data, arb up says so and touches only
  this system's keys (shared/keyspace.py); if it keeps nothing on disk, it warns that the facts
  would not survive its restart. One that this state folder's earlier `arb up` started (its
  data folder is ours, left running by a crash) is adopted and stopped last, like our own.
- None answers and the address is on this machine: arb up starts a `redis-server` there, with
  its data (AOF, fsync every second) under the state folder, and stops it last. It dies with
  arb up (SIGTERM, so it writes its AOF) if arb up is killed.
- No redis-server on PATH either: an in-process fakeredis there, with a warning that nothing
  persists.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from services.up.processes import StackError, die_with_parent, port_free, say
from shared.keyspace import other_keys
from shared.settings import Settings

LOCAL = {"127.0.0.1", "localhost", "::1"}
PORT_WAIT_TRIES = 75  # 15 s for a port that is taken but does not answer to free itself


@dataclass
class RedisPlace:
    url: str
    proc: asyncio.subprocess.Process | None = None  # the redis-server started here
    adopted: bool = False  # one an earlier arb up of this state folder started
    fake: object | None = None
    notes: list[str] = field(default_factory=list)
    cluster: object | None = None  # the local Redis Cluster started here (shared/local_cluster.py)
    clustered: bool = False  # REDIS_URL names a node of a Redis Cluster

    @property
    def owned(self) -> bool:
        return self.proc is not None or self.adopted or self.fake is not None or self.cluster is not None

    def cli_line(self) -> str:
        """The redis-cli command that reaches this Redis (never its password)."""
        u = urlsplit(self.url)
        words = ["redis-cli", "-c"] if self.clustered else ["redis-cli"]
        if (u.hostname or "127.0.0.1") not in ("127.0.0.1", "localhost"):
            words += ["-h", u.hostname]
        if (u.port or 6379) != 6379:
            words += ["-p", str(u.port)]
        if (db := u.path.strip("/")) not in ("", "0"):
            words += ["-n", db]
        if u.username and u.username != "default":
            words += ["--user", u.username]
        if u.password:
            words.append("--askpass")
        return " ".join(words)

    async def stop(self) -> None:
        """Stop the Redis this run owns (its AOF is written first); leave anyone else's running."""
        if self.cluster is not None:
            await asyncio.to_thread(self.cluster.stop)
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 10)
        elif self.adopted:
            client = aioredis.Redis.from_url(self.url, socket_timeout=10)
            with contextlib.suppress(RedisError, OSError):
                await client.shutdown()
            await client.aclose()
        if self.fake is not None:
            self.fake.shutdown()


async def place(settings: Settings, state: Path, explicit: bool, stop: asyncio.Event | None = None) -> RedisPlace:
    """Find or start the Redis at REDIS_URL, saying which and what to know about it."""
    url, where = settings.redis_url, "REDIS_URL" if explicit else "REDIS_URL's default"
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 6379
    data = (state / "redis").resolve()
    bind = "127.0.0.1" if host == "localhost" else host
    client = aioredis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=2, decode_responses=True)
    try:
        for attempt in range(PORT_WAIT_TRIES):
            try:
                await client.ping()
            except AuthenticationError as exc:
                raise StackError(f"the Redis at {masked(url)} ({where}) refused the password: {exc}") from None
            except (RedisError, OSError):
                pass  # nothing answers there
            else:
                return await _existing(client, settings, url, where, data)
            if host not in LOCAL or port_free(port, bind) or (stop is not None and stop.is_set()):
                break
            if attempt == 0:  # a Redis still writing its AOF on the way out (a restart right after a crash)
                say(f"redis: {host}:{port} is taken by something that does not answer as Redis; waiting up to "
                    f"{PORT_WAIT_TRIES * 0.2:g} s for it to answer or go")
            await asyncio.sleep(0.2)
        else:
            raise StackError(f"{host}:{port} ({where}) is taken by something that does not answer as Redis; set "
                             "REDIS_URL to a free port, e.g. REDIS_URL=redis://127.0.0.1:6380/0")
    finally:
        await client.aclose()
    if host not in LOCAL:
        raise StackError(f"no Redis answers at {masked(url)} ({where}), and it is not on this machine, so arb up "
                         "cannot start one there")
    if u.username and u.username != "default":
        raise StackError(f"REDIS_URL names the user {u.username!r}, but no Redis answers at {host}:{port}; arb up "
                         "starts one only with the default user (a password alone is fine)")
    if server := shutil.which("redis-server"):
        return await _start(server, url, bind, port, unquote(u.password) if u.password else None, data, state)
    return _fake(url, port)


CLUSTER_PORTS = list(range(7000, 7006))  # where arb up --redis-cluster puts its nodes when they are free


async def place_cluster(settings: Settings, state: Path, explicit: bool) -> RedisPlace:
    """--redis-cluster: the Redis Cluster REDIS_URL names when one answers there (explicit), else
    a local one of 3 masters and 3 replicas started here (ports 7000-7005, or free ones), its
    nodes' data in the state folder, stopped last."""
    from shared.local_cluster import ClusterError, free_ports, start_cluster

    if explicit:
        client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=3, socket_connect_timeout=2)
        try:
            info = await client.info("cluster")
        except (RedisError, OSError):
            info = None
        finally:
            await client.aclose()
        if info is not None:
            if not info.get("cluster_enabled"):
                raise StackError(f"--redis-cluster: the Redis at {masked(settings.redis_url)} is not a cluster node "
                                 "(cluster_enabled:0); leave REDIS_URL unset to start a local cluster")
            say(f"redis: the Redis Cluster at {where_to(settings.redis_url)} (REDIS_URL)")
            return RedisPlace(settings.redis_url, clustered=True)
    ports = CLUSTER_PORTS if all(port_free(p, "127.0.0.1") and port_free(p + 10000, "127.0.0.1")
                                 for p in CLUSTER_PORTS) else free_ports(6)
    folder = (state / "cluster").resolve()
    if folder.exists() and sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) != sorted(ports):
        shutil.rmtree(folder)  # a cluster of other ports: its nodes.conf would not fit these
    try:
        cluster = await asyncio.to_thread(start_cluster, folder, ports, 3, 1, 5000)
    except ClusterError as exc:
        raise StackError(f"--redis-cluster: {exc}") from None
    say(f"redis: started a Redis Cluster of 3 masters and 3 replicas on 127.0.0.1:{','.join(map(str, ports))} "
        f"(AOF each), data in {folder}")
    return RedisPlace(cluster.url, cluster=cluster, clustered=True)


async def _existing(client: aioredis.Redis, settings: Settings, url: str, where: str, data: Path) -> RedisPlace:
    p = RedisPlace(url)
    try:
        config = await client.config_get("dir")
        config.update(await client.config_get("appendonly"))
        config.update(await client.config_get("save"))
    except ResponseError:  # CONFIG is renamed or not allowed to this user
        config = {}
    if config.get("dir") and Path(config["dir"]).resolve() == data:
        p.adopted = True
        say(f"redis: {where_to(url)}, the redis-server this state folder started before (left running); "
            f"adopted, with its data in {data}")
        return p
    say(f"redis: the Redis already running at {where_to(url)} ({where})")
    if others := await other_keys(client, settings):
        say(f"redis: it holds {others:,} {'key' if others == 1 else 'keys'} that {'is' if others == 1 else 'are'} not "
            "this system's; arb touches only its own")
    if not config:
        say("redis: WARNING cannot read its persistence settings (CONFIG not allowed): make sure it keeps an AOF, "
            "or acknowledged facts (trades, portfolio) can be lost when it restarts")
    elif config.get("appendonly") != "yes":
        lost = "everything since its last snapshot" if config.get("save") else "everything"
        say(f"redis: WARNING it keeps no AOF (appendonly {config.get('appendonly')}, save "
            f"{config.get('save')!r}): if it restarts, {lost} this system wrote (facts, trades, portfolio) is lost. "
            "For money that matters: `redis-cli CONFIG SET appendonly yes`, or a REDIS_URL where nothing answers "
            "(arb up then starts its own redis-server, with an AOF)")
    return p


async def _start(server: str, url: str, bind: str, port: int, password: str | None, data: Path,
                 state: Path) -> RedisPlace:
    data.mkdir(parents=True, exist_ok=True)
    args = [server, "--bind", bind, "--port", str(port), "--dir", str(data),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes",
            "--logfile", str((state / "logs" / "redis.log").resolve())]
    proc = await asyncio.create_subprocess_exec(  # its config on stdin ("-"): no password in the process list
        server, "-", *args[1:], stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # Ctrl+C is for arb up alone
        preexec_fn=die_with_parent(signal.SIGTERM))  # killed with it, it still writes its AOF
    if password:  # quoted as redis.conf reads a string
        quoted = password.replace("\\", "\\\\").replace('"', '\\"')
        proc.stdin.write(f'requirepass "{quoted}"\n'.encode())
    proc.stdin.close()
    p = RedisPlace(url, proc=proc)
    await ping(url, "the redis-server arb up started", attempts=50)
    say(f"redis: started redis-server at {where_to(url)}, data in {data} (AOF, fsync every second)")
    return p


def _fake(url: str, port: int) -> RedisPlace:
    from services.up.fake_redis import fake_redis_server

    p = RedisPlace(url, fake=fake_redis_server(port))
    say(f"redis: WARNING no Redis answers at {where_to(url)} and there is no redis-server on PATH: an in-process "
        "fakeredis there: nothing persists when this stops (apt-get install redis-server)")
    return p


async def ping(url: str, what: str, attempts: int = 1) -> None:
    client = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        for attempt in range(attempts):
            try:
                await client.ping()
                return
            except (RedisError, OSError) as exc:
                if attempt == attempts - 1:
                    raise StackError(f"cannot reach {what}: {exc}") from None
                await asyncio.sleep(0.1)
    finally:
        await client.aclose()


def where_to(url: str) -> str:
    u = urlsplit(url)
    db = u.path.strip("/") or "0"
    return f"{u.hostname or '127.0.0.1'}:{u.port or 6379}" + (f" db {db}" if db != "0" else "")


def masked(url: str) -> str:
    """The URL without its password."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, auth = head.partition("://")
    user = auth.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ''}***@{tail}"
