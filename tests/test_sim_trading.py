"""Trading against the simulator with a client written from Bybit's V5 documentation alone:
signed REST (HMAC over timestamp + key + window + query or body) and the private stream."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import aiohttp
import pytest

from services.sim.server import SimServer
from tests.conftest import BYBIT_SAMPLES, serve_app

KEY, SECRET = "doc-key", "doc-secret"
T0 = 1_800_000_000_000


def sample(name: str) -> dict:
    return json.loads((BYBIT_SAMPLES / name).read_text())


def types(value: dict) -> dict:
    return {k: type(v).__name__ for k, v in value.items()}


class DocClient:
    """What a user would write from https://bybit-exchange.github.io/docs/v5/guide."""

    def __init__(self, session: aiohttp.ClientSession, base: str, clock) -> None:
        self.session, self.base, self.clock = session, base, clock

    def _headers(self, payload: str) -> dict[str, str]:
        timestamp = str(int(self.clock() * 1000))
        sign = hmac.new(SECRET.encode(), f"{timestamp}{KEY}5000{payload}".encode(), hashlib.sha256).hexdigest()
        return {"X-BAPI-API-KEY": KEY, "X-BAPI-TIMESTAMP": timestamp, "X-BAPI-RECV-WINDOW": "5000",
                "X-BAPI-SIGN": sign, "Content-Type": "application/json"}

    async def get(self, path: str, query: str = "") -> dict:
        async with self.session.get(f"{self.base}{path}?{query}", headers=self._headers(query)) as response:
            return await response.json()

    async def post(self, path: str, body: dict | str) -> dict:
        text = body if isinstance(body, str) else json.dumps(body)
        async with self.session.post(f"{self.base}{path}", data=text, headers=self._headers(text)) as response:
            return await response.json()

    async def private(self) -> aiohttp.ClientWebSocketResponse:
        ws = await self.session.ws_connect(f"{self.base.replace('http', 'ws')}/v5/private")
        expires = int(self.clock() * 1000) + 1000
        sign = hmac.new(SECRET.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
        await ws.send_json({"req_id": "a1", "op": "auth", "args": [KEY, expires, sign]})
        assert (await ws.receive_json(timeout=5))["success"] is True
        await ws.send_json({"op": "subscribe", "args": ["order", "execution", "position", "wallet"]})
        assert (await ws.receive_json(timeout=5))["success"] is True
        return ws


@pytest.fixture
async def venue():
    now = [T0 / 1000]
    server = SimServer(["BTCUSDT", "ETHUSDT"], seed=5, step_ms=10_000_000, clock=lambda: now[0],
                       api_keys={KEY: SECRET})
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as session:
        yield server, DocClient(session, base, lambda: now[0]), now


async def pushes(ws, count: int) -> dict[str, dict]:
    """The next `count` private-stream messages, by topic."""
    out = {}
    for _ in range(count):
        message = await ws.receive_json(timeout=5)
        out[message["topic"]] = message
    return out


async def test_a_documentation_client_trades_end_to_end(venue):
    server, client, _ = venue
    assert (await client.get("/v5/market/time"))["retCode"] == 0
    info = await client.get("/v5/market/instruments-info", "category=linear&symbol=BTCUSDT")
    tick = info["result"]["list"][0]["priceFilter"]["tickSize"]
    assert tick == "0.10"
    ws = await client.private()
    bid = max(server.model.states["BTCUSDT"].bids) * 0.1

    resting = await client.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                                     "orderType": "Limit", "qty": "0.010", "price": f"{bid - 50:.1f}",
                                                     "timeInForce": "GTC", "orderLinkId": "rest-1"})
    assert resting["retCode"] == 0 and resting["result"]["orderLinkId"] == "rest-1"
    assert (await pushes(ws, 2)).keys() == {"order", "position"}
    listed = await client.get("/v5/order/realtime", "category=linear&orderLinkId=rest-1")
    assert listed["result"]["list"][0]["orderStatus"] == "New"
    cancelled = await client.post("/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT",
                                                       "orderLinkId": "rest-1"})
    assert cancelled["result"]["orderId"] == resting["result"]["orderId"]
    assert (await pushes(ws, 2))["order"]["data"][0]["orderStatus"] == "Cancelled"

    bought = await client.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                                    "orderType": "Market", "qty": "0.005", "orderLinkId": "mkt-1"})
    assert bought["retCode"] == 0
    stream = await pushes(ws, 4)
    assert stream["order"]["data"][0]["orderStatus"] == "Filled"
    fills = stream["execution"]["data"]
    assert sum(float(f["execQty"]) for f in fills) == pytest.approx(0.005)
    history = await client.get("/v5/order/history", "category=linear&orderLinkId=mkt-1")
    assert history["result"]["list"][0]["cumExecQty"] == "0.005"
    executions = await client.get("/v5/execution/list", "category=linear&symbol=BTCUSDT")
    assert {e["execId"] for e in executions["result"]["list"]} == {f["execId"] for f in fills}
    assert all(isinstance(e["seq"], int) for e in executions["result"]["list"])  # a number, as the docs show
    position = (await client.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))["result"]["list"][0]
    assert (position["side"], position["size"]) == ("Buy", "0.005")
    wallet = (await client.get("/v5/account/wallet-balance", "accountType=UNIFIED"))["result"]["list"][0]
    fees = sum(float(f["execFee"]) for f in fills)
    assert float(wallet["totalWalletBalance"]) == pytest.approx(100_000 - fees)
    assert stream["wallet"]["data"][0]["totalWalletBalance"] == wallet["totalWalletBalance"]
    await ws.close()


