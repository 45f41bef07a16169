"""A client written from Bitget's V2 docs (raw aiohttp, the documented ACCESS-KEY / ACCESS-SIGN /
ACCESS-TIMESTAMP / ACCESS-PASSPHRASE signing; not shared/venues/bitget) against the simulator,
only the base URL changed: start-up, an order's life (place, modify size down, modify price
across the book, cancel the rest), positions, balance, fills, orders-history, history-position,
the private stream's pushes of the modified order, and modify's refusals (issue 24)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from decimal import Decimal
from urllib.parse import urlencode

import aiohttp
import pytest

from services.sim.server import SimServer
from tests.conftest import serve_app

KEY, SECRET, PASSPHRASE = "bitget-life-key", "bitget-life-secret", "bitget-life-pass"
PRODUCT = "USDT-FUTURES"


class DocsClient:
    """Bitget V2 REST as its docs describe: sign = base64(HMAC-SHA256(secret, timestamp + METHOD +
    requestPath + ("?" + queryString) + body)), timestamp in ms."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    def _headers(self, method: str, path: str, query: str, body: str) -> dict:
        ts = str(int(time.time() * 1000))
        prehash = f"{ts}{method}{path}{'?' + query if query else ''}{body}"
        sign = base64.b64encode(hmac.new(SECRET.encode(), prehash.encode(), hashlib.sha256).digest()).decode()
        return {"ACCESS-KEY": KEY, "ACCESS-SIGN": sign, "ACCESS-TIMESTAMP": ts, "ACCESS-PASSPHRASE": PASSPHRASE,
                "Content-Type": "application/json", "locale": "en-US"}

    async def public(self, path: str, **params) -> dict:
        async with self.http.get(f"{self.base}{path}", params=params) as response:
            return await response.json()

    async def get(self, path: str, **params) -> dict:
        query = urlencode(params)
        async with self.http.get(f"{self.base}{path}{'?' + query if query else ''}",
                                 headers=self._headers("GET", path, query, "")) as response:
            return await response.json()

    async def post(self, path: str, body: dict) -> dict:
        text = json.dumps(body)
        async with self.http.post(f"{self.base}{path}", data=text,
                                  headers=self._headers("POST", path, "", text)) as response:
            return await response.json()


def ok(answer: dict):
    assert answer["code"] == "00000", answer
    assert answer["msg"] == "success" and isinstance(answer["requestTime"], int)
    return answer["data"]


def strings(row: dict, *names: str) -> None:
    for name in names:
        assert isinstance(row[name], str), (name, row[name])


async def stream(http: aiohttp.ClientSession, base: str):
    """The private stream logged in as the docs show, subscribed to orders (every symbol)."""
    ws = await http.ws_connect(f"{base.replace('http', 'ws')}/v2/ws/private")
    ts = str(int(time.time()))
    sign = base64.b64encode(hmac.new(SECRET.encode(), f"{ts}GET/user/verify".encode(), hashlib.sha256).digest())
    await ws.send_str(json.dumps({"op": "login", "args": [{"apiKey": KEY, "passphrase": PASSPHRASE, "timestamp": ts,
                                                           "sign": sign.decode()}]}))
    assert json.loads((await ws.receive(timeout=5)).data) == {"event": "login", "code": 0, "msg": ""}
    arg = {"instType": PRODUCT, "channel": "orders", "instId": "default"}
    await ws.send_str(json.dumps({"op": "subscribe", "args": [arg]}))
    assert json.loads((await ws.receive(timeout=5)).data) == {"event": "subscribe", "arg": arg}
    return ws


async def pushes(ws, wanted: int) -> list[dict]:
    out = []
    while len(out) < wanted:
        message = json.loads((await ws.receive(timeout=5)).data)
        out.extend(message["data"])
    return out


@pytest.fixture
async def venue():
    server = SimServer(["BTCUSDT", "ETHUSDT"], seed=5, step_ms=10_000_000, api_keys={KEY: SECRET},
                       api_passphrases={KEY: PASSPHRASE})
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        yield server, DocsClient(http, base), http, base


