"""Binance USD-M futures trading (protocol-trading-okx-bitget-binance.md §4, §5): `BinanceTrading`,
the trading interface (shared/venues/trading.py) at Binance, live or demo.

- Requests go through `BinanceRest` (client.py: signing, the clock offset, the weight and
  order-count limits read from every answer, rate-limit retries, and `CODE_KINDS`).
- Sizes are base coin at both ends: an order is floored to `stepSize` and refused unsent
  (kind below_minimum, code "local") under `minQty`, or, for an order that opens, under the
  symbol's MIN_NOTIONAL at its limit price (`prepare` loads them). A market order has no price
  here, so its notional is not checked locally: Binance's -4164 says so. A close is never
  refused locally for its notional (Binance exempts reduce-only orders). A price off `tickSize`
  is refused unsent (kind invalid).
- The account trades in hedge mode (`dualSidePosition=true`): an order names its `positionSide`
  (open long = BUY LONG, close long = SELL LONG, open short = SELL SHORT, close short = BUY
  SHORT) and never `reduceOnly`, which Binance refuses in that mode.
- Post-only is `timeInForce=GTX`; one that would take is refused at once (-5022, kind post_only).
- Client ids: `newClientOrderId` is the link id itself (`^[\\.A-Z\\:/a-z0-9_-]{1,36}$` takes the
  executor's `a1b2c3d4e5f6-LE1`). Binance keeps it unique among *open* orders only (-4116), so
  an id is free again once its order is finished: `ids_reusable` is True, and an order whose
  create had no answer and that Binance does not have yet is not sent again.
- Funding comes from the income ledger (`GET /fapi/v1/income?incomeType=FUNDING_FEE`): the
  stream's FUNDING_FEE update carries no ledger id, and for cross positions no position.
The key and secret are never logged, shown or put in an error.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

import aiohttp

from shared.instruments import Instrument
from shared.venues.binance.client import NO_CHANGE, BinanceRest
from shared.venues.binance.private import Rows, on_grid, to_quantity
from shared.venues.binance.stream import KEEPALIVE_S, BinancePrivateStream
from shared.venues.trading import (
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
)

log = logging.getLogger("arb.binance")
CLIENT_ID = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")
INCOME_PAGE = 1000
POSITION_SIDES = {"long": "LONG", "short": "SHORT"}
TIME_IN_FORCE = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK", "post_only": "GTX"}


def client_id(link_id: str) -> str:
    """Binance's newClientOrderId for a link id: the link id itself, if Binance takes it."""
    if not isinstance(link_id, str) or not CLIENT_ID.fullmatch(link_id):
        raise ValueError(f"link id {link_id!r} is no Binance client id (1-36 of A-Z a-z 0-9 . : / _ -)")
    return link_id