async def test_a_client_from_start_up_to_its_closed_pnl(venue):
    """The calls a client written from Bybit's docs makes, in its order: markets of every
    category, coins, the account, fees and key, positions; then an order's life (place, amend,
    partial fill, cancel), the position, the balance and the closed PnL."""
    server, client, _ = venue
    assert (await client.get("/v5/market/time"))["retCode"] == 0
    linear, cursor = [], ""
    while True:  # paged, as clients load it
        page = (await client.get("/v5/market/instruments-info", f"category=linear&limit=1&cursor={cursor}"))["result"]
        linear += page["list"]
        if not (cursor := page["nextPageCursor"]):
            break
    assert [i["symbol"] for i in linear] == ["BTCUSDT", "ETHUSDT"]
    for category in ("spot", "inverse", "option"):
        assert (await client.get("/v5/market/instruments-info", f"category={category}"))["result"]["list"] == []
    for path, query in (("/v5/asset/coin/query-info", ""), ("/v5/account/info", ""), ("/v5/user/query-api", ""),
                        ("/v5/account/fee-rate", "category=linear"), ("/v5/account/wallet-balance", "accountType=UNIFIED"),
                        *(("/v5/position/list", f"category={c}&settleCoin=USDT") for c in ("linear", "inverse"))):
        answer = await client.get(path, query)
        assert answer["retCode"] == 0, (path, answer)
    assert (await client.post("/v5/position/set-leverage", {"category": "linear", "symbol": "BTCUSDT",
                                                            "buyLeverage": "4", "sellLeverage": "4"}))["retCode"] == 0
    state = server.model.states["BTCUSDT"]
    bid, ask = max(state.bids), min(state.asks)
    server.faults.apply({"partial_fill_fraction": 0.5})  # orders placed now fill half their size at most
    placed = await client.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                                    "orderType": "Limit", "qty": "0.004", "price": f"{bid / 10:.1f}",
                                                    "orderLinkId": "life-1"})
    assert placed["retCode"] == 0
    assert (await client.post("/v5/order/amend", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "life-1",
                                                  "qty": "0.006", "price": f"{ask / 10:.1f}"}))["retCode"] == 0
    [order] = (await client.get("/v5/order/realtime", "category=linear&orderLinkId=life-1"))["result"]["list"]
    assert (order["orderStatus"], order["qty"], order["cumExecQty"]) == ("PartiallyFilled", "0.006", "0.003")
    assert (await client.post("/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT",
                                                   "orderLinkId": "life-1"}))["retCode"] == 0
    [order] = (await client.get("/v5/order/history", "category=linear&orderLinkId=life-1"))["result"]["list"]
    assert (order["orderStatus"], order["cumExecQty"]) == ("Cancelled", "0.003")
    [position] = (await client.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))["result"]["list"]
    assert (position["side"], position["size"], position["leverage"]) == ("Buy", "0.003", "4")
    server.faults.apply({"partial_fill_fraction": None})
    assert (await client.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Sell",
                                                   "orderType": "Market", "qty": "0.003",
                                                   "reduceOnly": True}))["retCode"] == 0
    [row] = (await client.get("/v5/position/closed-pnl", "category=linear&symbol=BTCUSDT"))["result"]["list"]
    wallet = (await client.get("/v5/account/wallet-balance", "accountType=UNIFIED"))["result"]["list"][0]
    fills = (await client.get("/v5/execution/list", "category=linear&symbol=BTCUSDT"))["result"]["list"]
    # the wallet moved by the closed PnL and the opening fills' fees, and nothing else
    opening_fees = sum(float(f["execFee"]) for f in fills if f["orderLinkId"] == "life-1")
    assert float(wallet["totalWalletBalance"]) == pytest.approx(100_000 + float(row["closedPnl"]) - opening_fees)


