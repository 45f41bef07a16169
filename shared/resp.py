"""A minimal pipelined Redis connection for the ingestor's writes.

redis-py spends ~100 us per 17-field XADD in a pipeline on this machine (9.7k/s), most of it
packing arguments and reading replies one by one; this writer packs each command with one
cached format string per field layout and reads all replies with `hiredis.Reader`: 54k/s
with the same fields (benchmarks/). Reads and consumer groups stay on redis-py.
The URL forms are redis-py's (`redis://[user:pass@]host:port/db`, `rediss://`, `unix://`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

import hiredis
from redis.connection import parse_url


class RedisUnavailable(ConnectionError):
    """Redis could not be reached or dropped the connection."""


class RedisReplyError(Exception):
    """Redis answered a command with an error reply."""


_templates: dict[tuple[tuple[str, ...], tuple[str, ...]], str] = {}


def _bulk(arg: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(arg), arg)


def pack_command(*args: str | bytes) -> bytes:
    """One command in RESP, byte-exact for any argument."""
    parts = [arg.encode() if isinstance(arg, str) else arg for arg in args]
    return b"*%d\r\n" % len(parts) + b"".join(_bulk(p) for p in parts)


def pack_with_fields(head: tuple[str, ...], fields: dict[str, str]) -> bytes:
    """`head` followed by the field/value pairs, e.g. XADD s MAXLEN ~ 1000 * f v ...

    The format string of each (head, field names) layout is built once; values go in with a
    single `%`. Lengths are counted in characters, so a non-ASCII value takes the exact path."""
    names = tuple(fields)
    key = (head, names)
    template = _templates.get(key)
    if template is None:
        if len(_templates) > 4096:  # layouts are few; a flood means callers vary heads
            _templates.clear()
        text = "*%d\r\n" % (len(head) + 2 * len(names)) + "".join(
            "$%d\r\n%s\r\n" % (len(h.encode()), h) for h in head
        )
        text = text.replace("%", "%%") + "".join(
            "$%d\r\n%s\r\n$%%d\r\n%%s\r\n" % (len(n.encode()), n.replace("%", "%%")) for n in names
        )
        template = _templates[key] = text
    args: list[Any] = []
    for value in fields.values():
        args.append(len(value))
        args.append(value)
    text = template % tuple(args)
    packed = text.encode()
    if len(packed) != len(text):
        flat = [item for pair in fields.items() for item in pair]
        return pack_command(*head, *flat)
    return packed


class RespConnection:
    """One Redis connection that sends pre-packed commands and returns their replies."""

    def __init__(self, url: str, timeout_s: float = 5.0, encoding: str | None = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.encoding = encoding  # replies as text, decoded by hiredis in C
        self._params = parse_url(url)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    def describe(self) -> str:
        """Where it connects, without credentials."""
        p = self._params
        return p.get("path") or f"{p.get('host', '127.0.0.1')}:{p.get('port', 6379)}/{p.get('db', 0)}"

    async def connect(self) -> None:
        p = self._params
        try:
            if p.get("path"):
                opened = asyncio.open_unix_connection(p["path"])
            else:
                tls = ssl.create_default_context() if self.url.startswith("rediss") else None
                opened = asyncio.open_connection(p.get("host", "127.0.0.1"), p.get("port", 6379), ssl=tls)
            self._reader, self._writer = await asyncio.wait_for(opened, self.timeout_s)
        except (TimeoutError, OSError) as exc:
            raise RedisUnavailable(f"cannot connect to Redis at {self.describe()}: {exc}") from None
        setup = []
        if p.get("password"):
            setup.append(pack_command("AUTH", *([p["username"]] if p.get("username") else []), p["password"]))
        if p.get("db"):
            setup.append(pack_command("SELECT", str(p["db"])))
        if setup:
            for reply in await self.execute(b"".join(setup), len(setup)):
                if isinstance(reply, RedisReplyError):
                    await self.close()
                    raise RedisUnavailable(f"Redis at {self.describe()} refused the connection: {reply}")

    async def execute(self, packed: bytes, replies: int) -> list[Any]:
        """Send `packed` (holding `replies` commands) and read every reply.

        Error replies come back as RedisReplyError values, not raised; a lost connection
        raises RedisUnavailable and leaves the connection closed."""
        if not self.connected:
            await self.connect()
        assert self._reader is not None and self._writer is not None
        parser = (hiredis.Reader(replyError=RedisReplyError, encoding=self.encoding) if self.encoding
                  else hiredis.Reader(replyError=RedisReplyError))
        out: list[Any] = []
        try:
            self._writer.write(packed)
            async with asyncio.timeout(self.timeout_s):  # no task per read, unlike wait_for
                while len(out) < replies:
                    chunk = await self._reader.read(1 << 16)
                    if not chunk:
                        raise ConnectionResetError("Redis closed the connection")
                    parser.feed(chunk)
                    while (reply := parser.gets()) is not False:
                        out.append(reply)
        except (TimeoutError, OSError) as exc:
            await self.close()
            raise RedisUnavailable(f"lost Redis at {self.describe()}: {exc or type(exc).__name__}") from None
        return out

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
