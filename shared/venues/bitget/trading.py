"""Bitget V2 mix (USDT-FUTURES, classic account) trading (protocol-trading-okx-bitget-binance.md §3, §5):
`BitgetTrading`, the trading interface (shared/venues/trading.py) at Bitget, live or demo.

- Requests go through `BitgetRest` (client.py: signing, the clock offset, per-endpoint budgets,
  rate-limit retries, and `CODE_KINDS`, what each Bitget code means as a refusal kind).
- Sizes are base coin at both ends: an order is floored to the `sizeMultiplier` grid, and
  refused unsent under `minTradeNum` or, when it opens, under `minTradeUSDT` at its price
  (`order_request`, pure). A limit price goes on the tick grid, never worse for the order.
- The account trades in hedge mode (`posMode` hedge_mode), cross margin (`marginMode`
  "crossed", `marginCoin` USDT): an order's `side` names the *position* (open long = buy +
  open, close long = buy + close, open short = sell + open, close short = sell + close) and
  never `reduceOnly`, which Bitget takes in one-way mode only.
- Client ids (`clientOid`): a link id's letters and digits (`a1b2c3d4e5f6-LE1` ->
  `a1b2c3d4e5f6LE1`, at most 32). Bitget refuses one a pending order carries (40786, kind
  duplicate: the executor then looks the order up), but takes it again once that order has
  finished (§3.3), so an order whose create had no answer is not sent again (`ids_reusable`).
- Demo: the same host with `paptrading: 1`. Whether demo contracts are S-prefixed
  (`SUSDT-FUTURES`, `SBTCSUSDT`, margin coin `SUSDT`) or the plain ones is UNSURE (§3.1, §6.1):
  with `product_type` None, `prepare` asks the contracts of `SUSDT-FUTURES` and trades the
  S-symbols if there are any, else `USDT-FUTURES` and the plain symbols; "USDT-FUTURES" or
  "SUSDT-FUTURES" forces one.
The key, secret and passphrase are never logged, shown or put in an error.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

import aiohttp

from shared.instruments import Instrument
from shared.venues.bitget.client import BitgetRest
from shared.venues.bitget.private import Rows, floor_size, grid_price
from shared.venues.bitget.stream import BitgetPrivateStream
from shared.venues.trading import (
    AlnumClientIds,
    BadRow,
    BalanceUpdate,
    Budget,
    FillUpdate,
    FundingUpdate,
    Kind,
    OnMessage,
    OrderSpec,
    OrderUpdate,
    OutcomeUnknown,
    PositionUpdate,
    Refused,
    StreamUpdate,
    VenueTrading,
    alnum_client_id,
)

log = logging.getLogger("arb.bitget")
LIVE_PRODUCT, DEMO_PRODUCT = "USDT-FUTURES", "SUSDT-FUTURES"
PRODUCT_TYPES = (LIVE_PRODUCT, DEMO_PRODUCT)
MARGIN_COINS = {LIVE_PRODUCT: "USDT", DEMO_PRODUCT: "SUSDT"}
PLACE = "/api/v2/mix/order/place-order"
PAGE = 100
BILL_WINDOW_MS = 30 * 86_400_000  # startTime..endTime at most 30 days apart (§3.6)
BILLS_KEPT_MS = 90 * 86_400_000  # the bills endpoint answers 90 days back


def client_id(link_id: str) -> str:
    """Bitget's clientOid for a link id: its letters and digits (1-32; §3.3 and §5.2: the one form
    every copy of Bitget's rules accepts)."""
    return alnum_client_id(link_id, "Bitget")


def hedge_sides(spec: OrderSpec) -> tuple[str, str]:
    """(side, tradeSide) of an order in hedge mode: `side` is the position's direction."""
    opening = "long" if spec.side == "Buy" else "short"
    position = spec.position_side or (("short" if opening == "long" else "long") if spec.reduce_only else opening)
    if spec.reduce_only and position == opening:
        raise ValueError(f"a reduce-only {spec.side} would open {position}, not close it")
    return ("buy" if position == "long" else "sell"), ("open" if position == opening else "close")


