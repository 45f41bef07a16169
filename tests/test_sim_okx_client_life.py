"""A client written from OKX's V5 docs (raw aiohttp, OK-ACCESS-KEY/SIGN/TIMESTAMP/PASSPHRASE
signing, not shared/venues/okx) against the simulator with only its base URL changed: start-up
(time, instruments, tickers, account config, balance, fee, positions), an order's life (place a
resting limit, amend its size down, amend its price across the book under the partial-fill
fault, cancel the rest), the position closed, and what the account shows after: fills,
orders-history and positions-history; plus amend refusals. Every field a string, as OKX's docs
show them."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import pytest

from services.sim.server import SimServer
from tests.conftest import serve_app
from tests.test_sim_okx_trading import KEY, PASSPHRASE, SECRET, T0, OkxDocClient

BTC = "BTC-USDT-SWAP"
CT_VAL = Decimal("0.01")
TICK = Decimal("0.1")


def text(value: Decimal) -> str:
    """A price as OKX writes it: no trailing zeros."""
    return format(value.normalize(), "f")


class DocClient(OkxDocClient):
    """OKX's documented signing (tests/test_sim_okx_trading.py), answering with the body alone; public
    calls unsigned, and the private stream with the orders channel only."""

    async def public(self, path: str, query: str = "") -> dict:
        async with self.session.get(self.base + path + (f"?{query}" if query else "")) as response:
            return await response.json()

    async def get(self, path: str, query: str = "") -> dict:
        return (await super().get(path, query))[1]

    async def post(self, path: str, body: dict) -> dict:
        return (await super().post(path, body))[1]

    async def private(self) -> aiohttp.ClientWebSocketResponse:
        ws, answer = await self.login()
        assert answer["code"] == "0"
        await ws.send_json({"op": "subscribe", "args": [{"channel": "orders", "instType": "SWAP"}]})
        assert (await ws.receive_json(timeout=5))["event"] == "subscribe"
        return ws


def all_strings(record: dict, lists: tuple[str, ...] = ()) -> None:
    """OKX's docs type every field of these records String (lists named apart)."""
    for name, value in record.items():
        if name in lists:
            assert isinstance(value, list | dict), name
        else:
            assert isinstance(value, str), (name, value)


async def orders_push(ws, where) -> dict:
    while True:
        message = await ws.receive_json(timeout=5)
        if message.get("arg", {}).get("channel") == "orders" and where(message["data"][0]):
            return message["data"][0]


@pytest.fixture
async def venue():
    now = [T0 / 1000]
    server = SimServer(["BTCUSDT", "ETHUSDT"], seed=5, step_ms=10_000_000, clock=lambda: now[0],
                       api_keys={KEY: SECRET}, api_passphrases={KEY: PASSPHRASE})
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as session:
        yield server, DocClient(session, base, lambda: now[0]), now


ORDER_LISTS = ("attachAlgoOrds", "linkedAlgoOrd")


