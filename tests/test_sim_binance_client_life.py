"""A client written from Binance USD-M's docs (raw aiohttp, the documented HMAC-SHA256 query
signing, not shared/venues/binance) against the simulator, only the base URL changed: start-up
(time, exchangeInfo, bookTicker, position mode, leverage, commission, v3/account, v3/balance,
positionRisk, listenKey and the user-data stream), an order's life (rest, modify the quantity
down, modify the price across the book so it fills half under the partial-fill fault, cancel
the rest), the position, balance, trades, allOrders and the income ledger after closing, and
the refusals of PUT /fapi/v1/order (unknown -2013, unchanged -5027).

Doc sources: developers.binance.com/docs/derivatives/usds-margined-futures/ trade/rest-api/
Modify-Order (PUT /fapi/v1/order: quantity and price both required; weight 1 on the order
counts, 0 on the IP), trade/rest-api/All-Orders, account/rest-api/Account-Information-V3,
user-data-streams/Event-Order-Update (execution type AMENDMENT); error codes -2013 and -5027
"No need to modify the order."
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from decimal import Decimal
from urllib.parse import urlencode

import aiohttp

from services.sim.server import SimServer
from tests.conftest import serve_app, shape

KEY, SECRET = "life-key", "life-secret"
T0 = 1_800_000_000_000

# Account Information V3's example (single-asset mode), types as the docs print them
DOC_ACCOUNT = {
    "totalInitialMargin": "0.00000000", "totalMaintMargin": "0.00000000", "totalWalletBalance": "103.12345678",
    "totalUnrealizedProfit": "0.00000000", "totalMarginBalance": "103.12345678",
    "totalPositionInitialMargin": "0.00000000", "totalOpenOrderInitialMargin": "0.00000000",
    "totalCrossWalletBalance": "103.12345678", "totalCrossUnPnl": "0.00000000", "availableBalance": "103.12345678",
    "maxWithdrawAmount": "103.12345678",
    "assets": [{"asset": "USDT", "walletBalance": "23.72469206", "unrealizedProfit": "0.00000000",
                "marginBalance": "23.72469206", "maintMargin": "0.00000000", "initialMargin": "0.00000000",
                "positionInitialMargin": "0.00000000", "openOrderInitialMargin": "0.00000000",
                "crossWalletBalance": "23.72469206", "crossUnPnl": "0.00000000", "availableBalance": "23.72469206",
                "maxWithdrawAmount": "23.72469206", "updateTime": 1625474304765}],
    "positions": [{"symbol": "BTCUSDT", "positionSide": "BOTH", "positionAmt": "1.000", "unrealizedProfit": "0.00000000",
                   "isolatedMargin": "0.00000000", "notional": "0", "isolatedWallet": "0",
                   "initialMargin": "0", "maintMargin": "0", "updateTime": 0}],
}
# Modify Order's response example (the order object)
DOC_MODIFIED = {"orderId": 20072994037, "symbol": "BTCUSDT", "status": "NEW", "clientOrderId": "LJ9R4QZDihCaS8UAOOLpgW",
                "price": "30005", "avgPrice": "0.0", "origQty": "1", "executedQty": "0", "cumQty": "0",
                "cumQuote": "0", "timeInForce": "GTC", "type": "LIMIT", "reduceOnly": False, "closePosition": False,
                "side": "BUY", "positionSide": "LONG", "stopPrice": "0", "workingType": "CONTRACT_PRICE",
                "priceProtect": False, "origType": "LIMIT", "priceMatch": "NONE", "selfTradePreventionMode": "NONE",
                "goodTillDate": 0, "updateTime": 1629182711600}


class Client:
    """Binance's docs, followed: SIGNED endpoints take timestamp and signature (HMAC-SHA256 of the
    query string, hex) in the query, the key in X-MBX-APIKEY."""

    def __init__(self, http: aiohttp.ClientSession, base: str, clock) -> None:
        self.http, self.base, self.clock = http, base, clock

    async def public(self, path: str, **params) -> object:
        async with self.http.get(self.base + path, params=params) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def signed(self, method: str, path: str, **params) -> tuple[int, object]:
        query = urlencode({**params, "timestamp": int(self.clock() * 1000), "recvWindow": 5000})
        query += "&signature=" + hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
        async with self.http.request(method, f"{self.base}{path}?{query}",
                                     headers={"X-MBX-APIKEY": KEY}) as response:
            return response.status, await response.json()

    async def ok(self, method: str, path: str, **params) -> object:
        status, body = await self.signed(method, path, **params)
        assert status == 200, body
        return body


def text(value: Decimal) -> str:
    return format(value.normalize(), "f")


async def events(frames: list[dict], what, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while not (found := [f for f in frames if what(f)]):
        assert time.monotonic() < deadline, f"not heard; heard {frames}"
        await asyncio.sleep(0.02)
    return found


def simulated():
    now = [T0 / 1000]
    server = SimServer(["BTCUSDT", "ETHUSDT"], seed=5, step_ms=10_000_000, clock=lambda: now[0],
                       api_keys={KEY: SECRET})
    return server, now


async def test_an_order_lives_from_start_up_to_the_income_ledger():
    server, now = simulated()
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        client = Client(http, base, lambda: now[0])
        # start-up
        assert (await client.public("/fapi/v1/time"))["serverTime"] == T0
        info = await client.public("/fapi/v1/exchangeInfo")
        btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
        filters = {f["filterType"]: f for f in btc["filters"]}
        tick, step = Decimal(filters["PRICE_FILTER"]["tickSize"]), Decimal(filters["LOT_SIZE"]["stepSize"])
        top = await client.public("/fapi/v1/ticker/bookTicker", symbol="BTCUSDT")
        bid, ask = Decimal(top["bidPrice"]), Decimal(top["askPrice"])
        assert await client.ok("GET", "/fapi/v1/positionSide/dual") == {"dualSidePosition": False}
        assert await client.ok("POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=20) == {
            "leverage": 20, "maxNotionalValue": "1000000", "symbol": "BTCUSDT"}
        rate = await client.ok("GET", "/fapi/v1/commissionRate", symbol="BTCUSDT")
        assert shape(rate) == {"symbol": "str", "makerCommissionRate": "str", "takerCommissionRate": "str"}
        account = await client.ok("GET", "/fapi/v3/account")
        assert shape({k: v for k, v in account.items() if k != "positions"}) == shape(
            {k: v for k, v in DOC_ACCOUNT.items() if k != "positions"})
        assert account["positions"] == [] and account["totalWalletBalance"] == "100000"
        assert account["availableBalance"] == account["totalWalletBalance"]
        balance = await client.ok("GET", "/fapi/v3/balance")
        assert balance[0]["balance"] == account["assets"][0]["walletBalance"] == "100000"
        assert await client.ok("GET", "/fapi/v3/positionRisk") == []
        status, listen = await client.signed("POST", "/fapi/v1/listenKey")
        assert status == 200
        frames: list[dict] = []
        ws = await http.ws_connect(base.replace("http", "ws") + "/private/ws?listenKey=" + listen["listenKey"])

        async def read() -> None:
            async for message in ws:
                frames.append(json.loads(message.data))

        reader = asyncio.ensure_future(read())
        try:
            # the order's life: rest 12 lots, 8 lots, then across the book: half of 8 fills
            server.faults.apply({"partial_fill_fraction": 0.5})
            lots = int(Decimal(200) / bid / step) + 1  # over the 100 USDT minimum notional
            lots += lots % 2
            resting = bid - 20 * tick
            placed = await client.ok("POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                                     timeInForce="GTC", quantity=text(step * 2 * lots), price=text(resting),
                                     newClientOrderId="life-1")
            assert placed["status"] == "NEW" and isinstance(placed["orderId"], int)
            order_id = placed["orderId"]
            smaller = await client.ok("PUT", "/fapi/v1/order", symbol="BTCUSDT", orderId=order_id, side="BUY",
                                      quantity=text(step * lots), price=text(resting))
            assert shape({k: v for k, v in smaller.items() if k in DOC_MODIFIED}) == shape(DOC_MODIFIED)
            assert (smaller["status"], Decimal(smaller["origQty"]), Decimal(smaller["price"])) == (
                "NEW", step * lots, resting)
            amended = await events(frames, lambda f: f["e"] == "ORDER_TRADE_UPDATE" and f["o"]["x"] == "AMENDMENT")
            assert (amended[0]["o"]["X"], Decimal(amended[0]["o"]["q"]), amended[0]["o"]["i"]) == (
                "NEW", step * lots, order_id)
            crossed = await client.ok("PUT", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="life-1",
                                      side="BUY", quantity=text(step * lots), price=text(ask + 5 * tick))
            assert crossed["status"] == "PARTIALLY_FILLED"
            assert Decimal(crossed["executedQty"]) == step * (lots // 2)
            assert Decimal(crossed["price"]) == ask + 5 * tick and Decimal(crossed["avgPrice"]) >= ask
            trade = await events(frames, lambda f: f["e"] == "ORDER_TRADE_UPDATE" and f["o"]["x"] == "TRADE")
            assert trade[0]["o"]["X"] == "PARTIALLY_FILLED" and trade[0]["o"]["m"] is False
            assert len(await events(frames, lambda f: f.get("o", {}).get("x") == "AMENDMENT")) == 2
            cancelled = await client.ok("DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=order_id)
            assert (cancelled["status"], cancelled["executedQty"]) == ("CANCELED", crossed["executedQty"])
            await events(frames, lambda f: f["e"] == "ORDER_TRADE_UPDATE" and f["o"]["x"] == "CANCELED")
            # the position it left
            held = step * (lots // 2)
            risk = await client.ok("GET", "/fapi/v3/positionRisk", symbol="BTCUSDT")
            assert [(r["positionSide"], Decimal(r["positionAmt"])) for r in risk] == [("BOTH", held)]
            account = await client.ok("GET", "/fapi/v3/account")
            assert shape(account["positions"]) == shape(DOC_ACCOUNT["positions"])
            assert Decimal(account["positions"][0]["positionAmt"]) == held
            assert Decimal(account["totalPositionInitialMargin"]) > 0
            # close it
            server.faults.apply({"partial_fill_fraction": None})
            closed = await client.ok("POST", "/fapi/v1/order", symbol="BTCUSDT", side="SELL", type="MARKET",
                                     quantity=text(held), reduceOnly="true", newOrderRespType="RESULT")
            assert closed["status"] == "FILLED"
            assert await client.ok("GET", "/fapi/v3/positionRisk") == []
            trades = await client.ok("GET", "/fapi/v1/userTrades", symbol="BTCUSDT")
            assert [t["side"] for t in trades] == ["BUY", "SELL"]
            orders = await client.ok("GET", "/fapi/v1/allOrders", symbol="BTCUSDT")
            assert [(o["orderId"], o["status"]) for o in orders] == [(order_id, "CANCELED"),
                                                                     (closed["orderId"], "FILLED")]
            assert [o["orderId"] for o in await client.ok("GET", "/fapi/v1/allOrders", symbol="BTCUSDT",
                                                          limit=1)] == [closed["orderId"]]
            pnl = await client.ok("GET", "/fapi/v1/income", incomeType="REALIZED_PNL")
            assert [(r["incomeType"], r["income"], r["symbol"]) for r in pnl] == [
                ("REALIZED_PNL", trades[1]["realizedPnl"], "BTCUSDT")]
            assert isinstance(pnl[0]["tranId"], int) and isinstance(pnl[0]["time"], int)
            fees = sum(Decimal(t["commission"]) for t in trades)
            balance = await client.ok("GET", "/fapi/v3/balance")
            assert Decimal(balance[0]["balance"]) == Decimal(100000) + Decimal(pnl[0]["income"]) - fees
        finally:
            await ws.close()
            await reader


async def test_modify_refusals():
    server, now = simulated()
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        client = Client(http, base, lambda: now[0])
        top = await client.public("/fapi/v1/ticker/bookTicker", symbol="BTCUSDT")
        bid = Decimal(top["bidPrice"])
        price = text(bid - 100 * Decimal("0.1"))
        status, body = await client.signed("PUT", "/fapi/v1/order", symbol="BTCUSDT", orderId=1, side="BUY",
                                           quantity="0.01", price=price)
        assert (status, body) == (400, {"code": -2013, "msg": "Order does not exist."})
        placed = await client.ok("POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                                 timeInForce="GTC", quantity="0.01", price=price)
        status, body = await client.signed("PUT", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"],
                                           side="BUY", quantity="0.01", price=price)
        assert (status, body) == (400, {"code": -5027, "msg": "No need to modify the order."})
        status, body = await client.signed("PUT", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"],
                                           side="BUY", quantity="0.005")
        assert (status, body["code"]) == (400, -1102)  # price is required too
        await client.ok("DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"])
        status, body = await client.signed("PUT", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"],
                                           side="BUY", quantity="0.005", price=price)
        assert (status, body["code"]) == (400, -2013)  # a closed order is not modified