def order_size(qty: Decimal, price: Decimal | None, inst: Instrument, min_notional: Decimal | None,
               opens: bool = True) -> tuple[Decimal, str]:
    """The size Bitget is sent for `qty` base coin: floored to the lot (`sizeMultiplier`), and
    "" when that is fine, else why it is under the minimum: one lot, and for an order that opens,
    `minTradeNum` ("minimum opening amount", §3.3) and, at a known price, `minTradeUSDT`; a close
    of what is left below them can still be sent. Pure: the property tests hold it to the grid."""
    lot = inst.lot or Decimal(1)
    size = floor_size(qty, lot)
    minimum = max(inst.min_size or Decimal(0), lot) if opens else lot
    if size < minimum:
        return size, f"{qty} {inst.symbol} is {size} on the lot grid of {lot}, under the minimum of {minimum}"
    if opens and min_notional and price is not None and size * price < min_notional:
        return size, f"{size} {inst.symbol} at {price} is worth {size * price}, under the minimum of {min_notional}"
    return size, ""


def order_request(spec: OrderSpec, inst: Instrument, client_oid: str, product_type: str = LIVE_PRODUCT,
                  margin_coin: str = "USDT", min_notional: Decimal | None = None) -> dict[str, str]:
    """The body of POST /api/v2/mix/order/place-order; Refused, unsent, for what Bitget could not take."""
    def refuse(kind: Kind, why: str) -> Refused:
        return Refused("bitget", "local", f"{spec.link_id}: {why}", kind, PLACE)

    if spec.side not in ("Buy", "Sell"):
        raise refuse("invalid", f"side {spec.side!r}")
    try:
        side, trade_side = hedge_sides(spec)
    except ValueError as exc:
        raise refuse("invalid", str(exc)) from None
    if not spec.qty.is_finite() or spec.qty <= 0:
        raise refuse("invalid", f"quantity {spec.qty}")
    price = None
    if spec.price is not None:
        if not spec.price.is_finite() or spec.price <= 0:
            raise refuse("invalid", f"price {spec.price}")
        price = grid_price(spec.price, inst.tick, spec.side) if inst.tick else spec.price
        if price <= 0:
            raise refuse("invalid", f"price {spec.price} is under one tick of {inst.tick}")
    size, short = order_size(spec.qty, price, inst, min_notional, opens=trade_side == "open")
    if short:
        raise refuse("below_minimum", short)
    body = {"symbol": inst.venue_symbol, "productType": product_type, "marginMode": "crossed",
            "marginCoin": margin_coin, "size": format(size, "f"), "side": side, "tradeSide": trade_side,
            "orderType": "market", "clientOid": client_oid}
    if price is None:
        if spec.tif == "post_only":
            raise refuse("invalid", "a post-only order needs a price")
        return body
    forces = {"GTC": "gtc", "IOC": "ioc", "FOK": "fok", "post_only": "post_only"}
    if spec.tif not in forces:
        raise refuse("invalid", f"time in force {spec.tif!r}")
    return {**body, "orderType": "limit", "price": format(price, "f"), "force": forces[spec.tif]}


