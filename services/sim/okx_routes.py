"""OKX V5 trading on the simulator's server: the signed REST of okx_trade.py and the private
WebSocket `/ws/v5/private`, over OKX's own accounts (a second matching engine on OKX's
shifted book, book_view.ShiftedBook).

Private stream (protocol-trading-okx-bitget-binance.md §2.7):

    -> {"op": "login", "args": [{"apiKey", "passphrase", "timestamp": "<epoch s>", "sign"}]}
    <- {"event": "login", "code": "0", "msg": "", "connId": "..."}
    <- {"event": "error", "code": "60024", "msg": "Wrong passphrase", "connId": "..."}
    -> {"id": "s1", "op": "subscribe", "args": [{"channel": "orders", "instType": "SWAP"},
        {"channel": "positions", "instType": "SWAP"}, {"channel": "account", "ccy": "USDT"}]}
    <- {"id": "s1", "event": "subscribe", "arg": {"channel": "orders", "instType": "SWAP"}, "connId": "..."}
    -> ping   <- pong   (text)

`orders` and `positions` take instType SWAP or ANY, and optionally instId or instFamily.
Subscribing before login answers 60011. Pushes follow every change: `orders` one per order
event (each fill, then a state its fills did not show), `positions` with `eventType`
`event_update` (a snapshot of the open positions on subscribing; no periodic snapshots),
`account` with the USDT balance (its snapshot too on subscribing).

Faults act as on Bybit: latency, dropped order answers (`POST /api/v5/trade/order` carried
out, the connection cut before the answer), reject_next / reject_link_ids (the code mapped
by okx_trade.fault_code), unfilled and partial fills (the engines share the fault policy),
disconnects, clock skew and rate_limit_per_s.
"""

from __future__ import annotations

import logging

import msgspec
from aiohttp import web

from services.sim import okx_private, okx_trade
from services.sim.book_view import ShiftedBook
from services.sim.dialect import Dialect
from services.sim.journal import Request
from services.sim.matching import Matching
from services.sim.okx_auth import RATE_LIMITED, OkxGate
from services.sim.okx_public import inst_id

log = logging.getLogger("arb.sim.okx")
_encode = msgspec.json.encode
PLACE_ORDER = "/api/v5/trade/order"
CHANNELS = ("orders", "positions", "account")