async def test_what_a_client_reads_at_start_over_every_category(venue):
    """Clients read the account's settings and load every category at start: the categories
    the simulator does not trade answer as Bybit answers an empty one; orders there are refused."""
    _server, client, _ = venue
    info = await client.get("/v5/account/info")
    assert info["retCode"] == 0 and info["result"]["unifiedMarginStatus"] in (3, 4, 5, 6)
    doc = {"marginMode": "REGULAR_MARGIN", "updatedTime": "1697078946000", "unifiedMarginStatus": 4,
           "dcpStatus": "OFF", "timeWindow": 10, "smpGroup": 0, "isMasterTrader": False, "spotHedgingStatus": "OFF"}
    assert types(info["result"]) == types(doc)  # Bybit's documented example, field for field
    for category in ("spot", "inverse", "option"):
        for path, query in (("/v5/position/list", "settleCoin=USDT"), ("/v5/order/realtime", "settleCoin=USDT"),
                            ("/v5/order/history", ""), ("/v5/execution/list", ""), ("/v5/account/fee-rate", "")):
            answer = await client.get(path, f"category={category}&{query}")
            assert (answer["retCode"], answer["result"]["list"], answer["result"]["category"]) == (0, [], category)
        refused = await client.post("/v5/order/create", {"category": category, "symbol": "BTCUSDT", "side": "Buy",
                                                         "orderType": "Market", "qty": "1"})
        assert refused["retCode"] == 10001 and f"category {category} is not traded" in refused["retMsg"]
    unknown = await client.get("/v5/position/list", "category=futures&settleCoin=USDT")
    assert (unknown["retCode"], unknown["retMsg"]) == (10001, "params error: category futures is invalid")


async def test_rest_and_stream_shapes_match_bybits(venue):
    _server, client, _ = venue
    ws = await client.private()
    await client.post("/v5/order/create", {"category": "linear", "symbol": "ETHUSDT", "side": "Sell",
                                           "orderType": "Market", "qty": "0.10"})
    stream = await pushes(ws, 4)
    for topic in ("order", "execution", "position", "wallet"):
        real = sample(f"docexample_ws_private_{topic}.json")
        ours = stream[topic]
        assert ours.keys() == real.keys()
        mine, theirs = ours["data"][0], real["data"][0]
        if topic == "wallet":
            mine, theirs = {**mine, "coin": None}, {**theirs, "coin": None}
            assert stream[topic]["data"][0]["coin"][0].keys() == real["data"][0]["coin"][0].keys()
        assert set(mine) >= set(theirs), f"{topic}: missing {set(theirs) - set(mine)}"
        assert {k: t for k, t in types(mine).items() if k in theirs} == types(theirs)
    realtime = await client.get("/v5/order/history", "category=linear&symbol=ETHUSDT")
    real_order = sample("docexample_rest_order_realtime.json")["result"]["list"][0]
    ours = realtime["result"]["list"][0]
    assert set(ours) >= set(real_order) and {k: types(ours)[k] for k in real_order} == types(real_order)
    position = (await client.get("/v5/position/list", "category=linear&symbol=ETHUSDT"))["result"]["list"][0]
    real_position = sample("ccxtrec_rest_position_list.json")[0]["response"]["result"]["list"][0]
    assert set(position) >= set(real_position) - {"nextPageCursor"}  # a recorder's artefact
    await ws.close()


@pytest.mark.parametrize(("body", "code", "words"), [
    ({"price": "65000.05"}, 10001, "tickSize 0.10"),
    ({"qty": "0.0015"}, 10001, "qtyStep 0.001"),
    ({"qty": "0"}, 10001, "minimum limit"),
    ({"qty": "1000", "price": "65000.0"}, 110007, "ab not enough"),
    ({"reduceOnly": True}, 110017, "position is zero"),
    ({"positionIdx": 1}, 10001, "position idx not match position mode"),
    ({"symbol": "NOPEUSDT"}, 10001, "symbol invalid"),
    ({"timeInForce": "GTD"}, 10001, "timeInForce"),
])
async def test_bad_orders_get_bybits_ret_codes(venue, body, code, words):
    _, client, _ = venue
    order = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.001",
             "price": "60000.0"} | body
    answer = await client.post("/v5/order/create", order)
    assert answer["retCode"] == code and words in answer["retMsg"]


