"""A TCP proxy on 127.0.0.1 that makes a link bad on command: what the reliability suite puts
between a worker and Redis or the venue (`tc netem` does not work on these machines).

    proxy = TcpProxy("127.0.0.1", 6379); port = await proxy.start()
    proxy.latency_ms = 500   # every chunk, each way, arrives 500 ms after it was sent (in order)
    proxy.hold()             # nothing arrives (a dead link: callers time out); release() resumes
    proxy.reset()            # every open connection is cut now with a TCP reset
    await proxy.close()

Bounded: it only forwards what its clients send to its one target, on the loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.latency_ms = 0.0
        self.connections = 0
        self.resets = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    def hold(self) -> None:
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def reset(self) -> None:
        for pair in list(self._links):
            for writer in pair:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):  # linger 0: close sends RST
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            self.resets += 1
        self._links.clear()

    async def close(self) -> None:
        self.release()
        self.reset()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        pair = (writer, up_writer)
        self._links.add(pair)
        pumps = [self._spawn(self._pump(reader, up_writer)), self._spawn(self._pump(up_reader, writer))]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        self._links.discard(pair)
        for w in pair:
            w.transport.abort()
        for task in pumps:
            task.cancel()

    def _spawn(self, work) -> asyncio.Task:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Copy src to dst in order, each chunk delivered `latency_ms` after it was read, and
        only while the link flows."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        deliver = self._spawn(self._deliver(queue, dst))
        try:
            while data := await src.read(65536):
                queue.put_nowait((time.monotonic() + self.latency_ms / 1000, data))
                if deliver.done():
                    return
        except (ConnectionError, OSError):
            return
        finally:
            queue.put_nowait((0.0, b""))  # end of stream, after what is queued
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await deliver

    async def _deliver(self, queue: asyncio.Queue, dst: asyncio.StreamWriter) -> None:
        while True:
            due, data = await queue.get()
            if not data:
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self._flowing.wait()
            dst.write(data)
            await dst.drain()