class OkxTrading:
    """OKX's accounts on a SimServer: their engine, signed routes and private streams."""

    def __init__(self, server, api_keys: dict[str, str] | None, api_passphrases: dict[str, str] | None) -> None:
        self.server = server
        self.gate = OkxGate(api_keys or {}, api_passphrases or {})
        self.matching = Matching(server.model, new_id=okx_trade.new_ids(), policy=server.faults,
                                 view=ShiftedBook(server.model, "okx"), rules=okx_trade.RULES)
        self.streams: dict[str, set] = {}  # API key -> its logged-in private streams

    def add_routes(self, app: web.Application) -> None:
        for (method, path), (handler, per_item) in okx_trade.HANDLERS.items():
            app.router.add_route(method, path, self._signed(handler, per_item))
        app.router.add_get("/ws/v5/private", self._private_ws)

    # --- REST --------------------------------------------------------------------------

    def _signed(self, handler, per_item: bool):
        server = self.server

        async def route(request: web.Request) -> web.StreamResponse:
            await server._latency()
            text = "" if request.method == "GET" else await request.text()
            now = server._now_ms()
            key, refused = self.gate.check(request.method, request.raw_path, request.headers, text, now)
            if refused is not None:
                server.journal.append(Request(now, request.path, key, int(refused.code)))
                return web.json_response({"code": refused.code, "msg": refused.msg, "data": []},
                                         status=refused.http_status)
            params = _params(request, text)
            if isinstance(params, tuple):
                server.journal.append(Request(now, request.path, key, int(params[0])))
                return web.json_response({"code": params[0], "msg": params[1], "data": []}, status=400)
            place = request.method == "POST" and request.path == PLACE_ORDER
            instrument = params.get("instId") if isinstance(params.get("instId"), str) else ""
            if not self.gate.allow(key, request.method, request.path, instrument, now, server.faults.rate_limit_per_s):
                code, msg, status = RATE_LIMITED
                server.journal.append(Request(now, request.path, key, int(code)))
                return web.json_response({"code": code, "msg": msg, "data": []}, status=status)
            if (rejection := server.faults.take_rejection()) is not None or (
                    place and (rejection := server.faults.rejects_link_id(params.get("clOrdId"))) is not None):
                code = okx_trade.fault_code(rejection[0])
                error = okx_trade.OkxError(code, okx_trade.MESSAGES.get(code, rejection[1]))
                status, body = okx_trade.refusal(error, per_item, params, now)
            else:
                status, body, code = okx_trade.answer(handler, per_item, self.matching, key, params, now)
                self.push(now)
            dropped = place and server.faults.take_dropped_response(server._fault_rng)
            server.journal.append(Request(now, request.path, key, int(code), params.get("clOrdId") or None,
                                          okx_trade.reduces_only(params), dropped))
            if dropped:
                log.info("fault: OKX order %s carried out, its answer dropped", body["data"][:1])
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
        head = {"id": request["id"]} if request and "id" in request else {}
        op = request.get("op") if request else None
        if op == "login":
            key, refused = self.gate.login(request.get("args"), self.server._now_ms())
            if refused is not None:
                log.info("OKX private stream %s: login refused (%s)", client.conn_id, refused.code)
                client.send(_encode({**head, "event": "error", "code": refused.code, "msg": refused.msg,
                                     "connId": client.conn_id}))
                return
            client.api_key = key
            self.streams.setdefault(key, set()).add(client)
            client.send(_encode({**head, "event": "login", "code": "0", "msg": "", "connId": client.conn_id}))
        elif op in ("subscribe", "unsubscribe"):
            if client.api_key is None:
                client.send(_encode({**head, "event": "error", "code": "60011", "msg": "Please log in",
                                     "connId": client.conn_id}))
                return
            args = request.get("args")
            if not isinstance(args, list) or not args:
                client.send(_encode({**head, "event": "error", "code": "60012",
                                     "msg": f"Invalid request: {text[:200]}", "connId": client.conn_id}))
                return
            for arg in args:
                self._subscription(client, op, arg, head)
        else:
            client.send(_encode({**head, "event": "error", "code": "60012", "msg": f"Invalid request: {text[:200]}",
                                 "connId": client.conn_id}))

    def _subscription(self, client, op: str, arg: object, head: dict) -> None:
        """Acknowledge one subscribe (or unsubscribe) arg; a positions or account subscription gets its snapshot."""
        arg = arg if isinstance(arg, dict) else {}
        channel, instrument = arg.get("channel"), arg.get("instId") or None
        known = instrument is None or instrument in {inst_id(s) for s in self.server.model.states}
        typed = channel == "account" or arg.get("instType") in ("SWAP", "ANY")
        if channel not in CHANNELS or not known or not typed:
            client.send(_encode({**head, "event": "error", "code": "60018", "connId": client.conn_id,
                                 "msg": f"Wrong URL or channel:{channel},instId:{instrument or ''} doesn't exist"}))
            return
        topic = _encode(dict(sorted(arg.items()))).decode()
        client.send(_encode({**head, "event": op, "arg": arg, "connId": client.conn_id}))
        if op == "unsubscribe":
            client.topics.discard(topic)
            return
        client.topics.add(topic)
        m, key, now = self.matching, client.api_key, self.server._now_ms()
        account = m.account(key)
        push_arg = {**arg, "uid": okx_private.uid(key)}
        if channel == "positions":
            rows = [r for r in okx_private.open_positions(m, account, now) if _wants(arg, r["instId"])]
            client.send(_encode({"arg": push_arg, "eventType": "snapshot", "curPage": 1, "lastPage": True,
                                 "data": rows}))
        elif channel == "account" and arg.get("ccy", "USDT") == "USDT":
            client.send(_encode({"arg": push_arg, "data": [okx_private.balance_fields(m, account, now)]}))

    def push(self, now_ms: int) -> None:
        """Send each OKX account's changes to its logged-in private streams."""
        m = self.matching
        for key, changes in m.take_changes().items():
            clients = self.streams.get(key)
            if not clients:
                continue
            account = m.account(key)
            orders = okx_private.order_pushes(m, account, changes)
            positions = okx_private.pushed_positions(m, account, changes, now_ms)
            balance = okx_private.balance_fields(m, account, now_ms)
            frames: dict[str, list[bytes]] = {}
            for client in clients:
                for topic in sorted(client.topics, key=_channel_order):  # orders, then positions, then account
                    if topic not in frames:
                        frames[topic] = _frames(msgspec.json.decode(topic), okx_private.uid(key), orders,
                                                positions, balance)
                    for frame in frames[topic]:
                        client.send(frame)


def _channel_order(topic: str) -> int:
    return next(i for i, channel in enumerate(CHANNELS) if f'"channel":"{channel}"' in topic)


def _wants(arg: dict, instrument: str) -> bool:
    if arg.get("instId") and arg["instId"] != instrument:
        return False
    return not arg.get("instFamily") or arg["instFamily"] == instrument.removesuffix("-SWAP")


def _frames(arg: dict, uid: str, orders: list[dict], positions: list[dict], balance: dict) -> list[bytes]:
    """What one subscription gets of one account change."""
    push_arg = {**arg, "uid": uid}
    if arg["channel"] == "orders":
        return [_encode({"arg": push_arg, "data": [o]}) for o in orders if _wants(arg, o["instId"])]
    if arg["channel"] == "positions":
        rows = [p for p in positions if _wants(arg, p["instId"])]
        return [_encode({"arg": push_arg, "eventType": "event_update", "data": rows})] if rows else []
    if arg.get("ccy", "USDT") != "USDT":
        return []
    return [_encode({"arg": push_arg, "data": [balance]})]


def _params(request: web.Request, text: str) -> dict | tuple[str, str]:
    """A signed request's parameters: the query of a GET, the JSON object body of a POST;
    OKX's (code, message) when the body is not that."""
    if request.method == "GET":
        return dict(request.query)
    if not text:
        return "50000", "Body for POST request cannot be empty."
    try:
        body = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return "50002", "JSON syntax error"
    return body if isinstance(body, dict) else ("50002", "JSON syntax error")