async def test_a_reused_order_link_id_is_refused_and_a_body_that_is_not_json_too(venue):
    _, client, _ = venue
    order = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.001",
             "orderLinkId": "once"}
    assert (await client.post("/v5/order/create", order))["retCode"] == 0
    again = await client.post("/v5/order/create", order)
    assert (again["retCode"], again["retMsg"]) == (110072, "OrderLinkedID is duplicate")
    assert (await client.post("/v5/order/create", "{not json"))["retCode"] == 10001


async def test_cancelling_what_does_not_exist_or_naming_nothing_is_refused(venue):
    _, client, _ = venue
    unknown = await client.post("/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderId": "nope"})
    assert (unknown["retCode"], unknown["retMsg"]) == (110001, "order not exists or too late to cancel")
    unnamed = await client.post("/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT"})
    assert unnamed["retCode"] == 10001 and "orderId or orderLinkId" in unnamed["retMsg"]
    spot = await client.post("/v5/order/cancel", {"category": "spot", "symbol": "BTCUSDT", "orderId": "nope"})
    assert spot["retCode"] == 10001 and "linear only" in spot["retMsg"]


async def test_switching_to_hedge_mode_then_trading_both_sides(venue):
    _, client, _ = venue
    assert (await client.post("/v5/position/switch-mode", {"category": "linear", "symbol": "BTCUSDT",
                                                           "mode": 3}))["retCode"] == 0
    for side, idx in (("Buy", 1), ("Sell", 2)):
        answer = await client.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": side,
                                                         "orderType": "Market", "qty": "0.002", "positionIdx": idx})
        assert answer["retCode"] == 0
    listed = (await client.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))["result"]["list"]
    assert [(p["positionIdx"], p["side"], p["size"]) for p in listed] == [(1, "Buy", "0.002"), (2, "Sell", "0.002")]
    again = await client.post("/v5/position/switch-mode", {"category": "linear", "symbol": "BTCUSDT", "mode": 0})
    assert again["retCode"] == 110024


async def test_switching_every_usdt_contract_at_once_by_coin(venue):
    _, client, _ = venue
    assert (await client.post("/v5/position/switch-mode", {"category": "linear", "coin": "USDT",
                                                           "mode": 3}))["retCode"] == 0
    for symbol in ("BTCUSDT", "ETHUSDT"):
        listed = (await client.get("/v5/position/list", f"category=linear&symbol={symbol}"))["result"]["list"]
        assert [p["positionIdx"] for p in listed] == [1, 2]
    named = await client.post("/v5/position/switch-mode", {"category": "linear", "mode": 3})
    assert (named["retCode"], named["retMsg"]) == (10001, "params error: symbol or coin is required")


async def test_leverage_is_set_per_symbol_and_shown_on_the_position(venue):
    _, client, _ = venue
    lever = {"category": "linear", "symbol": "BTCUSDT", "buyLeverage": "5", "sellLeverage": "5"}
    assert (await client.post("/v5/position/set-leverage", lever))["retCode"] == 0
    again = await client.post("/v5/position/set-leverage", lever)
    assert (again["retCode"], again["retMsg"]) == (110043, "Set leverage not modified")
    await client.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                           "orderType": "Market", "qty": "0.010"})
    [position] = (await client.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))["result"]["list"]
    assert position["leverage"] == "5"
    assert float(position["positionIM"]) == pytest.approx(float(position["positionValue"]) / 5)
    for buy, sell, words in (("5", "6", "must be the same"), ("0.5", "0.5", "must be in [1, 100]"),
                             ("101", "101", "must be in [1, 100]"), ("x", "x", "not a number")):
        refused = await client.post("/v5/position/set-leverage", {**lever, "buyLeverage": buy, "sellLeverage": sell})
        assert refused["retCode"] == 10001 and words in refused["retMsg"]