async def start_up(client: DocsClient) -> dict:
    """What a client does before trading; the BTCUSDT contract."""
    server_time = ok(await client.public("/api/v2/public/time"))
    assert abs(int(server_time["serverTime"]) - time.time() * 1000) < 60_000
    contracts = {}
    for product in ("USDT-FUTURES", "COIN-FUTURES", "USDC-FUTURES"):
        rows = ok(await client.public("/api/v2/mix/market/contracts", productType=product))
        assert isinstance(rows, list)
        contracts[product] = {r["symbol"]: r for r in rows}
    btc = contracts[PRODUCT]["BTCUSDT"]
    strings(btc, "sizeMultiplier", "minTradeNum", "pricePlace", "minTradeUSDT")
    tickers = ok(await client.public("/api/v2/mix/market/tickers", productType=PRODUCT))
    assert {"BTCUSDT", "ETHUSDT"} <= {t["symbol"] for t in tickers}
    accounts = ok(await client.get("/api/v2/mix/account/accounts", productType=PRODUCT))
    assert accounts[0]["marginCoin"] == "USDT" and Decimal(accounts[0]["available"]) > 0
    strings(accounts[0], "available", "accountEquity", "locked", "unrealizedPL")
    assert ok(await client.post("/api/v2/mix/account/set-position-mode",
                                {"productType": PRODUCT, "posMode": "hedge_mode"})) == {"posMode": "hedge_mode"}
    lever = ok(await client.post("/api/v2/mix/account/set-leverage",
                                 {"symbol": "BTCUSDT", "productType": PRODUCT, "marginCoin": "USDT",
                                  "leverage": "5"}))
    assert lever["longLeverage"] == "5"
    assert ok(await client.get("/api/v2/mix/position/all-position", productType=PRODUCT, marginCoin="USDT")) == []
    return btc