def order_request(spec: OrderSpec, inst: Instrument, new_client_order_id: str,
                  min_notional: Decimal | None = None) -> dict[str, str]:
    """The parameters of POST /fapi/v1/order in hedge mode; Refused, unsent, for what Binance
    could not take."""
    def refuse(kind: Kind, why: str) -> Refused:
        return Refused("binance", "local", f"{spec.link_id}: {why}", kind, "/fapi/v1/order")

    if spec.side not in ("Buy", "Sell"):
        raise refuse("invalid", f"side {spec.side!r}")
    opening = "long" if spec.side == "Buy" else "short"
    pos_side = spec.position_side or (("short" if opening == "long" else "long") if spec.reduce_only else opening)
    if pos_side not in POSITION_SIDES:
        raise refuse("invalid", f"position side {pos_side!r}")
    if spec.reduce_only and pos_side == opening:
        raise refuse("invalid", f"a reduce-only {spec.side} would open {pos_side}, not close it")
    if not spec.qty.is_finite() or spec.qty <= 0:
        raise refuse("invalid", f"quantity {spec.qty}")
    step = inst.lot or Decimal(1)
    quantity = to_quantity(spec.qty, step)
    minimum = inst.min_size or step
    if quantity < minimum or quantity <= 0:
        raise refuse("below_minimum", f"{spec.qty} {inst.symbol} is {quantity} on the step of {step}, under the "
                                      f"minimum quantity {minimum}")
    params = {"symbol": inst.venue_symbol, "side": spec.side.upper(), "positionSide": POSITION_SIDES[pos_side],
              "type": "MARKET", "quantity": format(quantity, "f"), "newClientOrderId": new_client_order_id}
    if spec.price is None:
        if spec.tif == "post_only":
            raise refuse("invalid", "a post-only order needs a price")
        return params
    if not spec.price.is_finite() or spec.price <= 0:
        raise refuse("invalid", f"price {spec.price}")
    if inst.tick and not on_grid(spec.price, inst.tick):
        raise refuse("invalid", f"price {spec.price} is not on the tick of {inst.tick}")
    if spec.tif not in TIME_IN_FORCE:
        raise refuse("invalid", f"time in force {spec.tif!r}")
    if min_notional and pos_side == opening and quantity * spec.price < min_notional:
        raise refuse("below_minimum", f"{quantity} {inst.symbol} at {spec.price} is worth {quantity * spec.price}, "
                                      f"under Binance's minimum notional of {min_notional}")
    return {**params, "type": "LIMIT", "timeInForce": TIME_IN_FORCE[spec.tif], "price": format(spec.price, "f")}


def min_notionals(exchange_info: object) -> dict[str, Decimal]:
    """Each symbol's MIN_NOTIONAL `notional` in an exchangeInfo answer, by Binance's symbol."""
    out: dict[str, Decimal] = {}
    symbols = exchange_info.get("symbols") if isinstance(exchange_info, dict) else None
    for row in symbols if isinstance(symbols, list) else []:
        filters = row.get("filters") if isinstance(row, dict) else None
        for f in filters if isinstance(filters, list) else []:
            if isinstance(f, dict) and f.get("filterType") == "MIN_NOTIONAL":
                try:
                    value = Decimal(str(f.get("notional")))
                except ArithmeticError:
                    continue
                if value.is_finite() and value > 0 and isinstance(row.get("symbol"), str):
                    out[row["symbol"]] = value
    return out


