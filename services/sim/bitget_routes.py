"""Bitget V2 mix trading on the simulator's server: the signed REST of bitget_trade.py and the
private WebSocket `/v2/ws/private`, over Bitget's own accounts (a matching engine of its own on
Bitget's shifted book, book_view.ShiftedBook).

Private stream (protocol-trading-okx-bitget-binance.md §3.5):

    -> {"op": "login", "args": [{"apiKey", "passphrase", "timestamp": "<epoch s>", "sign"}]}
    <- {"event": "login", "code": 0}                                   (the number 0, as live)
    <- {"event": "error", "code": 30012, "msg": "Invalid ACCESS_PASSPHRASE"}, then the connection closes
    -> {"op": "subscribe", "args": [{"instType": "USDT-FUTURES", "channel": "orders", "instId": "default"},
        ... "positions" ..., {"instType": "USDT-FUTURES", "channel": "account", "coin": "default"}, ... "fill" ...]}
    <- {"event": "subscribe", "arg": {...}}                            (one per arg)
    -> ping   <- pong   (text)

`orders`, `positions` and `fill` take instId "default" (every symbol) or a symbol; `account`
coin "default" or "USDT". Subscribing before login answers 30004. Pushes are
`{"action": "snapshot", "arg", "data", "ts"}`: `orders` one per order event (each fill, then a
state its fills did not show; no snapshot on subscribing), `fill` one per trade, `positions`
every open position whenever one changes (an empty list: none open; a snapshot on
subscribing), `account` the USDT row on every change (and on subscribing).

Faults act as on Bybit and OKX: latency, dropped order answers (place-order carried out, the
connection cut before the answer), reject_next / reject_link_ids (matched against `clientOid`;
the code mapped by bitget_trade.fault_code), unfilled and partial fills (the engines share the
fault policy), disconnects, clock skew and rate_limit_per_s.
"""

from __future__ import annotations

import logging

import msgspec
from aiohttp import web

from services.sim import bitget_private, bitget_trade
from services.sim.bitget_auth import RATE_LIMITED, BitgetGate
from services.sim.book_view import ShiftedBook
from services.sim.dialect import Dialect
from services.sim.journal import Request
from services.sim.matching import Matching

log = logging.getLogger("arb.sim.bitget")
_encode = msgspec.json.encode
PLACE_ORDER = "/api/v2/mix/order/place-order"
CHANNELS = ("orders", "fill", "positions", "account")