async def test_start_up_as_okxs_docs_describe_it(venue):
    _, client, now = venue
    time = await client.public("/api/v5/public/time")
    assert time["code"] == "0" and time["data"][0]["ts"] == str(int(now[0] * 1000))
    instruments = await client.public("/api/v5/public/instruments", "instType=SWAP")
    btc = next(i for i in instruments["data"] if i["instId"] == BTC)
    assert (btc["ctVal"], btc["tickSz"], btc["lotSz"], btc["minSz"], btc["settleCcy"]) == ("0.01", "0.1", "0.1",
                                                                                           "0.1", "USDT")
    for other in ("SPOT", "FUTURES", "OPTION", "MARGIN"):  # only swaps are simulated: none, and success
        answer = await client.public("/api/v5/public/instruments", f"instType={other}")
        assert (answer["code"], answer["data"]) == ("0", [])
    tickers = await client.public("/api/v5/market/tickers", "instType=SWAP")
    assert BTC in {t["instId"] for t in tickers["data"]}
    assert (await client.public("/api/v5/market/tickers", "instType=SPOT"))["data"] == []
    config = (await client.get("/api/v5/account/config"))["data"][0]
    assert (config["posMode"], config["acctLv"], config["perm"]) == ("long_short_mode", "2", "read_only,trade")
    balance = (await client.get("/api/v5/account/balance"))["data"][0]
    all_strings(balance, ("details",))
    all_strings(balance["details"][0])
    assert balance["details"][0]["cashBal"] == "100000"
    fee = (await client.get("/api/v5/account/trade-fee", "instType=SWAP"))["data"][0]
    assert (fee["maker"], fee["taker"]) == ("-0.0002", "-0.0005")
    positions = await client.get("/api/v5/account/positions", "instType=SWAP")
    assert (positions["code"], positions["data"]) == ("0", [])
    assert (await client.get("/api/v5/account/positions-history", "instType=SWAP"))["data"] == []
    assert (await client.get("/api/v5/trade/orders-history", "instType=SWAP"))["data"] == []
    missing = await client.get("/api/v5/trade/orders-history")
    assert (missing["code"], missing["data"]) == ("50014", [])