async def test_an_order_lives_modified_partly_filled_cancelled_and_its_position_closes(venue):
    server, client, http, base = venue
    btc = await start_up(client)
    step = Decimal(btc["sizeMultiplier"])
    ticker = ok(await client.public("/api/v2/mix/market/ticker", symbol="BTCUSDT", productType=PRODUCT))[0]
    bid, ask = Decimal(ticker["bidPr"]), Decimal(ticker["askPr"])
    tick = Decimal(1).scaleb(-int(btc["pricePlace"]))
    ws = await stream(http, base)
    server.faults.apply({"partial_fill_fraction": 0.5})

    placed = ok(await client.post("/api/v2/mix/order/place-order", {
        "symbol": "BTCUSDT", "productType": PRODUCT, "marginMode": "crossed", "marginCoin": "USDT", "size":
        str(step * 40), "price": str(bid - 100 * tick), "side": "buy", "tradeSide": "open", "orderType": "limit",
        "force": "gtc", "clientOid": "life-1"}))
    assert placed["clientOid"] == "life-1" and isinstance(placed["orderId"], str)
    order_id = placed["orderId"]
    assert (await pushes(ws, 1))[0]["status"] == "live"

    # size down: same orderId, the new clientOid
    modified = ok(await client.post("/api/v2/mix/order/modify-order", {
        "symbol": "BTCUSDT", "productType": PRODUCT, "marginCoin": "USDT", "orderId": order_id,
        "newClientOid": "life-2", "newSize": str(step * 20)}))
    assert modified == {"orderId": order_id, "clientOid": "life-2"}
    push = (await pushes(ws, 1))[0]
    assert (push["orderId"], push["clientOid"], push["status"]) == (order_id, "life-2", "live")
    assert Decimal(push["size"]) == step * 20
    detail = ok(await client.get("/api/v2/mix/order/detail", symbol="BTCUSDT", productType=PRODUCT,
                                 clientOid="life-2"))
    assert detail["orderId"] == order_id and Decimal(detail["size"]) == step * 20 and detail["state"] == "live"
    gone = await client.get("/api/v2/mix/order/detail", symbol="BTCUSDT", productType=PRODUCT, clientOid="life-1")
    assert gone["code"] == "40109" and gone["data"] is None

    # price across the book, by clientOid: half fills (the fault), the rest rests
    modified = ok(await client.post("/api/v2/mix/order/modify-order", {
        "symbol": "BTCUSDT", "productType": PRODUCT, "marginCoin": "USDT", "clientOid": "life-2",
        "newClientOid": "life-3", "newPrice": str(ask + 100 * tick)}))
    assert modified == {"orderId": order_id, "clientOid": "life-3"}
    push = (await pushes(ws, 1))[0]
    assert (push["clientOid"], push["status"], push["tradeSide"]) == ("life-3", "partially_filled", "open")
    assert Decimal(push["accBaseVolume"]) == step * 10 and Decimal(push["price"]) == ask + 100 * tick
    strings(push, "tradeId", "fillPrice", "fillFee", "baseVolume", "priceAvg")
    pending = ok(await client.get("/api/v2/mix/order/orders-pending", productType=PRODUCT, symbol="BTCUSDT"))
    assert [(o["orderId"], o["status"], o["clientOid"]) for o in pending["entrustedList"]] == [
        (order_id, "partially_filled", "life-3")]

    cancelled = ok(await client.post("/api/v2/mix/order/cancel-order", {
        "symbol": "BTCUSDT", "productType": PRODUCT, "marginCoin": "USDT", "orderId": order_id}))
    assert cancelled == {"orderId": order_id, "clientOid": "life-3"}
    assert (await pushes(ws, 1))[0]["status"] == "canceled"
    server.faults.apply({"partial_fill_fraction": None})

    positions = ok(await client.get("/api/v2/mix/position/all-position", productType=PRODUCT, marginCoin="USDT"))
    assert [(p["symbol"], p["holdSide"], Decimal(p["total"])) for p in positions] == [("BTCUSDT", "long", step * 10)]
    strings(positions[0], "openPriceAvg", "leverage", "unrealizedPL", "marginSize", "available")
    assert positions[0]["leverage"] == "5"
    fills = ok(await client.get("/api/v2/mix/order/fills", productType=PRODUCT, symbol="BTCUSDT"))["fillList"]
    assert [(f["orderId"], f["side"], f["tradeSide"], f["tradeScope"]) for f in fills] == [
        (order_id, "buy", "open", "taker")]
    open_price, open_fee = Decimal(fills[0]["price"]), Decimal(fills[0]["feeDetail"][0]["totalFee"])
    assert open_fee < 0

    # close the long at market (hedge mode: side buy + tradeSide close)
    ok(await client.post("/api/v2/mix/order/place-order", {
        "symbol": "BTCUSDT", "productType": PRODUCT, "marginMode": "crossed", "marginCoin": "USDT",
        "size": str(step * 10), "side": "buy", "tradeSide": "close", "orderType": "market", "clientOid": "life-x"}))
    assert ok(await client.get("/api/v2/mix/position/all-position", productType=PRODUCT, marginCoin="USDT")) == []
    fills = ok(await client.get("/api/v2/mix/order/fills", productType=PRODUCT))["fillList"]
    close_price, close_fee = Decimal(fills[0]["price"]), Decimal(fills[0]["feeDetail"][0]["totalFee"])
    assert (fills[0]["side"], fills[0]["tradeSide"]) == ("sell", "close")

    history = ok(await client.get("/api/v2/mix/order/orders-history", productType=PRODUCT))
    rows = history["entrustedList"]
    assert [(o["clientOid"], o["status"]) for o in rows] == [("life-x", "filled"), ("life-3", "canceled")]
    assert history["endId"] == order_id
    assert Decimal(rows[1]["baseVolume"]) == step * 10 and Decimal(rows[1]["size"]) == step * 20
    strings(rows[1], "orderId", "size", "price", "priceAvg", "fee", "cTime", "uTime", "baseVolume")
    one = ok(await client.get("/api/v2/mix/order/orders-history", productType=PRODUCT, symbol="BTCUSDT", limit="1"))
    assert [o["clientOid"] for o in one["entrustedList"]] == ["life-x"]
    older = ok(await client.get("/api/v2/mix/order/orders-history", productType=PRODUCT, idLessThan=one["endId"]))
    assert [o["clientOid"] for o in older["entrustedList"]] == ["life-3"]

    closed = ok(await client.get("/api/v2/mix/position/history-position", productType=PRODUCT))
    assert len(closed["list"]) == 1 and closed["endId"] == closed["list"][0]["positionId"]
    row = closed["list"][0]
    strings(row, "positionId", "symbol", "holdSide", "openAvgPrice", "closeAvgPrice", "openTotalPos",
            "closeTotalPos", "pnl", "netProfit", "totalFunding", "openFee", "closeFee", "ctime", "utime")
    assert (row["symbol"], row["holdSide"], row["marginCoin"]) == ("BTCUSDT", "long", "USDT")
    assert Decimal(row["openTotalPos"]) == Decimal(row["closeTotalPos"]) == step * 10
    assert (Decimal(row["openAvgPrice"]), Decimal(row["closeAvgPrice"])) == (open_price, close_price)
    assert Decimal(row["pnl"]) == (close_price - open_price) * step * 10
    assert (Decimal(row["openFee"]), Decimal(row["closeFee"]), Decimal(row["totalFunding"])) == (
        open_fee, close_fee, 0)
    assert Decimal(row["netProfit"]) == Decimal(row["pnl"]) + open_fee + close_fee
    assert int(row["ctime"]) <= int(row["utime"])
    assert ok(await client.get("/api/v2/mix/position/history-position", symbol="ETHUSDT"))["list"] == []

    account = ok(await client.get("/api/v2/mix/account/account", symbol="BTCUSDT", productType=PRODUCT,
                                  marginCoin="USDT"))
    start = Decimal(100000)
    assert Decimal(account["available"]) == start + Decimal(row["netProfit"]) and account["posMode"] == "hedge_mode"
    await ws.close()