class BitgetTrading:
    """Bitget's accounts on a SimServer: their engine, signed routes and private streams."""

    def __init__(self, server, api_keys: dict[str, str] | None, api_passphrases: dict[str, str] | None) -> None:
        self.server = server
        self.gate = BitgetGate(api_keys or {}, api_passphrases or {})
        self.matching = Matching(server.model, new_id=bitget_trade.new_ids(), policy=server.faults,
                                 view=ShiftedBook(server.model, "bitget"), rules=bitget_trade.RULES)
        self.book = bitget_trade.Book(self.matching)
        self.streams: dict[str, set] = {}  # API key -> its logged-in private streams

    def add_routes(self, app: web.Application) -> None:
        for (method, path), handler in bitget_trade.HANDLERS.items():
            app.router.add_route(method, path, self._signed(handler))
        app.router.add_get("/v2/ws/private", self._private_ws)

    # --- REST --------------------------------------------------------------------------

    def _signed(self, handler):
        server = self.server

        async def route(request: web.Request) -> web.StreamResponse:
            await server._latency()
            text = "" if request.method == "GET" else await request.text()
            now = server._now_ms()
            key, refused = self.gate.check(request.method, request.path, request.query_string, request.headers, text,
                                           now)
            if refused is not None:
                server.journal.append(Request(now, request.path, key, int(refused.code)))
                return web.json_response(bitget_trade.envelope(refused.code, refused.msg, None, now),
                                         status=refused.http_status)
            params = _params(request, text)
            if isinstance(params, tuple):
                server.journal.append(Request(now, request.path, key, int(params[0])))
                return web.json_response(bitget_trade.envelope(params[0], params[1], None, now), status=400)
            if not self.gate.allow(key, request.method, request.path, now, server.faults.rate_limit_per_s):
                code, msg, status = RATE_LIMITED
                server.journal.append(Request(now, request.path, key, int(code)))
                return web.json_response(bitget_trade.envelope(code, msg, None, now), status=status)
            place = request.method == "POST" and request.path == PLACE_ORDER
            client_oid = params.get("clientOid") if isinstance(params.get("clientOid"), str) else None
            if (rejection := server.faults.take_rejection()) is not None or (
                    place and (rejection := server.faults.rejects_link_id(client_oid)) is not None):
                code = bitget_trade.fault_code(rejection[0])
                status, body = bitget_trade.refusal(
                    bitget_trade.BitgetError(code, bitget_trade.MESSAGES.get(code, rejection[1])), now)
            else:
                status, body, code = bitget_trade.answer(handler, self.book, key, params, now)
                self.push(now)
            dropped = place and server.faults.take_dropped_response(server._fault_rng)
            server.journal.append(Request(now, request.path, key, int(code), client_oid,
                                          bitget_trade.reduces_only(params), dropped))
            if dropped:
                log.info("fault: Bitget order %s carried out, its answer dropped", body.get("data"))
                request.transport.abort()
                raise ConnectionResetError("answer dropped by the drop_order_responses fault")
            return web.json_response(body, status=status)

        return route

    # --- the private stream --------------------------------------------------------------

    async def _private_ws(self, request: web.Request) -> web.WebSocketResponse:
        return await self.server._ws_session(request, self._on_text, None)

    def _on_text(self, client, text: str) -> None:
        if text == "ping":
            client.send(b"pong")
            return
        request = Dialect.decode(text)
        op = request.get("op") if request else None
        if op == "login":
            key, refused = self.gate.login(request.get("args"), self.server._now_ms())
            if refused is not None:
                log.info("Bitget private stream %s: login refused (%s)", client.conn_id, refused.code)
                client.send(_encode({"event": "error", "code": int(refused.code), "msg": refused.msg}))
                client.queue.put_nowait(None)  # "If login fails, it will automatically disconnect."
                return
            client.api_key = key
            self.streams.setdefault(key, set()).add(client)
            client.send(_encode({"event": "login", "code": 0, "msg": ""}))
        elif op in ("subscribe", "unsubscribe"):
            if client.api_key is None:
                client.send(_encode({"event": "error", "code": 30004, "msg": "User needs to log in"}))
                return
            args = request.get("args")
            if not isinstance(args, list) or not args:
                client.send(_encode({"event": "error", "code": 30002, "msg": f"illegal request: {text[:200]}"}))
                return
            for arg in args:
                self._subscription(client, op, arg)
        else:
            client.send(_encode({"event": "error", "code": 30003, "msg": f"Invalid op: {text[:200]}"}))

    def _subscription(self, client, op: str, arg: object) -> None:
        """Acknowledge one subscribe (or unsubscribe) arg; positions and account get their snapshot."""
        arg = arg if isinstance(arg, dict) else {}
        channel = arg.get("channel")
        target = arg.get("coin") if channel == "account" else arg.get("instId")
        known = target in ("default", "USDT") if channel == "account" else (
            target == "default" or target in self.server.model.states)
        if channel not in CHANNELS or arg.get("instType") != bitget_private.PRODUCT_TYPE or not known:
            client.send(_encode({"event": "error", "arg": arg, "code": 30001,
                                 "msg": f"instType:{arg.get('instType')},channel:{channel},"
                                        f"instId:{target} doesn't exist"}))
            return
        topic = _encode(dict(sorted(arg.items()))).decode()
        client.send(_encode({"event": op, "arg": arg}))
        if op == "unsubscribe":
            client.topics.discard(topic)
            return
        client.topics.add(topic)
        m, now = self.matching, self.server._now_ms()
        account = m.account(client.api_key)
        if channel == "positions":
            rows = [r for r in bitget_private.open_positions(m, account, now, pushed=True) if _wants(arg, r["instId"])]
            client.send(_encode({"action": "snapshot", "arg": arg, "data": rows, "ts": now}))
        elif channel == "account":
            client.send(_encode({"action": "snapshot", "arg": arg,
                                 "data": [bitget_private.account_fields(m, account, pushed=True)], "ts": now}))

    def push(self, now_ms: int) -> None:
        """Send each Bitget account's changes to its logged-in private streams."""
        m = self.matching
        for key, changes in m.take_changes().items():
            clients = self.streams.get(key)
            if not clients:
                continue
            account = m.account(key)
            rows = {"orders": bitget_private.order_pushes(m, account, changes),
                    "fill": bitget_private.fill_pushes(m, account, changes),
                    "positions": bitget_private.open_positions(m, account, now_ms, pushed=True)
                    if changes.positions else None,
                    "account": [bitget_private.account_fields(m, account, pushed=True)]}
            frames: dict[str, list[bytes]] = {}
            for client in clients:
                for topic in sorted(client.topics, key=_channel_order):  # orders, fill, positions, account
                    if topic not in frames:
                        frames[topic] = _frames(msgspec.json.decode(topic), rows, now_ms)
                    for frame in frames[topic]:
                        client.send(frame)


def _channel_order(topic: str) -> int:
    return next(i for i, channel in enumerate(CHANNELS) if f'"channel":"{channel}"' in topic)


def _wants(arg: dict, symbol: str) -> bool:
    return arg.get("instId") in ("default", symbol)


def _frames(arg: dict, rows: dict, now_ms: int) -> list[bytes]:
    """What one subscription gets of one account change."""
    channel = arg["channel"]
    if channel in ("orders", "fill"):
        key = "instId" if channel == "orders" else "symbol"
        return [_encode({"action": "snapshot", "arg": arg, "data": [r], "ts": now_ms})
                for r in rows[channel] if _wants(arg, r[key])]
    if channel == "positions":
        if rows["positions"] is None:
            return []
        data = [r for r in rows["positions"] if _wants(arg, r["instId"])]
        return [_encode({"action": "snapshot", "arg": arg, "data": data, "ts": now_ms})]
    return [_encode({"action": "snapshot", "arg": arg, "data": rows["account"], "ts": now_ms})]


def _params(request: web.Request, text: str) -> dict | tuple[str, str]:
    """A signed request's parameters: the query of a GET, the JSON object body of a POST;
    Bitget's (code, message) when the body is not that."""
    if request.method == "GET":
        return dict(request.query)
    try:
        body = msgspec.json.decode(text) if text else None
    except msgspec.DecodeError:
        body = None
    return body if isinstance(body, dict) else ("40020", "Parameter verification failed: the body is not a JSON object")