async def test_an_orders_life_place_amend_down_amend_across_cancel_close_and_the_history(venue):
    server, client, _ = venue
    ws = await client.private()
    server.faults.apply({"partial_fill_fraction": 0.5})  # before placing: the order fills at most half
    bids, asks = server.okx_matching.view.sides(server.model.states["BTCUSDT"])
    bid, ask = TICK * max(bids), TICK * min(asks)
    resting = text(bid - 50 * TICK)
    placed = await client.post("/api/v5/trade/order", {"instId": BTC, "tdMode": "cross", "side": "buy",
                                                       "posSide": "long", "ordType": "limit", "px": resting,
                                                       "sz": "2", "clOrdId": "life1"})
    assert (placed["code"], placed["data"][0]["sCode"]) == ("0", "0")
    ord_id = placed["data"][0]["ordId"]
    assert (await orders_push(ws, lambda o: True))["state"] == "live"

    # size down: same place, the order's sz now 1 contract
    amended = await client.post("/api/v5/trade/amend-order", {"instId": BTC, "ordId": ord_id, "newSz": "1",
                                                              "reqId": "r1"})
    assert amended["code"] == "0"
    item = amended["data"][0]
    all_strings(item)
    assert (item["ordId"], item["clOrdId"], item["reqId"], item["sCode"], item["sMsg"]) == (
        ord_id, "life1", "r1", "0", "")
    push = await orders_push(ws, lambda o: o["ordId"] == ord_id)
    assert (push["sz"], push["px"], push["state"], push["amendResult"], push["reqId"]) == ("1", resting, "live",
                                                                                        "0", "r1")
    detail = (await client.get("/api/v5/trade/order", f"instId={BTC}&ordId={ord_id}"))["data"][0]
    assert (detail["sz"], detail["state"], detail["accFillSz"]) == ("1", "live", "0")

    # price across the book: it takes what it crosses, half its size under the fault
    across = text(ask + 20 * TICK)
    amended = await client.post("/api/v5/trade/amend-order", {"instId": BTC, "clOrdId": "life1", "newPx": across})
    assert (amended["code"], amended["data"][0]["sCode"], amended["data"][0]["ordId"]) == ("0", "0", ord_id)
    fill = await orders_push(ws, lambda o: o["ordId"] == ord_id and o["tradeId"])
    assert (fill["execType"], fill["px"], fill["state"]) == ("T", across, "partially_filled")
    detail = (await client.get("/api/v5/trade/order", f"instId={BTC}&ordId={ord_id}"))["data"][0]
    all_strings(detail, ORDER_LISTS)
    assert (detail["sz"], detail["px"], detail["state"], detail["accFillSz"]) == ("1", across, "partially_filled",
                                                                                  "0.5")
    assert bid < Decimal(detail["avgPx"]) <= Decimal(across)
    positions = (await client.get("/api/v5/account/positions", f"instType=SWAP&instId={BTC}"))["data"]
    assert [(p["posSide"], p["pos"], p["avgPx"]) for p in positions] == [("long", "0.5", detail["avgPx"])]
    all_strings(positions[0], ("closeOrderAlgo",))

    cancelled = await client.post("/api/v5/trade/cancel-order", {"instId": BTC, "ordId": ord_id})
    assert (cancelled["code"], cancelled["data"][0]["sCode"]) == ("0", "0")
    assert (await client.get("/api/v5/trade/orders-pending", "instType=SWAP"))["data"] == []

    server.faults.apply({"partial_fill_fraction": None})
    closed = await client.post("/api/v5/trade/order", {"instId": BTC, "tdMode": "cross", "side": "sell",
                                                       "posSide": "long", "ordType": "market", "sz": "0.5",
                                                       "clOrdId": "close1"})
    assert closed["data"][0]["sCode"] == "0"
    close_id = closed["data"][0]["ordId"]
    assert (await client.get("/api/v5/account/positions", "instType=SWAP"))["data"] == []

    fills = (await client.get("/api/v5/trade/fills", "instType=SWAP"))["data"]
    for f in fills:
        all_strings(f)
    assert {f["ordId"] for f in fills} == {ord_id, close_id}
    assert sum(Decimal(f["fillSz"]) for f in fills if f["ordId"] == ord_id) == Decimal("0.5")
    balance = (await client.get("/api/v5/account/balance"))["data"][0]["details"][0]
    pnl = sum(Decimal(f["fillPnl"]) for f in fills)
    fees = sum(Decimal(f["fee"]) for f in fills)
    assert Decimal(balance["cashBal"]) == 100_000 + pnl + fees

    history = (await client.get("/api/v5/trade/orders-history", "instType=SWAP"))["data"]
    assert [(o["ordId"], o["state"], o["accFillSz"], o["sz"]) for o in history] == [
        (close_id, "filled", "0.5", "0.5"), (ord_id, "canceled", "0.5", "1")]
    assert history[1]["cancelSource"] == "1"
    for order in history:
        all_strings(order, ORDER_LISTS)
    assert (await client.get("/api/v5/trade/orders-history", f"instType=SWAP&instId={BTC}&limit=1"))["data"] == \
        history[:1]
    assert (await client.get("/api/v5/trade/orders-history", "instType=SWAP&state=canceled"))["data"] == \
        history[1:]
    assert (await client.get("/api/v5/trade/orders-history", "instType=SWAP&instId=ETH-USDT-SWAP"))["data"] == []

    closes = (await client.get("/api/v5/account/positions-history", "instType=SWAP"))["data"]
    assert len(closes) == 1
    row = closes[0]
    all_strings(row)
    close_fill = [f for f in fills if f["ordId"] == close_id]
    close_px = sum(Decimal(f["fillPx"]) * Decimal(f["fillSz"]) for f in close_fill) / Decimal("0.5")
    assert (row["instId"], row["posSide"], row["type"], row["closeTotalPos"], row["openMaxPos"], row["mgnMode"],
            row["direction"]) == (BTC, "long", "2", "0.5", "0.5", "cross", "long")
    assert Decimal(row["openAvgPx"]) == Decimal(detail["avgPx"])
    assert Decimal(row["closeAvgPx"]) == close_px
    assert Decimal(row["pnl"]) == pnl == (close_px - Decimal(detail["avgPx"])) * Decimal("0.5") * CT_VAL
    assert Decimal(row["fee"]) == fees and Decimal(row["fundingFee"]) == 0
    assert Decimal(row["realizedPnl"]) == pnl + fees
    assert int(row["cTime"]) <= int(row["uTime"])
    await ws.close()


