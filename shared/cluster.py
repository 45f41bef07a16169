"""Redis Cluster for the lean connection (shared/resp.py): each command to the master owning
its key's slot, MOVED and ASK followed, the slot map refreshed, and a lost master waited out
while its replica takes over.

`ClusterConnection.execute(packed, n)` takes what `RespConnection.execute` takes: commands
packed in RESP. It reads them back with hiredis (a RESP request is an array of bulk strings,
which hiredis parses in C), groups them by node (a MULTI ... EXEC block stays whole, and must
touch one slot, as Redis Cluster requires), sends each node its share pipelined, all nodes at
once, and puts the replies back in the commands' order. A MOVED reply refreshes the slot map
and sends the command again where it now lives; ASK sends it once to the node named, after
ASKING. A node that cannot be reached (a master killed) makes it refresh the map from the
others until a replica has been promoted, within `failover_s`; after that RedisUnavailable, as
a single Redis that is down.

Which argument is the key: the second, except XREADGROUP/XREAD (the first after STREAMS),
XINFO/XGROUP (the third), EVAL/EVALSHA (the fourth, when there are keys); commands without a
key go to any master, except WAIT, INFO and ROLE, which go to the node of the command before them
(WAIT after a write: its replicas; INFO replication: how many it has).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import hiredis
from redis.connection import parse_url
from redis.crc import key_slot

from shared.resp import RedisReplyError, RedisUnavailable, RespConnection, pack_command

log = logging.getLogger("arb.redis")

_KEYLESS = {b"PING", b"INFO", b"MULTI", b"EXEC", b"WAIT", b"CLUSTER", b"ASKING", b"AUTH", b"SELECT", b"DBSIZE",
            b"SCAN", b"TIME", b"CLIENT", b"HELLO"}


_FOLLOWING = {b"WAIT", b"INFO", b"ROLE"}  # without a key: to the node of the command before them


_KNOWN: dict[str, list[tuple[str, int]]] = {}  # REDIS_URL -> the cluster's nodes, as last learnt


def command_key(args: list[bytes]) -> bytes | None:
    """The key that routes `args` (a command as a list of its arguments), None when it has none."""
    name = args[0].upper()
    if name in _KEYLESS or len(args) < 2:
        return None
    if name in (b"XREADGROUP", b"XREAD"):
        upper = [a.upper() for a in args]
        return args[upper.index(b"STREAMS") + 1] if b"STREAMS" in upper else None
    if name in (b"XINFO", b"XGROUP", b"OBJECT", b"MEMORY"):
        return args[2] if len(args) > 2 else None
    if name in (b"EVAL", b"EVALSHA"):
        return args[3] if len(args) > 3 and args[2] != b"0" else None
    return args[1]


def split_commands(packed: bytes, n: int) -> list[list[bytes]]:
    """The `n` commands packed in `packed`, each as its list of arguments."""
    reader = hiredis.Reader()
    reader.feed(packed)
    out = []
    for _ in range(n):
        command = reader.gets()
        if command is False:
            raise ValueError(f"{len(out)} commands packed, not {n}")
        out.append(command)
    return out


def is_cluster_error(reply: Any, kind: str) -> bool:
    return isinstance(reply, RedisReplyError) and str(reply).startswith(kind + " ")


class ClusterConnection:
    """A lean connection to a Redis Cluster: one RespConnection per master, routed by slot."""

    def __init__(self, url: str, timeout_s: float = 5.0, encoding: str | None = None,
                 failover_s: float = 20.0) -> None:
        self.url, self.timeout_s, self.encoding, self.failover_s = url, timeout_s, encoding, failover_s
        p = parse_url(url)
        # the node REDIS_URL names, and every node another connection of this process has learnt
        # of: a connection first used after that node died still finds the cluster
        self._seeds = _KNOWN.setdefault(url, [(p.get("host", "127.0.0.1"), int(p.get("port", 6379)))])
        self._auth = url.split("//", 1)[1].split("@", 1)[0] + "@" if "@" in url else ""
        self._scheme = url.split("://", 1)[0]
        self.slots: list[tuple[str, int] | None] = [None] * 16384
        self.nodes: dict[tuple[str, int], RespConnection] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}  # one exchange at a time per node connection
        self.refreshes = 0  # slot map reads: at start, and after each MOVED or lost node
        self.redirects = 0  # MOVED and ASK answers followed

    def describe(self) -> str:
        return "cluster " + ",".join(f"{h}:{p}" for h, p in self._seeds)

    @property
    def connected(self) -> bool:
        return any(c.connected for c in self.nodes.values())

    def _conn(self, node: tuple[str, int]) -> RespConnection:
        conn = self.nodes.get(node)
        if conn is None:
            conn = self.nodes[node] = RespConnection(f"{self._scheme}://{self._auth}{node[0]}:{node[1]}/0",
                                                     self.timeout_s, self.encoding)
        return conn

    async def refresh(self) -> None:
        """Read the slot map from the first node that answers (seeds, then the known masters)."""
        candidates = list(dict.fromkeys([*self._seeds, *self.nodes, *(n for n in self.slots if n)]))
        rest = candidates[1:]
        random.shuffle(rest)  # the first seed first, the others in any order
        candidates[1:] = rest
        last: Exception | None = None
        for node in candidates:
            probe = RespConnection(f"{self._scheme}://{self._auth}{node[0]}:{node[1]}/0", min(self.timeout_s, 2.0))
            try:
                [reply] = await probe.execute(pack_command("CLUSTER", "SLOTS"), 1)
            except RedisUnavailable as exc:
                last = exc
                continue
            finally:
                await probe.close()
            if isinstance(reply, RedisReplyError):
                last = reply
                continue
            slots: list[tuple[str, int] | None] = [None] * 16384
            known = []
            for start, end, *holders in reply:
                nodes = [((h[0].decode() if isinstance(h[0], bytes) else h[0]) or node[0], int(h[1])) for h in holders]
                known += nodes
                for slot in range(int(start), int(end) + 1):
                    slots[slot] = nodes[0]
            self.slots = slots
            self.refreshes += 1
            self._seeds[:] = list(dict.fromkeys([*self._seeds, *known]))  # replicas too, shared: see __init__
            for gone in set(self.nodes) - set(slots):
                await self.nodes.pop(gone).close()
            return
        raise RedisUnavailable(f"no node of the cluster at {self.describe()} answers: {last}")

    def node_of(self, key: bytes | str | None) -> tuple[str, int]:
        if key is None:
            owners = [n for n in self.slots if n]
            return owners[0]
        owner = self.slots[key_slot(key.encode() if isinstance(key, str) else key)]
        if owner is None:
            raise RedisUnavailable(f"no master serves the slot of {key!r}: the cluster is not covered")
        return owner

    def _plan(self, commands: list[list[bytes]]) -> list[tuple[tuple[str, int], list[int]]]:
        """Runs of command indexes per node, a MULTI ... EXEC block and a WAIT with what is
        before it on one node."""
        groups: dict[tuple[str, int], list[int]] = {}
        i, last = 0, None
        while i < len(commands):
            name = commands[i][0].upper()
            if name == b"MULTI":
                end = next((j for j in range(i, len(commands)) if commands[j][0].upper() == b"EXEC"), len(commands) - 1)
                key = next((k for c in commands[i:end + 1] if (k := command_key(c)) is not None), None)
                node = self.node_of(key)
                groups.setdefault(node, []).extend(range(i, end + 1))
                last, i = node, end + 1
                continue
            key = command_key(commands[i])
            node = last if key is None and name in _FOLLOWING and last else self.node_of(key)
            groups.setdefault(node, []).append(i)
            last, i = node, i + 1
        return list(groups.items())

    async def execute(self, packed: bytes, n: int) -> list[Any]:
        """As RespConnection.execute, routed across the cluster's masters."""
        return await self.execute_commands(split_commands(packed, n))

    async def execute_commands(self, commands: list[list[bytes]]) -> list[Any]:
        if not any(self.slots):
            await self.refresh()
        replies: list[Any] = [None] * len(commands)
        todo = list(range(len(commands)))
        asking: dict[int, tuple[str, int]] = {}  # command -> the node an ASK named
        blocks = _blocks(commands)
        deadline = asyncio.get_running_loop().time() + self.failover_s
        while todo:
            plan = self._plan([commands[i] for i in todo])
            batches = [(node, [todo[j] for j in idx]) for node, idx in plan]
            results = await asyncio.gather(*(self._send(node, [commands[i] for i in idx], {
                k: asking[i] for k, i in enumerate(idx) if i in asking}) for node, idx in batches),
                return_exceptions=True)
            retry, asking, lost, busy = [], {}, None, False
            for (_, idx), result in zip(batches, results, strict=True):
                if isinstance(result, RedisUnavailable):
                    lost = result
                    retry += idx
                    continue
                if isinstance(result, BaseException):
                    raise result
                for i, reply in zip(idx, result, strict=True):
                    if is_cluster_error(reply, "MOVED") or is_cluster_error(reply, "TRYAGAIN") \
                            or is_cluster_error(reply, "CLUSTERDOWN"):
                        retry.append(i)
                        self.redirects += 1
                        busy = busy or not is_cluster_error(reply, "MOVED")
                    elif is_cluster_error(reply, "ASK"):
                        host, _, port = str(reply).split()[2].rpartition(":")
                        asking[i] = (host, int(port))
                        self.redirects += 1
                        retry.append(i)
                    else:
                        replies[i] = reply
            # a transaction with a redirected command was aborted: all of it again
            retry = sorted({j for i in retry for j in blocks.get(i, (i,))})
            if not retry:
                return replies
            if asyncio.get_running_loop().time() > deadline:
                raise RedisUnavailable(f"the cluster at {self.describe()} did not recover within "
                                       f"{self.failover_s:g} s: {lost or 'redirected too often'}")
            if lost is not None or len(asking) < len(retry):
                await asyncio.sleep(0.1 if lost is not None or busy else 0)  # a failover in progress: not a spin
                try:
                    await self.refresh()
                except RedisUnavailable:
                    await asyncio.sleep(0.2)
            todo = retry
        return replies

    async def _send(self, node: tuple[str, int], commands: list[list[bytes]],
                    asking: dict[int, tuple[str, int]]) -> list[Any]:
        """`commands` to `node`, pipelined; those in `asking` to the node named, after ASKING."""
        if asking:
            out = []
            for k, command in enumerate(commands):
                out.append((await self._exchange(asking[k], pack_command("ASKING") + pack_command(*command), 2))[1]
                           if k in asking else (await self._exchange(node, pack_command(*command), 1))[0])
            return out
        return await self._exchange(node, b"".join(pack_command(*c) for c in commands), len(commands))

    async def _exchange(self, node: tuple[str, int], packed: bytes, n: int) -> list[Any]:
        async with self._locks.setdefault(node, asyncio.Lock()):
            return await self._conn(node).execute(packed, n)

    async def close(self) -> None:
        for conn in self.nodes.values():
            await conn.close()


def _blocks(commands: list[list[bytes]]) -> dict[int, tuple[int, ...]]:
    """Each command inside a MULTI ... EXEC -> the indexes of its whole block."""
    out: dict[int, tuple[int, ...]] = {}
    start = None
    for i, command in enumerate(commands):
        name = command[0].upper()
        if name == b"MULTI":
            start = i
        elif name == b"EXEC" and start is not None:
            block = tuple(range(start, i + 1))
            out.update(dict.fromkeys(block, block))
            start = None
    return out