async def test_closed_pnl_per_closing_order_from_its_fills(venue):
    _server, client, _ = venue
    await client.post("/v5/order/create", {"category": "linear", "symbol": "ETHUSDT", "side": "Buy",
                                           "orderType": "Market", "qty": "0.50", "orderLinkId": "open"})
    await client.post("/v5/order/create", {"category": "linear", "symbol": "ETHUSDT", "side": "Sell",
                                           "orderType": "Market", "qty": "0.50", "orderLinkId": "close"})
    fills = (await client.get("/v5/execution/list", "category=linear&symbol=ETHUSDT"))["result"]["list"]
    opening = [f for f in fills if f["orderLinkId"] == "open"]
    closing = [f for f in fills if f["orderLinkId"] == "close"]
    [row] = (await client.get("/v5/position/closed-pnl", "category=linear&symbol=ETHUSDT"))["result"]["list"]
    assert (row["side"], row["closedSize"], row["qty"], row["fillCount"]) == ("Sell", "0.50", "0.50", str(len(closing)))
    entry = sum(float(f["execValue"]) for f in opening)
    exit_ = sum(float(f["execValue"]) for f in closing)
    assert float(row["cumEntryValue"]) == pytest.approx(entry) and float(row["cumExitValue"]) == pytest.approx(exit_)
    assert float(row["avgEntryPrice"]) == pytest.approx(entry / 0.5)
    # the long's PnL after the closing fills' fees, as the position's realised PnL counts them
    assert float(row["closedPnl"]) == pytest.approx(exit_ - entry - sum(float(f["execFee"]) for f in closing))
    doc = {"symbol": "", "orderType": "", "leverage": "", "updatedTime": "", "side": "", "orderId": "",
           "closedPnl": "", "avgEntryPrice": "", "qty": "", "cumEntryValue": "", "createdTime": "", "orderPrice": "",
           "closedSize": "", "avgExitPrice": "", "execType": "", "fillCount": "", "cumExitValue": ""}
    assert types(row) == types(doc)  # the documented fields, all strings
    assert (await client.get("/v5/position/closed-pnl", "category=linear&symbol=BTCUSDT"))["result"]["list"] == []


async def test_coin_information_lists_usdt_and_each_base_coin(venue):
    _, client, _ = venue
    rows = (await client.get("/v5/asset/coin/query-info"))["result"]["rows"]
    assert [r["coin"] for r in rows] == ["USDT", "BTC", "ETH"] and all(r["chains"] for r in rows)
    assert [r["coin"] for r in (await client.get("/v5/asset/coin/query-info", "coin=ETH"))["result"]["rows"]] == ["ETH"]


async def test_private_stream_refuses_a_bad_signature_and_subscriptions_before_auth(venue):
    _, client, now = venue
    ws = await client.session.ws_connect(f"{client.base.replace('http', 'ws')}/v5/private")
    await ws.send_json({"op": "subscribe", "args": ["order"]})
    assert (await ws.receive_json(timeout=5))["success"] is False
    await ws.send_json({"op": "auth", "args": [KEY, int(now[0] * 1000) + 1000, "0" * 64]})
    refused = await ws.receive_json(timeout=5)
    assert (refused["op"], refused["success"], refused["ret_msg"]) == ("auth", False, "Params Error")
    await ws.close()
    ws = await client.private()
    await ws.send_json({"op": "subscribe", "args": ["orders"]})
    unknown = await ws.receive_json(timeout=5)
    assert unknown["success"] is False and "orders" in unknown["ret_msg"]
    await ws.send_json({"req_id": "p1", "op": "ping"})
    pong = await ws.receive_json(timeout=5)
    assert (pong["op"], pong["req_id"], pong["args"]) == ("pong", "p1", [str(T0)])
    await ws.close()


async def test_resting_orders_fill_as_the_market_trades_and_are_pushed(venue):
    server, client, now = venue
    ws = await client.private()
    state = server.model.states["BTCUSDT"]
    bid = max(state.bids)
    answer = await client.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                                    "orderType": "Limit", "qty": "0.001", "price": f"{bid / 10:.1f}"})
    await pushes(ws, 2)
    for _ in range(2000):  # the market trades on; sooner or later sellers reach the bid
        now[0] += 0.05
        server.step()
        order = server.matching.account(KEY).orders[answer["result"]["orderId"]]
        if order.status == "Filled":
            break
    assert order.status == "Filled"
    seen = {}
    while "execution" not in seen:
        seen.update(await pushes(ws, 1))
    assert seen["execution"]["data"][0]["isMaker"] is True
    await ws.close()