class BinanceTrading(VenueTrading):
    venue = "binance"
    order_rate = (300, 10.0)  # orders per 10 s per account (§4.2)
    ids_reusable = True  # newClientOrderId is unique among open orders only (§4.3)
    funding_on_stream = False  # the income ledger is read (module docstring)

    def __init__(self, http: aiohttp.ClientSession, rest_url: str, ws_url: str, api_key: str, api_secret: str,
                 instruments: list[Instrument], demo: bool = False, budget: Budget | None = None,
                 clock: Callable[[], float] = time.time, timeout_s: float = 5.0, recv_window_ms: int = 5000,
                 spot_url: str = "", keepalive_s: float = KEEPALIVE_S) -> None:
        """`rest_url` e.g. https://fapi.binance.com, `ws_url` the WebSocket base (wss://fstream.binance.com;
        the client adds /private/ws?listenKey=...). `spot_url` is where key_problems reads the key's
        restrictions ("" not at all); `budget` the order creates' 10-second budget."""
        self.http, self.ws_url, self.demo = http, ws_url, demo
        self.rest = BinanceRest(http, rest_url, api_key, api_secret, budget, clock, timeout_s, recv_window_ms)
        self.spot_url = spot_url.rstrip("/")
        self.keepalive_s = keepalive_s
        self.by_symbol = {i.symbol: i for i in instruments if i.venue == "binance" and not i.inverse}
        self.min_notional: dict[str, Decimal] = {}  # canonical symbol -> MIN_NOTIONAL (prepare)
        self._order_ids: dict[str, str] = {}  # link id -> orderId
        self.rows = Rows({i.venue_symbol: i for i in self.by_symbol.values()}, self.link_id)

    @classmethod
    def for_account(cls, http: aiohttp.ClientSession, rest_url: str, ws_url: str, credentials: tuple[str, ...],
                    instruments: list[Instrument], demo: bool, **options) -> BinanceTrading:
        """The client of one account: `credentials` are (API key, secret)."""
        if len(credentials) != 2:
            raise ValueError(f"Binance takes an API key and a secret, not {len(credentials)} credentials")
        return cls(http, rest_url, ws_url, credentials[0], credentials[1], instruments, demo=demo, **options)

    def __repr__(self) -> str:  # never the key or secret
        return f"BinanceTrading({self.rest.rest_url}, demo={self.demo})"

    # ------------------------------------------------------------------ ids, clock, setup

    def client_id(self, link_id: str) -> str:
        return client_id(link_id)

    @staticmethod
    def link_id(new_client_order_id: str) -> str:
        """The link id of a client order id: the same text (liquidations' `autoclose-...` stay as they are)."""
        return new_client_order_id

    def now_ms(self) -> int:
        return self.rest.now_ms()

    async def sync_time(self) -> int:
        return await self.rest.sync_time()

    async def prepare(self) -> None:
        """Load each symbol's MIN_NOTIONAL from /fapi/v1/exchangeInfo (the instruments list has none);
        a symbol without one is checked by Binance alone (-4164)."""
        info = await self.rest.request("GET", "/fapi/v1/exchangeInfo", signed=False)
        by_venue = min_notionals(info)
        self.min_notional = {s: by_venue[i.venue_symbol] for s, i in self.by_symbol.items()
                             if i.venue_symbol in by_venue}
        if missing := sorted(set(self.by_symbol) - set(self.min_notional)):
            log.info("Binance lists no MIN_NOTIONAL for %s: their notional is left to Binance", ", ".join(missing))

    def _instrument(self, symbol: str, path: str) -> Instrument:
        inst = self.by_symbol.get(symbol)
        if inst is None:
            raise Refused("binance", "local", f"{symbol} is not a USDT perpetual of this client", "invalid", path)
        return inst

    # ------------------------------------------------------------------ orders

    async def place(self, spec: OrderSpec, on_send: Callable[[], None] | None = None) -> str:
        inst = self._instrument(spec.symbol, "/fapi/v1/order")
        params = order_request(spec, inst, self.client_id(spec.link_id), self.min_notional.get(spec.symbol))
        answer = await self.rest.request("POST", "/fapi/v1/order", params, on_send=on_send)
        order_id = answer.get("orderId") if isinstance(answer, dict) else None
        if isinstance(order_id, bool) or not isinstance(order_id, int | str) or order_id == "":
            raise OutcomeUnknown(f"POST /fapi/v1/order: accepted without an orderId for {spec.link_id}")
        self._order_ids[spec.link_id] = str(order_id)
        return str(order_id)

    async def cancel(self, symbol: str, link_id: str) -> None:
        """Cancelled (Binance answers the order as CANCELED); -2011 (unknown, filled or cancelled
        already) is kind too_late: the executor looks the order up."""
        inst = self._instrument(symbol, "/fapi/v1/order")
        await self.rest.request("DELETE", "/fapi/v1/order",
                                {"symbol": inst.venue_symbol, "origClientOrderId": self.client_id(link_id)})

    async def order(self, symbol: str, link_id: str) -> OrderUpdate | None:
        """The order, or None when Binance has none (-2013; it forgets unfilled cancelled orders
        after 3 days, any order after 90)."""
        inst = self._instrument(symbol, "/fapi/v1/order")
        try:
            row = await self.rest.request("GET", "/fapi/v1/order",
                                          {"symbol": inst.venue_symbol, "origClientOrderId": self.client_id(link_id)})
        except Refused as exc:
            if exc.kind == "not_found":
                return None
            raise
        try:
            found = self.rows.order(row if isinstance(row, dict) else {})
        except (BadRow, ArithmeticError) as exc:
            raise OutcomeUnknown(f"GET /fapi/v1/order: a malformed order for {link_id}: {exc}") from None
        self._order_ids[link_id] = found.order_id
        return found

    async def fills(self, symbol: str, link_id: str) -> list[FillUpdate]:
        """The order's trades (userTrades by orderId), oldest first; [] when Binance has no such order."""
        inst = self._instrument(symbol, "/fapi/v1/userTrades")
        order_id = self._order_ids.get(link_id)
        if order_id is None:
            found = await self.order(symbol, link_id)
            if found is None:
                return []
            order_id = found.order_id
        rows = await self.rest.request("GET", "/fapi/v1/userTrades",
                                       {"symbol": inst.venue_symbol, "orderId": order_id, "limit": "1000"})
        out = self._read(rows, lambda row: self.rows.fill(row, link_id), f"fills of {link_id}")
        return sorted(out, key=lambda f: (f.ts_ms, f.fill_id))

    async def open_orders(self) -> list[OrderUpdate]:
        rows = await self.rest.request("GET", "/fapi/v1/openOrders")
        return [o for o in self._read(rows, self.rows.order, "open orders") if o.symbol in self.by_symbol]

    async def positions(self) -> list[PositionUpdate]:
        """Every position row Binance returns (those of symbols with a position or open orders; a side
        at 0 included), in base units, signed, with its hedge side."""
        rows = await self.rest.request("GET", "/fapi/v3/positionRisk")
        return self._read(rows, self.rows.position, "positions")

    async def balance(self) -> BalanceUpdate:
        rows = await self.rest.request("GET", "/fapi/v3/balance")
        try:
            found = self.rows.balance(rows)
        except (BadRow, ArithmeticError) as exc:
            raise OutcomeUnknown(f"GET /fapi/v3/balance: a malformed answer: {exc}") from None
        return found or BalanceUpdate(currency="USDT", equity=Decimal(0), available=Decimal(0))

    # ------------------------------------------------------------------ account

    async def position_mode(self) -> tuple[bool, str]:
        mode = await self.rest.request("GET", "/fapi/v1/positionSide/dual")
        if isinstance(mode, dict) and mode.get("dualSidePosition") in (True, "true"):
            return True, "hedge mode (dualSidePosition), as the executor trades"
        return True, ("one-way mode: the executor switches the account to hedge mode at start (Binance allows it "
                      "only with no open order or position in any USD-M symbol)")

    async def ensure_position_mode(self, symbols: list[str]) -> None:
        """The account in hedge mode (`dualSidePosition`, account-wide: `symbols` are not needed)."""
        path = "/fapi/v1/positionSide/dual"
        mode = await self.rest.request("GET", path)
        if isinstance(mode, dict) and mode.get("dualSidePosition") in (True, "true"):
            return
        try:
            await self.rest.request("POST", path, {"dualSidePosition": "true"})
        except Refused as exc:
            if exc.code.lstrip("-").isdigit() and int(exc.code) in NO_CHANGE:
                return
            what = {"-4067": "an open order", "-4068": "a position"}.get(exc.code, "")
            hint = (f"the account has {what} in some USD-M symbol: cancel every open order and close every "
                    "position, then start again (or switch to hedge mode in Binance's futures preferences)"
                    if what else "switch to hedge mode in Binance's futures preferences")
            raise Refused("binance", exc.code, f"cannot switch to hedge mode ({exc.message}); {hint}", exc.kind,
                          path) from None
        log.info("Binance account switched to hedge mode (dualSidePosition)")

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        inst = self._instrument(symbol, "/fapi/v1/leverage")
        await self.rest.request("POST", "/fapi/v1/leverage", {"symbol": inst.venue_symbol, "leverage": str(leverage)})

    async def fee_rates(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(maker, taker) as fractions (GET /fapi/v1/commissionRate)."""
        inst = self._instrument(symbol, "/fapi/v1/commissionRate")
        row = await self.rest.request("GET", "/fapi/v1/commissionRate", {"symbol": inst.venue_symbol})
        try:
            rates = (Decimal(str(row["makerCommissionRate"])), Decimal(str(row["takerCommissionRate"])))
        except (KeyError, TypeError, ArithmeticError):
            raise OutcomeUnknown(f"GET /fapi/v1/commissionRate: no fee rates in {row}") from None
        if not all(r.is_finite() for r in rates):
            raise OutcomeUnknown(f"GET /fapi/v1/commissionRate: fee rates {rates}")
        return rates

    def _symbol_of(self, row: dict) -> str | None:
        inst = self.rows.by_venue_symbol.get(row.get("symbol"))
        return inst.symbol if inst else None

    async def funding_payments(self, since_ms: int) -> list[FundingUpdate]:
        """FUNDING_FEE entries of the income ledger since `since_ms`, oldest first, in pages of 1000
        by time (Binance keeps 3 months).

        An entry names no position side: it is taken from the one side held at that symbol now;
        with none or both held it is "Buy" (UNSURE: the ledger cannot tell; the warning says so)."""
        rows: dict[str, dict] = {}  # tranId -> row: a page starts at the last one's time, so rows repeat
        start = since_ms
        while True:
            page = await self.rest.request("GET", "/fapi/v1/income", {"incomeType": "FUNDING_FEE",
                                                                      "startTime": str(start),
                                                                      "limit": str(INCOME_PAGE)})
            page = [r for r in page if isinstance(r, dict)] if isinstance(page, list) else []
            new = 0
            for row in page:
                key = str(row.get("tranId"))
                if key not in rows:
                    rows[key] = row
                    new += 1
            last = max((r.get("time") for r in page if isinstance(r.get("time"), int)), default=start)
            if len(page) < INCOME_PAGE or not new:
                break
            start = last if last > start else start + 1  # a full page at one ms moves on past it
        recent = [r for r in rows.values() if isinstance(r.get("time"), int) and r["time"] >= since_ms]
        return await self._with_held_sides(recent, self._symbol_of, self.rows.funding, "income ledger")

    async def key_problems(self) -> list[str]:
        """What makes the key unsafe to trade with: it may withdraw (`enableWithdrawals`) or is bound
        to no IP (`ipRestrict` false), as GET /sapi/v1/account/apiRestrictions on the spot host
        (`spot_url`) says; and fees paid in BNB (`GET /fapi/v1/feeBurn`), which the fills would
        show in BNB, not USDT. Without `spot_url` (the demo has no spot host of its own) the key's
        restrictions are not read."""
        problems = []
        if self.spot_url:
            restrictions = await self.rest.request("GET", "/sapi/v1/account/apiRestrictions", base=self.spot_url)
            restrictions = restrictions if isinstance(restrictions, dict) else {}
            if restrictions.get("enableWithdrawals") is not False:
                problems.append("it may withdraw funds (enableWithdrawals)")
            if restrictions.get("ipRestrict") is not True:
                problems.append("it is bound to no IP address (ipRestrict is false)")
        burn = await self.rest.request("GET", "/fapi/v1/feeBurn")
        if isinstance(burn, dict) and burn.get("feeBurn") in (True, "true"):
            problems.append("it pays futures fees in BNB (feeBurn on): fills would show fees in BNB, not USDT")
        return problems

    def key_checked(self) -> str:
        if self.spot_url:
            return "it may not withdraw, is bound to an IP, and pays fees in USDT"
        return ("fees paid in USDT; its withdrawal and IP settings not read (no spot host: BINANCE_SPOT_URL), see "
                "them in Binance's API management")

    # ------------------------------------------------------------------ the private stream

    def parse_private(self, message: object) -> tuple[list[StreamUpdate], list[tuple[str, str, object]]]:
        return self.rows.message(message)

    def private_stream(self, on_message: OnMessage,
                       on_connected: Callable[[], Awaitable[None]]) -> BinancePrivateStream:
        return BinancePrivateStream(self.http, self.ws_url, self.rest, on_message, on_connected,
                                    keepalive_s=self.keepalive_s)