async def test_modify_refusals_as_bitget_answers_them(venue):
    _, client, _, _ = venue
    await start_up(client)
    body = {"symbol": "BTCUSDT", "productType": PRODUCT, "marginCoin": "USDT"}
    unknown = await client.post("/api/v2/mix/order/modify-order",
                                {**body, "orderId": "123", "newClientOid": "n-1", "newSize": "0.01"})
    assert (unknown["code"], unknown["msg"], unknown["data"]) == ("40768", "Order does not exist", None)
    ticker = ok(await client.public("/api/v2/mix/market/ticker", symbol="BTCUSDT", productType=PRODUCT))[0]
    price = str(Decimal(ticker["bidPr"]) - 50)
    placed = ok(await client.post("/api/v2/mix/order/place-order", {
        **body, "marginMode": "crossed", "size": "0.01", "price": price, "side": "buy", "tradeSide": "open",
        "orderType": "limit", "force": "gtc", "clientOid": "keep-1"}))
    same = await client.post("/api/v2/mix/order/modify-order", {
        **body, "orderId": placed["orderId"], "newClientOid": "keep-2", "newSize": "0.01", "newPrice": price})
    assert same["code"] == "40020" and "unchanged" in same["msg"] and same["data"] is None
    no_new_oid = await client.post("/api/v2/mix/order/modify-order", {**body, "orderId": placed["orderId"],
                                                                       "newSize": "0.02"})
    assert no_new_oid["code"] == "40019" and "newClientOid" in no_new_oid["msg"]
    off_grid = await client.post("/api/v2/mix/order/modify-order", {
        **body, "orderId": placed["orderId"], "newClientOid": "keep-2", "newSize": "0.0123"})
    assert off_grid["code"] == "40808"
    # the refusals left the order and its clientOid as they were
    detail = ok(await client.get("/api/v2/mix/order/detail", symbol="BTCUSDT", productType=PRODUCT,
                                 clientOid="keep-1"))
    assert (detail["orderId"], detail["size"], detail["state"]) == (placed["orderId"], "0.01", "live")
    # a newClientOid another pending order carries
    ok(await client.post("/api/v2/mix/order/place-order", {
        **body, "marginMode": "crossed", "size": "0.01", "price": price, "side": "buy", "tradeSide": "open",
        "orderType": "limit", "force": "gtc", "clientOid": "other"}))
    taken = await client.post("/api/v2/mix/order/modify-order", {
        **body, "clientOid": "keep-1", "newClientOid": "other", "newSize": "0.02"})
    assert (taken["code"], taken["msg"]) == ("40786", "Duplicate clientOid")