async def test_an_order_amended_smaller_keeps_its_place_and_amended_across_the_book_takes(venue):
    server, client, _ = venue
    ws = await client.private()
    state = server.model.states["BTCUSDT"]
    bid, ask = max(state.bids), min(state.asks)  # in ticks of 0.1
    placed = await client.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                                    "orderType": "Limit", "qty": "0.004", "price": f"{bid / 10:.1f}",
                                                    "orderLinkId": "am-1"})
    await pushes(ws, 2)
    order = server.matching.account(KEY).orders[placed["result"]["orderId"]]
    ahead = order.queue_ahead
    smaller = await client.post("/v5/order/amend", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "am-1",
                                                    "qty": "0.002"})
    assert smaller["retCode"] == 0 and smaller["result"] == {"orderId": order.order_id, "orderLinkId": "am-1"}
    pushed = (await pushes(ws, 1))["order"]["data"][0]
    assert (pushed["qty"], pushed["orderStatus"], order.queue_ahead) == ("0.002", "New", ahead)
    same = await client.post("/v5/order/amend", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "am-1",
                                                 "qty": "0.002"})
    assert same["retCode"] == 10001 and "unchanged" in same["retMsg"]
    taking = await client.post("/v5/order/amend", {"category": "linear", "symbol": "BTCUSDT",
                                                   "orderId": order.order_id, "price": f"{ask / 10:.1f}"})
    assert taking["retCode"] == 0
    listed = (await client.get("/v5/order/realtime", "category=linear&orderLinkId=am-1"))["result"]["list"][0]
    assert (listed["orderStatus"], float(listed["price"]), listed["cumExecQty"]) == ("Filled", ask / 10, "0.002")
    fills = (await client.get("/v5/execution/list", "category=linear&orderLinkId=am-1"))["result"]["list"]
    assert fills and all(f["isMaker"] is False for f in fills)
    gone = await client.post("/v5/order/amend", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "am-1",
                                                 "qty": "0.003"})
    assert (gone["retCode"], gone["retMsg"]) == (110001, "order not exists or too late to replace")
    await ws.close()


async def test_a_dropped_answer_leaves_an_order_the_client_can_find_by_its_link_id(venue):
    server, client, _ = venue
    server.faults.apply({"drop_order_responses": 1})
    order = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.001",
             "orderLinkId": "ambiguous-1"}
    with pytest.raises(aiohttp.ClientError):
        await client.post("/v5/order/create", order)
    found = await client.get("/v5/order/realtime", "category=linear&orderLinkId=ambiguous-1")
    assert found["result"]["list"][0]["orderStatus"] == "Filled"
    assert (await client.post("/v5/order/create", order))["retCode"] == 110072  # a resend cannot double it


async def test_unfilled_and_partial_fill_faults(venue):
    server, client, _ = venue
    order = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.010"}
    server.faults.apply({"unfilled": True})
    first = await client.post("/v5/order/create", order)
    listed = await client.get("/v5/order/realtime", f"category=linear&orderId={first['result']['orderId']}")
    assert listed["result"]["list"][0]["orderStatus"] == "New"
    server.faults.apply({"unfilled": False, "partial_fill_fraction": 0.3})
    second = await client.post("/v5/order/create", order)
    listed = await client.get("/v5/order/realtime", f"category=linear&orderId={second['result']['orderId']}")
    assert (listed["result"]["list"][0]["cumExecQty"], listed["result"]["list"][0]["orderStatus"]) == (
        "0.003", "Cancelled")


async def test_the_rate_limit_fault_answers_10006_past_r_requests_a_second(venue):
    server, client, _ = venue
    server.faults.apply({"rate_limit_per_s": 2})
    codes = [(await client.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))["retCode"]
             for _ in range(3)]
    assert codes == [0, 0, 10006]


async def test_concurrent_orders_are_all_accounted_for(venue):
    _server, client, _ = venue
    order = {"category": "linear", "symbol": "ETHUSDT", "side": "Buy", "orderType": "Market", "qty": "0.01"}
    answers = await asyncio.gather(*(client.post("/v5/order/create", {**order, "orderLinkId": f"c-{i}"})
                                     for i in range(10)))
    assert [a["retCode"] for a in answers] == [0] * 10
    position = (await client.get("/v5/position/list", "category=linear&symbol=ETHUSDT"))["result"]["list"][0]
    assert position["size"] == "0.10"
