"""fakeredis over TCP, for `arb up` on a machine with no Redis at all (nothing persists)."""

from __future__ import annotations

from services.up.processes import StackError


def fake_redis_server(port: int):
    """fakeredis over TCP on 127.0.0.1:`port`, serving from a thread of this process. Its
    handler closes the connection after any error reply (BUSYGROUP, say); this one answers
    the error and keeps the connection, as Redis does."""
    import select
    import threading

    from redis.exceptions import ResponseError

    try:
        from fakeredis import TcpFakeServer
        from fakeredis._clients._tcp_server import TCPFakeRequestHandler
    except ImportError:
        raise StackError("no Redis: set REDIS_URL, or install redis-server (apt-get install redis-server), "
                         "or pip install fakeredis for one that keeps nothing") from None

    class KeepOpen(TCPFakeRequestHandler):
        def handle(self) -> None:
            while not self.server._shutdown_event.is_set():
                try:
                    if self.current_client.can_read():
                        self.writer.dump(self.current_client.read_response())
                        continue
                    data = self.rfile.readline()
                    if data == b"":
                        if not select.select([self.connection], [], [], 0.01)[0]:
                            continue
                        if (data := self.rfile.readline()) == b"":
                            return  # the client closed
                    self.current_client.get_socket().sendall(data)
                except ConnectionError:
                    return
                except ResponseError as exc:
                    self.writer.dump(exc)

    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    server.RequestHandlerClass = KeepOpen
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
