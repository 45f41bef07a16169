"""`arb sim`: a local venue on 127.0.0.1 that speaks Bybit V5, for offline runs and tests.

It serves the public linear WebSocket (`/v5/public/linear`), the public market REST
(`/v5/market/*`), the signed trading and account REST (`/v5/order/*`, `/v5/execution/list`,
`/v5/position/*`, `/v5/account/*`) over a matching engine, the private WebSocket
(`/v5/private`: auth, then order, execution, position and wallet pushes), and the faults of
`faults.py` (admin endpoints `/admin/faults` and `/admin/drop`), from a seeded market model
stepped every `step_ms`. Every other venue that trades here (`self.trading`: OKX's signed
`/api/v5/trade|account/*` and `/ws/v5/private`, okx_routes.py, and the same for the others)
runs on an engine of its own over that venue's book; the rest serve market data only.

Every connection has one outgoing queue, so a subscriber always gets its snapshot before
the deltas that follow it. A client that falls `MAX_QUEUED` frames behind is disconnected,
as a venue drops slow consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
import uuid
from collections import deque

import msgspec
from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.sim import bybit_rest, bybit_trade
from services.sim.auth import Gate
from services.sim.binance_public import BinanceDialect
from services.sim.binance_routes import BinanceTrading
from services.sim.bitget_public import BitgetDialect
from services.sim.bitget_routes import BitgetTrading
from services.sim.bybit_private import stream_messages
from services.sim.bybit_public import BybitPublicFrames
from services.sim.dialect import Dialect
from services.sim.faults import FaultError, Faults
from services.sim.gate_public import GateDialect
from services.sim.hyperliquid_public import HyperliquidDialect
from services.sim.journal import Request
from services.sim.kucoin_public import KucoinDialect
from services.sim.market import VENUE_SIZE_FACTORS, VENUES, MarketModel, ModelConfig, Universe
from services.sim.matching import Matching
from services.sim.okx_public import OkxDialect
from services.sim.okx_routes import OkxTrading
from services.sim.paradex_public import ParadexDialect

log = logging.getLogger("arb.sim")
MAX_QUEUED = 10_000
JOURNAL_MAX = 200_000  # signed requests remembered (SimServer.journal), newest kept
_encode = msgspec.json.encode


# besides Bybit's, which trading shares
OTHER_DIALECTS = (BinanceDialect, OkxDialect, BitgetDialect, HyperliquidDialect, GateDialect, ParadexDialect,
                  KucoinDialect)
DIALECTS = {d.name: d for d in (BybitPublicFrames, *OTHER_DIALECTS)}

class _Client:
    """One WebSocket connection: its topics and the frames waiting to be sent to it."""

    def __init__(self, ws: web.WebSocketResponse, path: str, delay_s, source=None, wrap=None) -> None:
        self.ws = ws
        self.path = path
        self.source = source  # the frames it subscribes to: Bybit's or another venue's dialect
        self.wrap = wrap  # how this connection wraps a topic's frame (Binance combined streams)
        self.conn_id = uuid.uuid4().hex[:20]
        self.topics: set[str] = set()
        self.api_key: str | None = None  # private stream: the key it authenticated as
        self.queue: asyncio.Queue[tuple[bytes, float] | None] = asyncio.Queue()
        self._delay_s = delay_s  # the latency fault, per frame
        self._last_due = 0.0

    def send(self, frame: bytes) -> None:
        """Queue `frame`, due after the latency fault (never before the frame queued ahead)."""
        if self.queue.qsize() >= MAX_QUEUED:
            log.warning("client %s is %d frames behind: disconnecting it", self.conn_id, MAX_QUEUED)
            self.queue.put_nowait(None)
            return
        delay = self._delay_s()
        due = self._last_due = max(self._last_due, asyncio.get_running_loop().time() + delay) if delay else 0.0
        self.queue.put_nowait((frame, due))


class SimServer:
    """The market model, the Bybit public frames, and who is subscribed to what."""

    def __init__(self, symbols: list[str], seed: int = 1, step_ms: int = 20,
                 config: ModelConfig | None = None, clock=time.time,
                 api_keys: dict[str, str] | None = None, faults: Faults | None = None, paths: dict | None = None,
                 speed: float = 60.0, api_passphrases: dict[str, str] | None = None,
                 universe: Universe | None = None) -> None:
        """`api_keys` (key -> secret) sign Bybit requests; those with a passphrase in
        `api_passphrases` (key -> passphrase) sign OKX requests too, on an OKX account of their own.
        A `universe` replaces `symbols` (arb sim --universe N)."""
        self.clock = clock
        self.faults = faults or Faults()
        self.journal: deque[Request] = deque(maxlen=JOURNAL_MAX)
        self._fault_rng = random.Random(seed + 1)
        self.clients: set[_Client] = set()
        self.gate = Gate(api_keys or {})
        self.step_ms = step_ms
        self.model = MarketModel(universe.symbols if universe else symbols, seed=seed,
                                 config=config or ModelConfig(), start_ms=self._now_ms(), paths=paths, speed=speed,
                                 cheap=universe.cheap if universe else frozenset(),
                                 unlisted=universe.unlisted if universe else None)
        self.frames = BybitPublicFrames(self.model)
        self.matching = Matching(self.model, policy=self.faults)
        # venue -> its trading API: add_routes(app), push(now_ms), matching, streams (key -> clients)
        self.trading = {
            "okx": OkxTrading(self, api_keys, api_passphrases),
            "bitget": BitgetTrading(self, api_keys, api_passphrases),
            "binance": BinanceTrading(self, api_keys),
        }
        self.dialects: list[Dialect] = [self.frames] + [d(self.model) for d in OTHER_DIALECTS]
        for dialect in self.dialects:
            dialect.clock_ms = self._now_ms  # server times come from the live (skewable) clock
        self.subscribers: dict[Dialect, dict[str, set[_Client]]] = {d: {} for d in self.dialects}  # topic -> clients
        self.private: dict[str, set[_Client]] = {}  # API key -> its authenticated private streams
        self._push_ids = (f"{uuid.UUID(int=random.Random(seed + 2).getrandbits(128))}-{n}" for n in itertools.count())
        self._last_drop_ms = self._now_ms()

    def engine(self, venue: str) -> Matching:
        """The matching engine of `venue`'s accounts (Bybit's is `matching`)."""
        return self.matching if venue == "bybit" else self.trading[venue].matching

    @property
    def okx_matching(self) -> Matching:
        return self.engine("okx")

    def _now_ms(self) -> int:
        """The exchange's clock, skewed if a fault says so."""
        return int(self.clock() * 1000) + self.faults.clock_skew_ms

    def _delay_s(self) -> float:
        if self.faults.latency_ms or self.faults.jitter_ms:
            return self.faults.delay_s(self._fault_rng)
        return 0.0

    async def _latency(self) -> None:
        if delay := self._delay_s():
            await asyncio.sleep(delay)

    def drop_all(self) -> int:
        """Close every WebSocket (after the frames already queued to it)."""
        for client in self.clients:
            client.queue.put_nowait(None)
        self._last_drop_ms = self._now_ms()
        return len(self.clients)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v5/private", self._private_ws)
        for trading in self.trading.values():
            trading.add_routes(app)
        app.router.add_get("/v5/market/time", self._time)
        for path in bybit_rest.HANDLERS:
            app.router.add_get(path, self._market_rest)
        for path, (method, handler) in bybit_trade.HANDLERS.items():
            app.router.add_route(method, path, self._signed(handler))
        for dialect in self.dialects:
            for path in dialect.ws_paths:
                app.router.add_get(path, self._dialect_ws(dialect))
            for path, handler in dialect.rest().items():
                app.router.add_get(path, self._dialect_rest(handler))
            for path, handler in dialect.rest_post().items():
                app.router.add_post(path, self._dialect_rest(handler, json_body=True))
        app.router.add_post("/admin/opportunity", self._opportunity)
        app.router.add_post("/admin/listing", self._listing)
        app.router.add_get("/admin/faults", self._get_faults)
        app.router.add_post("/admin/faults", self._set_faults)
        app.router.add_post("/admin/drop", self._drop)
        app.cleanup_ctx.append(self._market_loop)
        return app

    async def _market_loop(self, app: web.Application):
        task = asyncio.ensure_future(self._run_market())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run_market(self) -> None:
        while True:
            await asyncio.sleep(self.step_ms / 1000)
            self.step()

    def step(self) -> None:
        """Advance the market and queue this step's frames to every subscriber."""
        now = self._now_ms()
        every = self.faults.drop_ws_every_s
        if every is not None and now - self._last_drop_ms >= every * 1000:
            log.info("fault: dropping %d WebSocket connections", self.drop_all())
        self.model.step(now)
        self.matching.on_step(now)
        for trading in self.trading.values():
            trading.matching.on_step(now)
        self._push_private(now)
        for trading in self.trading.values():
            trading.push(now)
        for dialect, by_topic in self.subscribers.items():
            if not by_topic:
                continue
            for topic, frames in dialect.step_frames(set(by_topic)).items():
                for client in by_topic.get(topic, ()):
                    for frame in frames:
                        client.send(client.wrap(topic, frame) if client.wrap else frame)

    async def _time(self, request: web.Request) -> web.Response:
        now_ns = int(self.clock() * 1e9) + self.faults.clock_skew_ms * 1_000_000
        result = {"timeSecond": str(now_ns // 1_000_000_000), "timeNano": str(now_ns)}
        await self._latency()  # the answer is stamped, then takes this long to arrive
        return web.json_response(bybit_rest.envelope(0, "OK", result, now_ns // 1_000_000))

    async def _market_rest(self, request: web.Request) -> web.Response:
        await self._latency()
        handler = bybit_rest.HANDLERS[request.path]
        return self._answer(lambda: handler(self.model, self.frames, request.query), self._now_ms())

    @staticmethod
    def _answer(call, now_ms: int, headers: dict[str, str] | None = None) -> web.Response:
        """Bybit's envelope around a handler's answer; bad parameters answer 10001."""
        try:
            code, message, result = call()
        except bybit_rest.ParamError as exc:
            code, message, result = 10001, str(exc), {}
        except bybit_rest.Unlisted as exc:
            code, message, result = 0, "OK", exc.result()
        return web.json_response(bybit_rest.envelope(code, message, result, now_ms), headers=headers)

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.model_dump())

    async def _set_faults(self, request: web.Request) -> web.Response:
        try:
            self.faults.apply(await request.json())
        except (FaultError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        log.info("faults now %s", self.faults.model_dump())
        return web.json_response(self.faults.model_dump())

    async def _drop(self, request: web.Request) -> web.Response:
        return web.json_response({"dropped": self.drop_all()})

    def _signed(self, handler):
        """A route that answers only requests signed as Bybit requires (see auth.Gate)."""

        async def route(request: web.Request) -> web.StreamResponse:
            await self._latency()
            payload = request.query_string if request.method == "GET" else await request.text()
            now = self._now_ms()
            verdict = self.gate.check(request.path, request.headers, payload, now, self.faults.rate_limit_per_s)
            if verdict.ret_code:
                self.journal.append(Request(now, request.path, verdict.api_key, verdict.ret_code))
                body = bybit_rest.envelope(verdict.ret_code, verdict.message, {}, now)
                return web.json_response(body, status=verdict.http_status, headers=verdict.headers)
            if (rejection := self.faults.take_rejection()) is not None:
                self.journal.append(Request(now, request.path, verdict.api_key, rejection[0]))
                body = bybit_rest.envelope(*rejection, {}, now)
                return web.json_response(body, headers=verdict.headers)
            params = _params(request, payload)
            create = request.path == "/v5/order/create"
            link_id = params.get("orderLinkId") if isinstance(params, dict) else None
            if isinstance(params, str):
                code, message, result = 10001, params, {}
            elif create and (refusal := self.faults.rejects_link_id(link_id)) is not None:
                code, message, result = *refusal, {}
            else:
                code, message, result = bybit_trade.answer(handler, self.matching, verdict.api_key, params, now)
                self._push_private(now)
            dropped = create and self.faults.take_dropped_response(self._fault_rng)
            self.journal.append(Request(now, request.path, verdict.api_key, code, link_id, params.get("reduceOnly") is
                                        True if isinstance(params, dict) else False, dropped))
            if dropped:
                log.info("fault: order %s carried out, its answer dropped", result.get("orderId"))
                request.transport.abort()
                raise ConnectionResetError("answer dropped by the drop_order_responses fault")
            return web.json_response(bybit_rest.envelope(code, message, result, now), headers=verdict.headers)

        return route

    def _push_private(self, now_ms: int) -> None:
        """Send each account's changes to its authenticated private streams."""
        for key, changes in self.matching.take_changes().items():
            clients = self.private.get(key)
            if not clients:
                continue
            for topic, message in stream_messages(self.matching, key, changes, now_ms, self._push_ids.__next__):
                frames: dict[str, bytes] = {}  # by the name a client subscribed with: `order` or `order.linear`
                for client in clients:
                    for name in client.topics & {topic, f"{topic}.linear"}:
                        if name not in frames:
                            frames[name] = _encode({**message, "topic": name})
                        client.send(frames[name])

    async def _private_ws(self, request: web.Request) -> web.WebSocketResponse:
        return await self._ws_session(request, self._on_private_request, None)

    def _dialect_ws(self, dialect: Dialect):
        def on_text(client: _Client, text: str) -> None:
            reply = dialect.on_text(client.path, text, client.conn_id)
            for frame in reply.frames:
                client.send(frame)
            for topic in reply.subscribe:
                self._subscribe(client, topic)
            for topic in reply.unsubscribe:
                self._unsubscribe(client, topic)

        async def route(request: web.Request) -> web.WebSocketResponse:
            topics, wrap = dialect.on_connect(request.path, request.query)
            return await self._ws_session(request, on_text, dialect, wrap, topics)

        return route

    def _dialect_rest(self, handler, json_body: bool = False):
        async def route(request: web.Request) -> web.Response:
            if json_body:
                try:
                    args = await request.json()
                except ValueError:
                    args = None
                if not isinstance(args, dict):
                    return web.json_response("Failed to deserialize the JSON body", status=422)
                args["_host"] = request.host  # where the client reached us, for URLs handed back
            else:
                args = request.query
            status, answer = handler(args)
            await self._latency()  # the answer is stamped, then takes this long to arrive
            return web.json_response(answer, status=status)

        return route

    async def _opportunity(self, request: web.Request) -> web.Response:
        """Force a cross-venue spread: {"symbol", "venue", "spread_bps", "funding_delta", "seconds"}."""
        try:
            ask = Opportunity.model_validate(await request.json())
        except (ValueError, ValidationError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if ask.symbol not in self.model.states or ask.venue not in self.model.states[ask.symbol].venues:
            return web.json_response({"error": f"unknown symbol {ask.symbol} or venue {ask.venue}; venues: "
                                               f"{', '.join(VENUE_SIZE_FACTORS)}"}, status=400)
        until = self._now_ms() + int(ask.seconds * 1000)
        self.model.force(ask.symbol, ask.venue, ask.spread_bps, ask.funding_delta, until)
        log.info("opportunity: %s on %s %+.1f bps, funding %+g, until %d", ask.symbol, ask.venue, ask.spread_bps,
                 ask.funding_delta, until)
        return web.json_response({**ask.model_dump(), "until_ms": until})

    async def _listing(self, request: web.Request) -> web.Response:
        """List or delist a simulated symbol on a venue: {"symbol", "venue", "listed": true|false}.
        Its instruments lists say so from now on."""
        try:
            ask = Listing.model_validate(await request.json())
        except (ValueError, ValidationError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if ask.symbol not in self.model.states or ask.venue not in VENUES:
            return web.json_response({"error": f"unknown symbol {ask.symbol} or venue {ask.venue}; venues: "
                                               f"{', '.join(VENUES)}"}, status=400)
        self.model.list_symbol(ask.symbol, ask.venue, ask.listed)
        log.info("listing: %s %s on %s", ask.symbol, "listed" if ask.listed else "delisted", ask.venue)
        return web.json_response(ask.model_dump())

    async def _ws_session(self, request: web.Request, on_text, source, wrap=None,
                          topics: list[str] = ()) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        client = _Client(ws, request.path, self._delay_s, source, wrap)
        self.clients.add(client)
        sender = asyncio.ensure_future(self._send_loop(client))
        for topic in topics:
            self._subscribe(client, topic)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    on_text(client, msg.data)
        finally:
            self.clients.discard(client)
            for topic in list(client.topics):
                self._unsubscribe(client, topic)
            if client.api_key is not None:
                for streams in (self.private, *(t.streams for t in self.trading.values())):
                    streams.get(client.api_key, set()).discard(client)
            client.queue.put_nowait(None)
            await sender
        return ws

    async def _send_loop(self, client: _Client) -> None:
        loop = asyncio.get_running_loop()
        while (item := await client.queue.get()) is not None:
            frame, due = item
            if due and (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            try:
                await client.ws.send_str(frame.decode())
            except ConnectionError:
                break
        await client.ws.close()

    def _subscribe(self, client: _Client, topic: str) -> None:
        if topic in client.topics:
            return
        client.topics.add(topic)
        self.subscribers[client.source].setdefault(topic, set()).add(client)
        for frame in client.source.snapshot(topic):
            client.send(client.wrap(topic, frame) if client.wrap else frame)

    def _unsubscribe(self, client: _Client, topic: str) -> None:
        client.topics.discard(topic)
        by_topic = self.subscribers.get(client.source, {})
        listeners = by_topic.get(topic)
        if listeners is not None:
            listeners.discard(client)
            if not listeners:
                del by_topic[topic]
                client.source.forget(topic)


    def _on_private_request(self, client: _Client, text: str) -> None:
        """The private stream: auth, then subscribe to order, execution, position, wallet
        (or their `.linear` forms); pongs in the private shape."""
        request = Dialect.decode(text) or {}
        op = request.get("op")
        reply = {"success": True, "ret_msg": "", "op": op or "", "conn_id": client.conn_id}
        if "req_id" in request:
            reply["req_id"] = request["req_id"]
        if op == "ping":
            pong = {"op": "pong", "args": [str(self._now_ms())], "conn_id": client.conn_id}
            client.send(_encode({"req_id": request["req_id"], **pong} if "req_id" in request else pong))
        elif op == "auth":
            key = self.gate.stream_auth(request.get("args"), self._now_ms())
            if key is None:
                log.info("private stream %s: auth refused (unknown key, expired or bad signature)", client.conn_id)
                client.send(_encode({**reply, "success": False, "ret_msg": "Params Error"}))
                return
            client.api_key = key
            self.private.setdefault(key, set()).add(client)
            client.send(_encode(reply))
        elif op in ("subscribe", "unsubscribe"):
            args = request.get("args")
            if client.api_key is None:
                client.send(_encode({**reply, "success": False, "ret_msg": "Request not authorized"}))
            elif not isinstance(args, list) or not args or not all(a in PRIVATE_TOPICS for a in args):
                client.send(_encode({**reply, "success": False, "ret_msg": f"error:handler not found,topic:{args}"}))
            else:
                (client.topics.update if op == "subscribe" else client.topics.difference_update)(args)
                client.send(_encode(reply))
        else:
            client.send(_encode({**reply, "success": False, "ret_msg": f"error:unknown op {op!r}"}))


class Listing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str
    venue: str
    listed: bool


class Opportunity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str
    venue: str
    spread_bps: float = Field(ge=-500, le=500)  # the venue's price above Bybit's, in bps
    funding_delta: float = Field(0.0, ge=-0.005, le=0.005)  # its funding rate above Bybit's
    seconds: float = Field(60.0, gt=0, le=86_400)


PRIVATE_TOPICS = frozenset(t + suffix for t in ("order", "execution", "position", "wallet")
                           for suffix in ("", ".linear"))


def _params(request: web.Request, payload: str) -> dict | str:
    """A signed request's parameters: the query of a GET, the JSON object body of a POST;
    a message saying what is wrong otherwise."""
    if request.method == "GET":
        return dict(request.query)
    try:
        body = msgspec.json.decode(payload) if payload else {}
    except msgspec.DecodeError:
        return "params error: the body is not JSON"
    return body if isinstance(body, dict) else "params error: the body must be a JSON object"


async def serve(host: str, port: int, symbols: list[str], seed: int, stop: asyncio.Event,
                api_keys: dict[str, str] | None = None, faults: Faults | None = None, paths: dict | None = None,
                speed: float = 60.0, step_ms: int = 20, api_passphrases: dict[str, str] | None = None,
                universe: Universe | None = None) -> None:
    server = SimServer(symbols, seed=seed, step_ms=step_ms, api_keys=api_keys, faults=faults, paths=paths,
                       speed=speed, api_passphrases=api_passphrases, universe=universe)
    if universe is not None:
        symbols = [f"{len(universe.symbols)} symbols ({len(universe.cheap)} on the cheap model)"]
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("simulated venues on http://%s:%d (Bybit V5, OKX V5, Bitget V2 and Binance USD-M trading; "
             "market data of those and others), symbols %s, seed %d, "
             "a step every %d ms%s", host, port, ",".join(symbols), seed, step_ms,
             f", replaying {','.join(paths)} at {speed:g}x" if paths else "")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
