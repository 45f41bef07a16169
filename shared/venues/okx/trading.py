"""OKX V5 swap trading (protocol-trading-okx-bitget-binance.md §2, §5): `OkxTrading`, the
trading interface (shared/venues/trading.py) at OKX, live or demo.

- Requests go through `OkxRest` (client.py: signing, the clock offset, per-endpoint budgets,
  rate-limit retries, and `CODE_KINDS`, what each OKX code means as a refusal kind).
- Sizes are base units at the interface and contracts at OKX (private.py converts exactly):
  an order is floored to the lot grid, and refused unsent below `minSz`.
- The account trades in long/short position mode, cross margin: an order names its `posSide`
  (open long = buy long, close long = sell long) and never `reduceOnly`, which OKX ignores in
  that mode (a close is the opposite side on the same posSide, reduce-only by nature).
- Client ids: a link id's letters and digits (`a1b2c3d4e5f6-LE1` -> `a1b2c3d4e5f6LE1`); the map
  back gives stream rows their link ids.
The key, secret and passphrase are never logged, shown or put in an error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

import aiohttp

from shared.instruments import Instrument
from shared.venues.okx.client import OkxRest
from shared.venues.okx.private import Rows, to_contracts
from shared.venues.okx.stream import OkxPrivateStream
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

log = logging.getLogger("arb.okx")
BILLS_DAYS = 6.9  # /account/bills answers the last 7 days; older asks /account/bills-archive


def client_id(link_id: str) -> str:
    """OKX's clOrdId for a link id: its letters and digits (1-32 alphanumerics, §2.4)."""
    return alnum_client_id(link_id, "OKX")


def order_request(spec: OrderSpec, inst: Instrument, cl_ord_id: str) -> dict[str, str]:
    """The body of POST /api/v5/trade/order; Refused, unsent, for what OKX could not take."""
    def refuse(kind: Kind, why: str) -> Refused:
        return Refused("okx", "local", f"{spec.link_id}: {why}", kind, "/api/v5/trade/order")

    if spec.side not in ("Buy", "Sell"):
        raise refuse("invalid", f"side {spec.side!r}")
    opening = "long" if spec.side == "Buy" else "short"
    pos_side = spec.position_side or (("short" if opening == "long" else "long") if spec.reduce_only else opening)
    if spec.reduce_only and pos_side == opening:
        raise refuse("invalid", f"a reduce-only {spec.side} would open {pos_side}, not close it")
    if not spec.qty.is_finite() or spec.qty <= 0:
        raise refuse("invalid", f"quantity {spec.qty}")
    contracts = to_contracts(spec.qty, inst.contract_size, inst.lot or Decimal(1))
    minimum = inst.min_size or inst.lot or Decimal(1)
    if contracts < minimum or contracts <= 0:
        raise refuse("below_minimum", f"{spec.qty} {inst.symbol} is {contracts} contracts of {inst.contract_size}, "
                                      f"under the minimum of {minimum}")
    body = {"instId": inst.venue_symbol, "tdMode": "cross", "side": spec.side.lower(), "posSide": pos_side,
            "ordType": "market", "sz": format(contracts, "f"), "clOrdId": cl_ord_id}
    if spec.price is None:
        if spec.tif == "post_only":
            raise refuse("invalid", "a post-only order needs a price")
        return body
    if not spec.price.is_finite() or spec.price <= 0:
        raise refuse("invalid", f"price {spec.price}")
    order_types = {"GTC": "limit", "IOC": "ioc", "FOK": "fok", "post_only": "post_only"}
    if spec.tif not in order_types:
        raise refuse("invalid", f"time in force {spec.tif!r}")
    return {**body, "ordType": order_types[spec.tif], "px": format(spec.price, "f")}