class BitgetTrading(AlnumClientIds, VenueTrading):
    venue = "bitget"
    order_rate = (10, 1.0)  # place-order per UID (§3.3)
    ids_reusable = True  # a clientOid is unique among pending orders only (§3.3)
    funding_on_stream = False  # funding is read from the account bills

    def __init__(self, http: aiohttp.ClientSession, rest_url: str, ws_url: str, api_key: str, api_secret: str,
                 passphrase: str, instruments: list[Instrument], demo: bool = False, product_type: str | None = None,
                 budget: Budget | None = None, clock: Callable[[], float] = time.time, timeout_s: float = 5.0) -> None:
        if product_type is not None and product_type not in PRODUCT_TYPES:
            raise ValueError(f"Bitget product type {product_type!r}: one of {', '.join(PRODUCT_TYPES)}, or None")
        self.http, self.ws_url, self.demo = http, ws_url, demo
        self.rest = BitgetRest(http, rest_url, api_key, api_secret, passphrase, demo, budget, clock, timeout_s)
        self._key, self._secret, self._passphrase = api_key, api_secret, passphrase
        self.product_type_setting = product_type
        self.product_type = product_type or LIVE_PRODUCT
        self.by_symbol = {i.symbol: i for i in instruments if i.venue == "bitget" and not i.inverse}
        self.min_notional: dict[str, Decimal] = {}  # symbol -> minTradeUSDT (prepare)
        self.fees: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (maker, taker) of the contracts (prepare)
        self._links: dict[str, str] = {}  # clientOid -> link id
        self._order_ids: dict[str, str] = {}  # link id -> orderId
        self._cancels: set[str] = set()  # link ids this client asked to cancel
        self.rows = Rows({i.venue_symbol: i for i in self.by_symbol.values()}, self.link_id,
                         self._cancels.__contains__)

    @classmethod
    def for_account(cls, http: aiohttp.ClientSession, rest_url: str, ws_url: str, credentials: tuple[str, ...],
                    instruments: list[Instrument], demo: bool, **options) -> BitgetTrading:
        """The client of one account: `credentials` = (API key, secret, passphrase)."""
        if len(credentials) != 3:
            raise ValueError(f"Bitget needs an API key, its secret and its passphrase ({len(credentials)} given)")
        key, secret, passphrase = credentials
        return cls(http, rest_url, ws_url, key, secret, passphrase, instruments, demo=demo, **options)

    def __repr__(self) -> str:  # never the key, secret or passphrase
        return f"BitgetTrading({self.rest.rest_url}, demo={self.demo}, {self.product_type})"

    @property
    def margin_coin(self) -> str:
        return MARGIN_COINS[self.product_type]

    # ------------------------------------------------------------------ start

    async def prepare(self) -> None:
        """Load what the client needs before trading: the product type (on demo, unless set:
        the S-prefixed contracts if Bitget lists any, else the plain ones), and from the contracts
        each symbol's grid, `minTradeUSDT` and fee rates."""
        if self.demo and self.product_type_setting is None:
            try:
                rows = await self._contracts(DEMO_PRODUCT)
            except Refused as exc:
                log.info("Bitget demo: no %s contracts (%s); trading %s", DEMO_PRODUCT, exc, LIVE_PRODUCT)
                rows = []
            found = self._s_rows(rows)
            self.product_type = DEMO_PRODUCT if found else LIVE_PRODUCT
            log.info("Bitget demo trades %s (%d S-prefixed contracts found)", self.product_type, len(found))
        rows = await self._contracts(self.product_type)
        by_name = self._s_rows(rows) if self.product_type == DEMO_PRODUCT else {
            r["symbol"]: r for r in rows if isinstance(r, dict) and isinstance(r.get("symbol"), str)}
        updated = {}
        for symbol, inst in self.by_symbol.items():
            name = f"S{symbol.removesuffix('USDT')}SUSDT" if self.product_type == DEMO_PRODUCT else inst.venue_symbol
            row = by_name.get(name)
            if row is None:
                log.warning("Bitget %s lists no %s: it is not traded", self.product_type, name)
                continue
            updated[symbol] = self._from_contract(inst, name, row)
        self.by_symbol = updated
        self.rows.by_venue_symbol = {i.venue_symbol: i for i in updated.values()}

    async def _contracts(self, product_type: str) -> list:
        data = await self.rest.public("/api/v2/mix/market/contracts", {"productType": product_type})
        return data if isinstance(data, list) else []

    @staticmethod
    def _s_rows(rows: list) -> dict[str, dict]:
        """The demo's S-prefixed contracts (`SBTCSUSDT`, quote SUSDT) by name."""
        return {r["symbol"]: r for r in rows if isinstance(r, dict) and isinstance(r.get("symbol"), str)
                and r["symbol"].startswith("S") and r["symbol"].endswith("SUSDT")}

    def _from_contract(self, inst: Instrument, name: str, row: dict) -> Instrument:
        """The instrument with the contract's name and grid; its minimum notional and fees kept."""
        try:
            tick = Decimal(str(row["priceEndStep"])).scaleb(-int(row["pricePlace"]))
            lot, min_size = Decimal(str(row["sizeMultiplier"])), Decimal(str(row["minTradeNum"]))
            if not (tick > 0 and lot > 0 and min_size >= 0):
                raise ValueError("not > 0")
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            log.warning("Bitget contract %s: grid unreadable (%s); keeping the one given", name, exc)
            tick, lot, min_size = inst.tick, inst.lot, inst.min_size
        with contextlib.suppress(KeyError, TypeError, ArithmeticError):
            self.min_notional[inst.symbol] = Decimal(str(row["minTradeUSDT"]))
        with contextlib.suppress(KeyError, TypeError, ArithmeticError):
            self.fees[inst.symbol] = (Decimal(str(row["makerFeeRate"])), Decimal(str(row["takerFeeRate"])))
        return Instrument(venue="bitget", symbol=inst.symbol, venue_symbol=name, quote=inst.quote, tick=tick,
                          lot=lot, min_size=min_size, funding_interval_min=inst.funding_interval_min)

    # ------------------------------------------------------------------ ids and clock

    def now_ms(self) -> int:
        return self.rest.now_ms()

    async def sync_time(self) -> int:
        return await self.rest.sync_time()

    def _instrument(self, symbol: str, path: str) -> Instrument:
        inst = self.by_symbol.get(symbol)
        if inst is None:
            raise Refused("bitget", "local", f"{symbol} is not a USDT-margined perpetual of this client", "invalid",
                          path)
        return inst

    def _scope(self, **params: str) -> dict[str, str]:
        return {"productType": self.product_type, **params}

    # ------------------------------------------------------------------ orders

    async def place(self, spec: OrderSpec, on_send: Callable[[], None] | None = None) -> str:
        inst = self._instrument(spec.symbol, PLACE)
        body = order_request(spec, inst, self.client_id(spec.link_id), self.product_type, self.margin_coin,
                             self.min_notional.get(spec.symbol))
        data = await self.rest.request("POST", PLACE, body, on_send)
        order_id = data.get("orderId") if isinstance(data, dict) else None
        if not isinstance(order_id, str) or not order_id:
            raise OutcomeUnknown(f"POST {PLACE}: accepted without an orderId for {spec.link_id}")
        self._order_ids[spec.link_id] = order_id
        return order_id

    async def cancel(self, symbol: str, link_id: str) -> None:
        """Asked: Bitget's "00000" is not yet cancelled; the order's state says so later."""
        inst = self._instrument(symbol, "/api/v2/mix/order/cancel-order")
        self._cancels.add(link_id)
        await self.rest.request("POST", "/api/v2/mix/order/cancel-order",
                                self._scope(symbol=inst.venue_symbol, marginCoin=self.margin_coin,
                                            clientOid=self.client_id(link_id)))

    async def order(self, symbol: str, link_id: str) -> OrderUpdate | None:
        inst = self._instrument(symbol, "/api/v2/mix/order/detail")
        try:
            data = await self.rest.request("GET", "/api/v2/mix/order/detail",
                                           self._scope(symbol=inst.venue_symbol, clientOid=self.client_id(link_id)))
        except Refused as exc:
            if exc.kind == "not_found":
                return None
            raise
        if not isinstance(data, dict) or not data:
            return None
        try:
            found = self.rows.order(data)
        except (BadRow, ArithmeticError) as exc:
            raise OutcomeUnknown(f"GET /api/v2/mix/order/detail: a malformed order for {link_id}: {exc}") from None
        self._order_ids[link_id] = found.order_id
        return found

    async def fills(self, symbol: str, link_id: str) -> list[FillUpdate]:
        """The order's fills, oldest first; [] when Bitget has no such order."""
        inst = self._instrument(symbol, "/api/v2/mix/order/fills")
        order_id = self._order_ids.get(link_id)
        if order_id is None:
            found = await self.order(symbol, link_id)
            if found is None:
                return []
            order_id = found.order_id
        rows = await self._pages("/api/v2/mix/order/fills", self._scope(symbol=inst.venue_symbol, orderId=order_id),
                                 "fillList")
        out = []
        for row in rows:
            try:
                out.append(self.rows.fill(row if isinstance(row, dict) else {}, link_id))
            except (BadRow, ArithmeticError) as exc:
                log.warning("fills of %s: a row skipped (%s): %s", link_id, exc, row)
        return sorted(out, key=lambda f: (f.ts_ms, f.fill_id))

    async def open_orders(self) -> list[OrderUpdate]:
        rows = await self._pages("/api/v2/mix/order/orders-pending", self._scope(), "entrustedList")
        return self._read(rows, self.rows.order, "open orders")

    async def positions(self) -> list[PositionUpdate]:
        """Every position row Bitget returns, in base coin, signed (> 0 long)."""
        rows = await self.rest.request("GET", "/api/v2/mix/position/all-position",
                                       self._scope(marginCoin=self.margin_coin))
        return self._read(rows if isinstance(rows, list) else [], self.rows.position, "positions")

    async def balance(self) -> BalanceUpdate:
        rows = await self.rest.request("GET", "/api/v2/mix/account/accounts", self._scope())
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and row.get("marginCoin") == self.margin_coin:
                try:
                    return self.rows.balance(row)
                except (BadRow, ArithmeticError) as exc:
                    raise OutcomeUnknown(f"GET /api/v2/mix/account/accounts: a malformed answer: {exc}") from None
        return BalanceUpdate(currency=self.margin_coin, equity=Decimal(0), available=Decimal(0))

    async def _pages(self, path: str, params: dict, list_name: str, stop: Callable[[dict], bool] | None = None,
                     limit: int = PAGE) -> list:
        """Every row of a paged GET (`data.<list_name>`, newest first; the next page is
        `idLessThan` = the answer's `endId`), until a short page or a row `stop` says is far enough back."""
        out: list = []
        end_id = ""
        while True:
            query = {**params, "limit": str(limit), **({"idLessThan": end_id} if end_id else {})}
            data = await self.rest.request("GET", path, query)
            page = data.get(list_name) if isinstance(data, dict) else None
            page = page if isinstance(page, list) else []
            out += page
            next_id = data.get("endId") if isinstance(data, dict) else None
            last = page[-1] if page and isinstance(page[-1], dict) else {}
            if (len(page) < limit or not isinstance(next_id, str) or not next_id or next_id == end_id
                    or (stop is not None and stop(last))):
                return out
            end_id = next_id

    # ------------------------------------------------------------------ account

    async def ensure_position_mode(self, symbols: list[str]) -> None:
        """The account in hedge mode (`posMode`, per product type at Bitget), and each symbol in
        cross margin. Bitget switches neither while positions or orders are open (40920)."""
        names = [s for s in symbols if s in self.by_symbol] or list(self.by_symbol)[:1]
        if not names:
            return
        path = "/api/v2/mix/account/account"
        accounts = {}
        for symbol in names:
            data = await self.rest.request("GET", path, self._scope(symbol=self.by_symbol[symbol].venue_symbol,
                                                                    marginCoin=self.margin_coin))
            accounts[symbol] = data if isinstance(data, dict) else {}
        if accounts[names[0]].get("posMode") != "hedge_mode":
            try:
                await self.rest.request("POST", "/api/v2/mix/account/set-position-mode",
                                        self._scope(posMode="hedge_mode"))
            except Refused as exc:
                raise Refused("bitget", exc.code, f"cannot switch to hedge mode ({exc.message}); close every "
                              f"{self.product_type} position and order, or switch it in Bitget's settings",
                              exc.kind, "/api/v2/mix/account/set-position-mode") from None
            log.info("Bitget %s account switched to hedge mode", self.product_type)
        for symbol, account in accounts.items():
            if account.get("marginMode") not in (None, "crossed"):
                await self.rest.request("POST", "/api/v2/mix/account/set-margin-mode",
                                        self._scope(symbol=self.by_symbol[symbol].venue_symbol,
                                                    marginCoin=self.margin_coin, marginMode="crossed"))
                log.info("Bitget %s switched to cross margin", symbol)

    async def position_mode(self) -> tuple[bool, str]:
        """Whether the account trades in hedge mode or will be put in it at start, and what was seen:
        `posMode` of `/api/v2/mix/account/account` for the first symbol (an account switched to
        the Unified Trading Account answers V2 with 40128, UNSURE §3: it cannot trade here)."""
        symbol = next(iter(self.by_symbol), None)
        if symbol is None:
            return False, f"no {self.product_type} contract of this client to ask about"
        try:
            data = await self.rest.request("GET", "/api/v2/mix/account/account",
                                           self._scope(symbol=self.by_symbol[symbol].venue_symbol,
                                                       marginCoin=self.margin_coin))
        except Refused as exc:
            if exc.code == "40128":
                return False, f"a Unified Trading Account ({exc.message}): this client speaks the classic V2 API"
            raise
        mode = data.get("posMode") if isinstance(data, dict) else None
        if mode == "hedge_mode":
            return True, "hedge_mode, as the executor trades"
        return True, (f"{mode}: the executor switches the {self.product_type} account to hedge_mode at start "
                      "(Bitget allows it only with no position or order open)")

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        inst = self._instrument(symbol, "/api/v2/mix/account/set-leverage")
        await self.rest.request("POST", "/api/v2/mix/account/set-leverage",
                                self._scope(symbol=inst.venue_symbol, marginCoin=self.margin_coin,
                                            leverage=str(leverage)))

    async def fee_rates(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(maker, taker) as fractions: the contract's `makerFeeRate` / `takerFeeRate` (Bitget's
        base rates, positive when paid; an account's VIP rates are not read)."""
        self._instrument(symbol, "/api/v2/mix/market/contracts")
        if symbol not in self.fees:
            inst = self.by_symbol[symbol]
            rows = await self.rest.public("/api/v2/mix/market/contracts",
                                          {"productType": self.product_type, "symbol": inst.venue_symbol})
            row = next((r for r in rows if isinstance(r, dict) and r.get("symbol") == inst.venue_symbol), None) \
                if isinstance(rows, list) else None
            if row is None:
                raise OutcomeUnknown(f"GET /api/v2/mix/market/contracts: no {inst.venue_symbol}")
            self._from_contract(inst, inst.venue_symbol, row)
        if symbol not in self.fees or not all(r.is_finite() for r in self.fees[symbol]):
            raise OutcomeUnknown(f"GET /api/v2/mix/market/contracts: no fee rates for {symbol}")
        return self.fees[symbol]

    def _symbol_of(self, row: dict) -> str | None:
        inst = self.rows.by_venue_symbol.get(row.get("symbol"))
        return inst.symbol if inst else None

    async def funding_payments(self, since_ms: int) -> list[FundingUpdate]:
        """Funding bills (`businessType` contract_settle_fee) since `since_ms`, oldest first: asked
        in windows of at most 30 days (Bitget's limit), each paged back with `idLessThan`; no more
        than 90 days back, which is all Bitget keeps.

        A bill names no position side: it is taken from the one side held at that symbol now; with
        none or both held it is "Buy" (UNSURE: Bitget's bills cannot tell; the warning says so)."""
        now = self.now_ms()
        start = max(since_ms, now - BILLS_KEPT_MS + 60_000)
        rows: list = []
        while start <= now:
            end = min(start + BILL_WINDOW_MS - 1, now)
            query = self._scope(businessType="contract_settle_fee", startTime=str(start), endTime=str(end))
            rows += await self._pages("/api/v2/mix/account/bill", query, "bills")
            start = end + 1
        unique = list({r.get("billId"): r for r in rows if isinstance(r, dict)}.values())  # windows may overlap
        out = await self._with_held_sides(unique, self._symbol_of, self.rows.funding, "funding bills")
        return [f for f in out if f.ts_ms >= since_ms]

    async def key_problems(self) -> list[str]:
        """Nothing to read: the reference (§3) documents no endpoint of Bitget's classic mix API
        that shows a key's permissions or IP binding (Bitget's spot `account/info` answers
        `authorities` and `ips`, but the reference has not confirmed it), so no problem is
        claimed; check the key's permissions (no withdrawal) and IP binding in Bitget's settings."""
        return []

    def key_checked(self) -> str:
        return ("not read: Bitget shows no key's permissions to this API; see in its API settings that the key may "
                "not withdraw and is bound to this machine's IP")

    # ------------------------------------------------------------------ the private stream

    def parse_private(self, message: object) -> tuple[list[StreamUpdate], list[tuple[str, str, object]]]:
        return self.rows.message(message)

    def private_stream(self, on_message: OnMessage,
                       on_connected: Callable[[], Awaitable[None]]) -> BitgetPrivateStream:
        return BitgetPrivateStream(self.http, self.ws_url, self._key, self._secret, self._passphrase, on_message,
                                   on_connected, inst_type=self.product_type,
                                   now_s=lambda: self.now_ms() // 1000, resync=self.sync_time)