async def test_a_partial_close_shows_as_type_1_until_the_position_is_flat(venue):
    _, client, _ = venue
    order = {"instId": BTC, "tdMode": "cross", "posSide": "short", "ordType": "market"}
    assert (await client.post("/api/v5/trade/order", {**order, "side": "sell", "sz": "2"}))["code"] == "0"
    assert (await client.post("/api/v5/trade/order", {**order, "side": "buy", "sz": "0.5"}))["code"] == "0"
    rows = (await client.get("/api/v5/account/positions-history", f"instType=SWAP&instId={BTC}"))["data"]
    assert [(r["type"], r["posSide"], r["closeTotalPos"], r["openMaxPos"]) for r in rows] == [
        ("1", "short", "0.5", "2")]
    assert (await client.post("/api/v5/trade/order", {**order, "side": "buy", "sz": "1.5"}))["code"] == "0"
    rows = (await client.get("/api/v5/account/positions-history", "instType=SWAP"))["data"]
    assert [(r["type"], r["closeTotalPos"]) for r in rows] == [("2", "2")]
    assert (await client.get("/api/v5/account/positions-history", "instType=SWAP&type=1"))["data"] == []


async def test_amend_refusals_answer_per_item(venue):
    server, client, _ = venue
    bid = TICK * max(server.okx_matching.view.sides(server.model.states["BTCUSDT"])[0])
    px = text(bid - 30 * TICK)
    placed = await client.post("/api/v5/trade/order", {"instId": BTC, "tdMode": "cross", "side": "buy",
                                                       "posSide": "long", "ordType": "limit", "px": px,
                                                       "sz": "1", "clOrdId": "ref1"})
    ord_id = placed["data"][0]["ordId"]

    unknown = await client.post("/api/v5/trade/amend-order", {"instId": BTC, "ordId": "123456", "newSz": "2",
                                                              "reqId": "q1"})
    assert unknown["code"] == "1"
    item = unknown["data"][0]
    all_strings(item)
    assert (item["sCode"], item["ordId"], item["reqId"]) == ("51503", "123456", "q1")

    unchanged = await client.post("/api/v5/trade/amend-order", {"instId": BTC, "ordId": ord_id, "newPx": px,
                                                                "newSz": "1"})
    assert (unchanged["code"], unchanged["data"][0]["sCode"]) == ("1", "51000")
    assert unchanged["data"][0]["sMsg"]
    nothing = await client.post("/api/v5/trade/amend-order", {"instId": BTC, "ordId": ord_id})
    assert (nothing["code"], nothing["data"][0]["sCode"]) == ("1", "51000")
    off_grid = await client.post("/api/v5/trade/amend-order", {"instId": BTC, "ordId": ord_id, "newSz": "0.15"})
    assert off_grid["data"][0]["sCode"] == "51121"
    no_id = await client.post("/api/v5/trade/amend-order", {"instId": BTC, "newSz": "2"})
    assert (no_id["code"], no_id["data"]) == ("50015", [])
    detail = (await client.get("/api/v5/trade/order", f"instId={BTC}&ordId={ord_id}"))["data"][0]
    assert (detail["state"], detail["sz"], detail["px"]) == ("live", "1", px)

    # cxlOnFail: the refused amendment cancels the order
    refused = await client.post("/api/v5/trade/amend-order", {"instId": BTC, "ordId": ord_id, "newSz": "1",
                                                               "cxlOnFail": True})
    assert refused["data"][0]["sCode"] == "51000"
    detail = (await client.get("/api/v5/trade/order", f"instId={BTC}&ordId={ord_id}"))["data"][0]
    assert detail["state"] == "canceled"
    too_late = await client.post("/api/v5/trade/amend-order", {"instId": BTC, "clOrdId": "ref1", "newSz": "2"})
    assert (too_late["code"], too_late["data"][0]["sCode"]) == ("1", "51503")