class OkxTrading(AlnumClientIds, VenueTrading):
    venue = "okx"
    order_rate = (60, 2.0)  # place-order per instId (§2.3)
    ids_reusable = True  # clOrdId is unique only among pending orders (§2.4)

    def __init__(self, http: aiohttp.ClientSession, rest_url: str, ws_url: str, api_key: str, api_secret: str,
                 passphrase: str, instruments: list[Instrument], demo: bool = False, budget: Budget | None = None,
                 clock: Callable[[], float] = time.time, timeout_s: float = 5.0) -> None:
        self.http, self.ws_url, self.demo = http, ws_url, demo
        self.rest = OkxRest(http, rest_url, api_key, api_secret, passphrase, demo, budget, clock, timeout_s)
        self._key, self._secret, self._passphrase = api_key, api_secret, passphrase
        self.by_symbol = {i.symbol: i for i in instruments if i.venue == "okx" and not i.inverse}
        self._links: dict[str, str] = {}  # clOrdId -> link id
        self._order_ids: dict[str, str] = {}  # link id -> ordId
        self.rows = Rows({i.venue_symbol: i for i in self.by_symbol.values()}, self.link_id)

    def __repr__(self) -> str:  # never the key, secret or passphrase
        return f"OkxTrading({self.rest.rest_url}, demo={self.demo})"

    @classmethod
    def for_account(cls, http, rest_url: str, ws_url: str, credentials: tuple[str, ...], instruments: list,
                    demo: bool, **options) -> OkxTrading:
        key, secret, passphrase = credentials
        return cls(http, rest_url, ws_url, key, secret, passphrase, instruments, demo=demo)

    # ------------------------------------------------------------------ ids and clock

    def now_ms(self) -> int:
        return self.rest.now_ms()

    async def sync_time(self) -> int:
        return await self.rest.sync_time()

    def _instrument(self, symbol: str, path: str) -> Instrument:
        inst = self.by_symbol.get(symbol)
        if inst is None:
            raise Refused("okx", "local", f"{symbol} is not a linear swap of this client", "invalid", path)
        return inst

    # ------------------------------------------------------------------ orders

    async def place(self, spec: OrderSpec, on_send: Callable[[], None] | None = None) -> str:
        inst = self._instrument(spec.symbol, "/api/v5/trade/order")
        body = order_request(spec, inst, self.client_id(spec.link_id))
        data = await self.rest.request("POST", "/api/v5/trade/order", body, inst.venue_symbol, on_send)
        order_id = data[0].get("ordId") if data and isinstance(data[0], dict) else None
        if not isinstance(order_id, str) or not order_id:
            raise OutcomeUnknown(f"POST /api/v5/trade/order: accepted without an ordId for {spec.link_id}")
        self._order_ids[spec.link_id] = order_id
        return order_id

    async def cancel(self, symbol: str, link_id: str) -> None:
        """Asked: OKX's "0" is not yet cancelled; the order's state says so later (§2.4)."""
        inst = self._instrument(symbol, "/api/v5/trade/cancel-order")
        await self.rest.request("POST", "/api/v5/trade/cancel-order",
                                {"instId": inst.venue_symbol, "clOrdId": self.client_id(link_id)}, inst.venue_symbol)

    async def order(self, symbol: str, link_id: str) -> OrderUpdate | None:
        inst = self._instrument(symbol, "/api/v5/trade/order")
        try:
            data = await self.rest.request("GET", "/api/v5/trade/order",
                                           {"instId": inst.venue_symbol, "clOrdId": self.client_id(link_id)},
                                           inst.venue_symbol)
        except Refused as exc:
            if exc.kind == "not_found":
                return None
            raise
        if not data:
            return None
        try:
            found = self.rows.order(data[0] if isinstance(data[0], dict) else {})
        except (BadRow, ArithmeticError) as exc:
            raise OutcomeUnknown(f"GET /api/v5/trade/order: a malformed order for {link_id}: {exc}") from None
        self._order_ids[link_id] = found.order_id
        return found

    async def fills(self, symbol: str, link_id: str) -> list[FillUpdate]:
        """The order's fills (OKX keeps 3 days here), oldest first; [] when OKX has no such order."""
        inst = self._instrument(symbol, "/api/v5/trade/fills")
        order_id = self._order_ids.get(link_id)
        if order_id is None:
            found = await self.order(symbol, link_id)
            if found is None:
                return []
            order_id = found.order_id
        query = {"instType": "SWAP", "instId": inst.venue_symbol, "ordId": order_id}
        rows = await self.rest.pages("/api/v5/trade/fills", query, "billId")
        out = []
        for row in rows:
            try:
                out.append(self.rows.fill(row, link_id))
            except (BadRow, ArithmeticError) as exc:
                log.warning("fills of %s: a row skipped (%s): %s", link_id, exc, row)
        return sorted(out, key=lambda f: (f.ts_ms, f.fill_id))

    async def open_orders(self) -> list[OrderUpdate]:
        rows = await self.rest.pages("/api/v5/trade/orders-pending", {"instType": "SWAP"}, "ordId")
        return self._read(rows, self.rows.order, "open orders")

    async def positions(self) -> list[PositionUpdate]:
        """Every swap position row OKX returns (a side at 0 included), in base units, signed."""
        rows = await self.rest.request("GET", "/api/v5/account/positions", {"instType": "SWAP"})
        return self._read(rows, self.rows.position, "positions")

    async def balance(self) -> BalanceUpdate:
        data = await self.rest.request("GET", "/api/v5/account/balance", {"ccy": "USDT"})
        try:
            found = self.rows.balance(data[0].get("details") if data and isinstance(data[0], dict) else [])
        except (BadRow, ArithmeticError) as exc:
            raise OutcomeUnknown(f"GET /api/v5/account/balance: a malformed answer: {exc}") from None
        return found or BalanceUpdate(currency="USDT", equity=Decimal(0), available=Decimal(0))

    # ------------------------------------------------------------------ account

    async def _config(self) -> dict:
        data = await self.rest.request("GET", "/api/v5/account/config", {})
        return data[0] if data and isinstance(data[0], dict) else {}

    async def ensure_position_mode(self, symbols: list[str]) -> None:
        """The account in long/short position mode (account-wide at OKX: `symbols` are not needed)."""
        config = await self._config()
        if config.get("posMode") == "long_short_mode":
            return
        path = "/api/v5/account/set-position-mode"
        level = str(config.get("acctLv", ""))
        if level in ("1", "4"):
            mode = "spot mode: no swaps" if level == "1" else "portfolio margin: net mode only"
            raise Refused("okx", "local", f"the account cannot trade in long/short mode (acctLv {level}, {mode}); "
                          "switch the account mode to futures or multi-currency margin in OKX's settings",
                          "invalid", path)
        try:
            await self.rest.request("POST", path, {"posMode": "long_short_mode"})
        except Refused as exc:
            raise Refused("okx", exc.code, f"cannot switch to long/short position mode ({exc.message}); close every "
                          "swap position and order, or switch it in OKX's settings", exc.kind, path) from None
        log.info("OKX account switched to long/short position mode")

    async def position_mode(self) -> tuple[bool, str]:
        config = await self._config()
        mode, level = config.get("posMode"), str(config.get("acctLv", ""))
        if mode == "long_short_mode":
            return True, "long/short mode, as the executor trades"
        if level in ("2", "3"):
            return True, (f"{mode}: the executor switches the account to long/short mode at start (OKX allows it "
                          "only with no swap position or order open)")
        return False, (f"{mode} at account level {level}: long/short mode needs the futures or multi-currency "
                       "account mode (set it in OKX's settings)")

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        inst = self._instrument(symbol, "/api/v5/account/set-leverage")
        await self.rest.request("POST", "/api/v5/account/set-leverage",
                                {"instId": inst.venue_symbol, "lever": str(leverage), "mgnMode": "cross"})

    async def fee_rates(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(maker, taker) paid, as fractions (OKX's rates are negative when paid; USDT-margined
        swaps' are `makerU`/`takerU`, `maker`/`taker` being the coin-margined ones)."""
        inst = self._instrument(symbol, "/api/v5/account/trade-fee")
        family = inst.venue_symbol.removesuffix("-SWAP")
        data = await self.rest.request("GET", "/api/v5/account/trade-fee", {"instType": "SWAP", "instFamily": family})
        row = data[0] if data and isinstance(data[0], dict) else {}
        try:
            rates = [Decimal(row.get(u) or row[plain]) for u, plain in (("makerU", "maker"), ("takerU", "taker"))]
        except (KeyError, TypeError, ArithmeticError):
            raise OutcomeUnknown(f"GET /api/v5/account/trade-fee: no fee rates in {row}") from None
        if not all(r.is_finite() for r in rates):
            raise OutcomeUnknown(f"GET /api/v5/account/trade-fee: fee rates {rates}")
        return -rates[0], -rates[1]

    async def funding_payments(self, since_ms: int) -> list[FundingUpdate]:
        """Funding bills (type 8: subType 173 paid, 174 received) since `since_ms`, oldest first:
        `/account/bills` holds 7 days, `/account/bills-archive` 3 months (asked for older).

        A bill names no position side: it is taken from the bill's `posSide` where there is one,
        else from the one side held at that instrument now; with none or both held it is "Buy"
        (UNSURE: OKX's bills cannot tell; the warning says so)."""
        def older(row: dict) -> bool:
            ts = row.get("ts")
            return isinstance(ts, str) and ts.isdigit() and int(ts) < since_ms

        query = {"instType": "SWAP", "type": "8", "begin": str(since_ms)}
        recent = self.now_ms() - since_ms < BILLS_DAYS * 86_400_000
        path = "/api/v5/account/bills" if recent else "/api/v5/account/bills-archive"
        rows = [r for r in await self.rest.pages(path, query, "billId", stop=older)
                if isinstance(r, dict) and not older(r)]
        named = [r for r in rows if r.get("posSide") in ("long", "short")]
        out = self._read(named, lambda r: self.rows.funding(r, "Buy" if r["posSide"] == "long" else "Sell"),
                         "funding bills")

        def symbol_of(row: dict) -> str | None:
            inst = self.rows.by_inst_id.get(row.get("instId"))
            return inst.symbol if inst else None

        unnamed = [r for r in rows if r.get("posSide") not in ("long", "short")]
        out += await self._with_held_sides(unnamed, symbol_of, self.rows.funding, "funding bills")
        return sorted(out, key=lambda f: (f.ts_ms, f.funding_id))

    async def key_problems(self) -> list[str]:
        """What makes the key unsafe or unfit to trade with (`/api/v5/account/config`): a permission
        to withdraw, none to trade, or no IP binding (`ip` empty)."""
        config = await self._config()
        problems = []
        perms = [p.strip() for p in str(config.get("perm", "")).split(",") if p.strip()]
        if "withdraw" in perms:
            problems.append(f"it may withdraw funds (perm: {', '.join(perms)})")
        if "trade" not in perms:
            problems.append(f"it may not trade (perm: {', '.join(perms) or 'none'})")
        if not str(config.get("ip", "")).strip():
            problems.append("it is bound to no IP address (ip is empty)")
        return problems

    # ------------------------------------------------------------------ the private stream

    def parse_private(self, message: object) -> tuple[list[StreamUpdate], list[tuple[str, str, object]]]:
        return self.rows.message(message)

    def private_stream(self, on_message: OnMessage, on_connected: Callable[[], Awaitable[None]]) -> OkxPrivateStream:
        return OkxPrivateStream(self.http, self.ws_url, self._key, self._secret, self._passphrase, on_message,
                                on_connected, now_s=lambda: self.now_ms() // 1000, resync=self.sync_time)
