"""Trading OKX V5 swaps against the simulator with a client written from OKX's documentation
as protocol-trading-okx-bitget-binance.md §2 gives it: REST signed with base64(HMAC-SHA256(
secret, ISO timestamp + METHOD + path?query + body)) and a passphrase, sizes in contracts,
per-item sCodes, and the private stream's login, subscriptions and pushes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
import pytest

from services.sim.book_view import ShiftedBook
from services.sim.market import MarketModel
from services.sim.server import SimServer
from tests.conftest import serve_app

KEY, SECRET, PASSPHRASE = "okx-doc-key", "okx-doc-secret", "okx-doc-passphrase"
T0 = 1_800_000_000_000
BTC = "BTC-USDT-SWAP"
CT_VAL = Decimal("0.01")  # BTC-USDT-SWAP: one contract is 0.01 BTC
TAKER, MAKER = Decimal("0.0005"), Decimal("0.0002")


def okx_sign(secret: str, prehash: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()).decode()


def iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


class OkxDocClient:
    """What a user would write from https://www.okx.com/docs-v5/en/#overview-rest-authentication."""

    def __init__(self, session: aiohttp.ClientSession, base: str, clock) -> None:
        self.session, self.base, self.clock = session, base, clock

    def headers(self, method: str, path: str, body: str = "", **change: str | None) -> dict[str, str]:
        ts = change.pop("ts", None) or iso(int(self.clock() * 1000))
        signature = okx_sign(change.pop("secret", SECRET), ts + method + path + body)
        headers = {"OK-ACCESS-KEY": KEY, "OK-ACCESS-SIGN": signature, "OK-ACCESS-TIMESTAMP": ts,
                   "OK-ACCESS-PASSPHRASE": PASSPHRASE, "Content-Type": "application/json",
                   "x-simulated-trading": "1"}  # accepted, not checked: the simulator is one environment
        for name, value in change.items():
            if value is None:
                del headers[name]
            else:
                headers[name] = value
        return headers

    async def get(self, path: str, query: str = "", **change) -> tuple[int, dict]:
        target = f"{path}?{query}" if query else path
        async with self.session.get(self.base + target, headers=self.headers("GET", target, **change)) as response:
            return response.status, await response.json()

    async def post(self, path: str, body: dict, **change) -> tuple[int, dict]:
        text = json.dumps(body)
        async with self.session.post(self.base + path, data=text,
                                     headers=self.headers("POST", path, text, **change)) as response:
            return response.status, await response.json()

    async def order(self, **fields) -> dict:
        body = {"instId": BTC, "tdMode": "cross", "side": "buy", "posSide": "long", "ordType": "market", "sz": "1",
                **fields}
        return (await self.post("/api/v5/trade/order", {k: v for k, v in body.items() if v is not None}))[1]

    async def login(self, **change) -> tuple[aiohttp.ClientWebSocketResponse, dict]:
        ws = await self.session.ws_connect(f"{self.base.replace('http', 'ws')}/ws/v5/private")
        ts = change.get("timestamp") or str(int(self.clock()))
        sign = okx_sign(change.get("secret", SECRET), ts + "GET" + "/users/self/verify")
        await ws.send_json({"op": "login", "args": [{"apiKey": change.get("apiKey", KEY), "timestamp": ts,
                                                     "passphrase": change.get("passphrase", PASSPHRASE),
                                                     "sign": sign}]})
        return ws, await ws.receive_json(timeout=5)

    async def private(self) -> aiohttp.ClientWebSocketResponse:
        ws, answer = await self.login()
        assert answer["event"] == "login" and answer["code"] == "0"
        await ws.send_json({"id": "s1", "op": "subscribe", "args": [
            {"channel": "orders", "instType": "SWAP"}, {"channel": "positions", "instType": "SWAP"},
            {"channel": "account", "ccy": "USDT"}]})
        answers = [await ws.receive_json(timeout=5) for _ in range(5)]  # each ack, and the snapshots after theirs
        assert [(a.get("id"), a.get("event"), a["arg"]["channel"]) for a in answers] == [
            ("s1", "subscribe", "orders"), ("s1", "subscribe", "positions"), (None, None, "positions"),
            ("s1", "subscribe", "account"), (None, None, "account")]
        assert answers[2]["eventType"] == "snapshot" and answers[2]["data"] == []
        assert answers[4]["data"][0]["details"][0]["ccy"] == "USDT"
        return ws


@pytest.fixture
async def venue():
    now = [T0 / 1000]
    server = SimServer(["BTCUSDT", "ETHUSDT"], seed=5, step_ms=10_000_000, clock=lambda: now[0],
                       api_keys={KEY: SECRET}, api_passphrases={KEY: PASSPHRASE})
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as session:
        yield server, OkxDocClient(session, base, lambda: now[0]), now


async def next_push(ws, channel: str, where=lambda m: True) -> dict:
    """The next push of `channel` that satisfies `where` (other pushes skipped)."""
    while True:
        message = await ws.receive_json(timeout=5)
        if message.get("arg", {}).get("channel") == channel and "data" in message and where(message):
            return message


def test_the_signature_helper_matches_the_documented_known_answer():
    prehash = "2020-12-08T09:08:57.715Z" + "GET" + "/api/v5/account/balance"
    assert okx_sign("chNOOS4KvNXR_Xq4k4c9qsfoKWvnDecLATCRlcBwyKDYnWgO", prehash) == (
        "PJ61e1nb2F2Qd7D8SPiaIcx2gjdELc+o0ygzre9z33k=")
    assert iso(1607418537715) == "2020-12-08T09:08:57.715Z"


async def test_a_signed_request_is_accepted_and_each_auth_fault_gets_okxs_code(venue):
    _, client, now = venue
    status, balance = await client.get("/api/v5/account/balance", "ccy=USDT")
    assert (status, balance["code"], balance["msg"]) == (200, "0", "")
    assert balance["data"][0]["details"][0]["cashBal"] == "100000"
    ms = int(now[0] * 1000)
    refusals = {
        "50103": {"OK-ACCESS-KEY": None}, "50104": {"OK-ACCESS-PASSPHRASE": None},
        "50106": {"OK-ACCESS-SIGN": None}, "50107": {"OK-ACCESS-TIMESTAMP": None},
        "50111": {"OK-ACCESS-KEY": "someone-else"}, "50105": {"OK-ACCESS-PASSPHRASE": "wrong"},
        "50113": {"secret": "not-the-secret"}, "50102": {"ts": iso(ms - 30_001)},
        "50112": {"ts": str(ms)},  # epoch ms instead of ISO-8601
    }
    for code, change in refusals.items():
        status, body = await client.get("/api/v5/account/balance", "ccy=USDT", **change)
        assert (status, body["code"], body["data"]) == (401, code, []), code
    assert (await client.get("/api/v5/account/balance", "ccy=USDT", ts=iso(ms - 29_000)))[1]["code"] == "0"
    assert (await client.get("/api/v5/account/balance", "ccy=USDT", ts=iso(ms + 29_000)))[1]["code"] == "0"
    # the query is part of what is signed: a signature over the bare path does not pass
    target = "/api/v5/account/balance?ccy=USDT"
    headers = client.headers("GET", "/api/v5/account/balance")
    async with client.session.get(client.base + target, headers=headers) as response:
        assert (response.status, (await response.json())["code"]) == (401, "50113")


async def test_place_fill_query_and_cancel_in_contracts(venue):
    server, client, _ = venue
    bought = await client.order(clOrdId="buy1")
    assert bought["code"] == "0" and bought["data"][0]["sCode"] == "0" and bought["data"][0]["clOrdId"] == "buy1"
    order_id = bought["data"][0]["ordId"]
    _, detail = await client.get("/api/v5/trade/order", f"instId={BTC}&clOrdId=buy1")
    order = detail["data"][0]
    assert (order["ordId"], order["state"], order["accFillSz"], order["sz"], order["ordType"], order["posSide"]) == (
        order_id, "filled", "1", "1", "market", "long")
    _, listed = await client.get("/api/v5/trade/fills", f"instType=SWAP&ordId={order_id}")
    fills = listed["data"]
    assert sum(Decimal(f["fillSz"]) for f in fills) == 1 and {f["ordId"] for f in fills} == {order_id}
    for fill in fills:  # taker fee on the base quantity: contracts x ctVal x price, negative when paid
        assert Decimal(fill["fee"]) == -Decimal(fill["fillPx"]) * Decimal(fill["fillSz"]) * CT_VAL * TAKER
        assert fill["execType"] == "T" and fill["side"] == "buy"
    paid = sum(Decimal(f["fee"]) for f in fills)
    _, positions = await client.get("/api/v5/account/positions", f"instType=SWAP&instId={BTC}")
    assert [(p["posSide"], p["pos"], p["instId"]) for p in positions["data"]] == [("long", "1", BTC)]
    assert Decimal(positions["data"][0]["avgPx"]) == Decimal(order["avgPx"])
    _, balance = await client.get("/api/v5/account/balance")
    assert Decimal(balance["data"][0]["details"][0]["cashBal"]) == 100_000 + paid
    # one contract is 0.01 BTC in the engine, on the OKX account only
    assert server.okx_matching.account(KEY).positions[("BTCUSDT", 1)].lots * Decimal("0.001") == CT_VAL
    assert not server.matching.account(KEY).positions

    bid = Decimal(max(server.okx_matching.view.sides(server.model.states["BTCUSDT"])[0])) / 10
    resting = await client.order(ordType="limit", px=str(bid - 100), sz="0.5", clOrdId="rest1")
    assert resting["data"][0]["sCode"] == "0"
    _, pending = await client.get("/api/v5/trade/orders-pending", "instType=SWAP")
    assert [(o["clOrdId"], o["state"], o["sz"], o["px"]) for o in pending["data"]] == [
        ("rest1", "live", "0.5", str(bid - 100))]
    _, cancelled = await client.post("/api/v5/trade/cancel-order", {"instId": BTC, "clOrdId": "rest1"})
    assert cancelled["code"] == "0" and cancelled["data"][0]["sCode"] == "0"
    _, detail = await client.get("/api/v5/trade/order", f"instId={BTC}&clOrdId=rest1")
    assert (detail["data"][0]["state"], detail["data"][0]["cancelSource"]) == ("canceled", "1")
    _, again = await client.post("/api/v5/trade/cancel-order", {"instId": BTC, "clOrdId": "rest1"})
    assert (again["code"], again["data"][0]["sCode"]) == ("1", "51400")
    assert (await client.get("/api/v5/trade/orders-pending", "instType=SWAP"))[1]["data"] == []
    _, missing = await client.get("/api/v5/trade/order", f"instId={BTC}&ordId=12345")
    assert (missing["code"], missing["data"]) == ("51603", [])


async def test_orders_trade_on_okxs_book_where_a_forced_spread_is_really_there(venue):
    server, client, now = venue
    state = server.model.states["BTCUSDT"]
    async with client.session.post(client.base + "/admin/opportunity", json={
            "symbol": "BTCUSDT", "venue": "okx", "spread_bps": 50, "seconds": 60}) as response:
        assert response.status == 200
    now[0] += 1
    server.step()
    bybit_ask = Decimal(min(state.asks)) / 10
    bought = await client.order(sz="2")
    _, detail = await client.get("/api/v5/trade/order", f"instId={BTC}&ordId={bought['data'][0]['ordId']}")
    assert Decimal(detail["data"][0]["avgPx"]) >= bybit_ask * Decimal("1.0045")  # 50 bps above Bybit, to the tick


def test_okxs_book_is_the_models_shifted_with_okxs_own_trades_and_takers_leave_a_hole_until_the_next_step():
    model = MarketModel(["BTCUSDT"], seed=3, start_ms=T0)
    model.force("BTCUSDT", "okx", 40, 0.001, T0 + 60_000)
    model.step(T0 + 1000)
    state, view = model.states["BTCUSDT"], ShiftedBook(model, "okx")
    shift = model.venue_shift(state, "okx")
    assert shift == round(state.mid * 0.004) > 0
    bids, asks = view.sides(state)
    assert (min(asks), max(bids)) == (min(state.asks) + shift, max(state.bids) + shift)
    assert (bids, asks) == model.venue_book(state, "okx", len(state.asks))
    assert view.trades(state) is state.venues["okx"].trades and view.trades(state) is not state.trades
    assert view.mark_ticks(state) == round(state.mid * 1.004)
    assert view.last_ticks(state) == state.last_ticks + shift
    asks.pop(min(asks))  # a taker took the best ask
    assert view.sides(state)[1] is asks and min(view.sides(state)[1]) > min(state.asks) + shift
    model.step(T0 + 2000)
    assert min(view.sides(state)[1]) == min(state.asks) + model.venue_shift(state, "okx")


async def test_a_resting_order_fills_as_okxs_market_trades_and_is_pushed_as_a_maker_fill(venue):
    server, client, now = venue
    ws = await client.private()
    bid = Decimal(max(server.okx_matching.view.sides(server.model.states["BTCUSDT"])[0])) / 10
    placed = await client.order(ordType="limit", px=str(bid), clOrdId="maker1")
    assert (await next_push(ws, "orders"))["data"][0]["state"] == "live"
    order = server.okx_matching.account(KEY).orders[placed["data"][0]["ordId"]]
    for _ in range(2000):  # the market trades on; sooner or later sellers reach the bid
        now[0] += 0.05
        server.step()
        if order.status == "Filled":
            break
    assert order.status == "Filled"
    fill = (await next_push(ws, "orders", lambda m: m["data"][0]["tradeId"] != ""))["data"][0]
    assert (fill["execType"], fill["fillPx"], fill["ordType"]) == ("M", str(bid), "limit")
    assert Decimal(fill["fillFee"]) == -bid * Decimal(fill["fillSz"]) * CT_VAL * MAKER
    await ws.close()


async def test_post_only_that_would_take_is_accepted_then_canceled_with_cancel_source_31(venue):
    server, client, _ = venue
    ws = await client.private()
    ask = Decimal(min(server.okx_matching.view.sides(server.model.states["BTCUSDT"])[1])) / 10
    placed = await client.order(ordType="post_only", px=str(ask), clOrdId="po1")
    assert (placed["code"], placed["data"][0]["sCode"]) == ("0", "0")
    _, detail = await client.get("/api/v5/trade/order", f"instId={BTC}&clOrdId=po1")
    assert (detail["data"][0]["state"], detail["data"][0]["cancelSource"], detail["data"][0]["accFillSz"]) == (
        "canceled", "31", "0")
    push = (await next_push(ws, "orders"))["data"][0]
    assert (push["clOrdId"], push["state"], push["cancelSource"]) == ("po1", "canceled", "31")
    await ws.close()


async def test_refusals_carry_okxs_scodes_per_item(venue):
    _, client, _ = venue
    cases = [({"sz": "0.05"}, "51020"), ({"sz": "1.05"}, "51121"), ({"posSide": None}, "51000"),
             ({"side": "sell", "posSide": "long"}, "51169"), ({"sz": "9000"}, "51008"),
             ({"ordType": "limit"}, "51204")]
    for fields, code in cases:
        answer = await client.order(clOrdId="x1", **fields)
        assert (answer["code"], answer["msg"]) == ("1", "All operations failed"), fields
        item = answer["data"][0]
        assert (item["sCode"], item["clOrdId"], item["ordId"]) == (code, "x1", ""), fields
        assert item["sMsg"]
    assert (await client.order(sz="1"))["data"][0]["sCode"] == "0"
    too_much = await client.order(side="sell", posSide="long", sz="1.5")  # closes more than the long holds
    assert too_much["data"][0]["sCode"] == "51112"
    assert (await client.order(side="sell", posSide="long", sz="1"))["data"][0]["sCode"] == "0"


async def test_a_client_order_id_is_unique_among_pending_orders_only(venue):
    server, client, _ = venue
    bid = Decimal(max(server.okx_matching.view.sides(server.model.states["BTCUSDT"])[0])) / 10
    resting = {"ordType": "limit", "px": str(bid - 200), "clOrdId": "dup1"}
    first = await client.order(**resting)
    assert first["data"][0]["sCode"] == "0"
    assert (await client.order(**resting))["data"][0]["sCode"] == "51016"
    await client.post("/api/v5/trade/cancel-order", {"instId": BTC, "ordId": first["data"][0]["ordId"]})
    third = await client.order(**resting)
    assert third["data"][0]["sCode"] == "0"
    _, latest = await client.get("/api/v5/trade/order", f"instId={BTC}&clOrdId=dup1")
    assert (latest["data"][0]["ordId"], latest["data"][0]["state"]) == (third["data"][0]["ordId"], "live")


async def test_place_order_is_limited_to_60_per_2_s_per_instrument(venue):
    server, client, now = venue
    codes = [(await client.order(sz="0.05"))["data"][0]["sCode"] for _ in range(60)]  # refused, still counted
    assert set(codes) == {"51020"}
    body = {"instId": BTC, "tdMode": "cross", "side": "buy", "posSide": "long", "ordType": "market", "sz": "1"}
    status, limited = await client.post("/api/v5/trade/order", body)
    assert (status, limited["code"], limited["data"]) == (429, "50011", [])
    assert "Rate limit reached" in limited["msg"]
    other = await client.order(instId="ETH-USDT-SWAP")
    assert other["data"][0]["sCode"] == "0"  # another instrument has its own count
    now[0] += 2.001
    assert (await client.order())["data"][0]["sCode"] == "0"
    server.faults.apply({"rate_limit_per_s": 2})
    codes = [(await client.get("/api/v5/account/positions", "instType=SWAP"))[1]["code"] for _ in range(3)]
    assert codes == ["0", "0", "50011"]


async def test_private_stream_pushes_an_orders_fill_its_position_and_the_balance(venue):
    _, client, _ = venue
    ws = await client.private()
    placed = await client.order(clOrdId="ws1", sz="2")
    order_id = placed["data"][0]["ordId"]
    fills = []
    while sum(Decimal(f["fillSz"]) for f in fills) < 2:
        push = await next_push(ws, "orders")
        assert push["arg"]["instType"] == "SWAP" and push["arg"]["uid"]
        fills.append(push["data"][0])
    assert {f["ordId"] for f in fills} == {order_id} and fills[-1]["state"] == "filled"
    assert fills[-1]["accFillSz"] == "2"
    for fill in fills:
        assert fill["tradeId"] and fill["execType"] == "T" and fill["fillFeeCcy"] == "USDT"
        assert Decimal(fill["fillFee"]) == -Decimal(fill["fillPx"]) * Decimal(fill["fillSz"]) * CT_VAL * TAKER
    position = await next_push(ws, "positions")
    assert position["eventType"] == "event_update"
    assert [(p["instId"], p["posSide"], p["pos"]) for p in position["data"]] == [(BTC, "long", "2")]
    account = await next_push(ws, "account")
    _, balance = await client.get("/api/v5/account/balance")
    assert account["data"][0]["details"][0]["cashBal"] == balance["data"][0]["details"][0]["cashBal"]
    await ws.send_str("ping")
    assert await ws.receive_str(timeout=5) == "pong"
    await ws.close()


async def test_private_stream_login_refusals_and_subscribing_before_login(venue):
    _, client, now = venue
    ws = await client.session.ws_connect(f"{client.base.replace('http', 'ws')}/ws/v5/private")
    await ws.send_json({"id": "e1", "op": "subscribe", "args": [{"channel": "orders", "instType": "SWAP"}]})
    early = await ws.receive_json(timeout=5)
    assert (early["event"], early["code"], early["id"]) == ("error", "60011", "e1")
    await ws.close()
    refusals = {"60024": {"passphrase": "wrong"}, "60005": {"apiKey": "nobody"}, "60007": {"secret": "nope"},
                "60006": {"timestamp": str(int(now[0]) - 31)}, "60004": {"timestamp": str(int(now[0]) + 31)}}
    for code, change in refusals.items():
        ws, answer = await client.login(**change)
        assert (answer["event"], answer["code"]) == ("error", code), code
        await ws.close()
    ws, answer = await client.login(timestamp=str(int(now[0]) - 29))
    assert (answer["event"], answer["code"], answer["msg"]) == ("login", "0", "") and answer["connId"]
    await ws.close()


async def test_funding_settles_at_okxs_rate_and_shows_in_the_bills(venue):
    server, client, now = venue
    state = server.model.states["BTCUSDT"]
    server.model.force("BTCUSDT", "okx", 0, 0.004, int(now[0] * 1000) + 86_400_000)  # OKX funds 40 bps above
    now[0] += 1
    server.step()
    assert (await client.order(sz="3"))["data"][0]["sCode"] == "0"
    settle = server.model.next_funding_ms("BTCUSDT")
    now[0] = settle / 1000 + 0.5
    server.step()
    rate = Decimal(f"{server.model.venue_funding(state, 'okx'):.8f}")
    assert rate - Decimal(f"{state.fundings[-1][1]:.8f}") > Decimal("0.003")  # not Bybit's rate
    _, bills = await client.get("/api/v5/account/bills", "instType=SWAP&type=8")
    assert len(bills["data"]) == 1
    bill = bills["data"][0]
    assert (bill["type"], bill["subType"], bill["instId"], bill["sz"], bill["ccy"]) == ("8", "173", BTC, "3", "USDT")
    assert Decimal(bill["balChg"]) == -Decimal(bill["px"]) * 3 * CT_VAL * rate  # a long pays a positive rate
    assert bill["pnl"] == bill["balChg"] and bill["billId"] and bill["ts"] == str(int(now[0] * 1000))
    _, positions = await client.get("/api/v5/account/positions", "instType=SWAP")
    assert positions["data"][0]["fundingFee"] == bill["balChg"]
    _, balance = await client.get("/api/v5/account/balance")
    assert balance["data"][0]["details"][0]["cashBal"] == bill["bal"]
    _, archive = await client.get("/api/v5/account/bills-archive", "instType=SWAP&type=8&begin=0")
    assert archive["data"] == bills["data"]
    _, trades = await client.get("/api/v5/account/bills", "instType=SWAP&type=2")
    assert trades["data"] and {b["subType"] for b in trades["data"]} == {"3"}  # open long


async def test_a_dropped_answer_leaves_the_order_carried_out(venue):
    server, client, _ = venue
    server.faults.apply({"drop_order_responses": 1})
    with pytest.raises(aiohttp.ClientError):
        await client.order(clOrdId="lost1")
    _, found = await client.get("/api/v5/trade/order", f"instId={BTC}&clOrdId=lost1")
    assert (found["data"][0]["state"], found["data"][0]["accFillSz"]) == ("filled", "1")
    assert server.journal[-2].dropped and server.journal[-2].link_id == "lost1"


async def test_the_journal_counts_a_long_short_mode_close_as_reduce_only_though_it_sends_no_flag(venue):
    # OKX takes no reduceOnly in long/short mode: a sell on the long side (a buy on the short) only
    # closes; the reliability suite's "unwinds sent reduce-only" reads the journal
    server, client, _ = venue
    for side, pos_side in (("buy", "long"), ("sell", "short"), ("sell", "long"), ("buy", "short")):
        assert (await client.order(side=side, posSide=pos_side))["code"] == "0"
    assert [q.reduce_only for q in server.journal if q.path == "/api/v5/trade/order"] == [False, False, True, True]


async def test_reject_and_fill_faults_on_okx(venue):
    server, client, _ = venue
    server.faults.apply({"reject_next": 1, "reject_code": 110007})  # Bybit's code, answered as OKX's
    refused = await client.order()
    assert (refused["code"], refused["data"][0]["sCode"]) == ("1", "51008")
    server.faults.apply({"reject_next": 1, "reject_code": 10016})
    status, down = await client.get("/api/v5/account/positions", "instType=SWAP")
    assert (status, down["code"]) == (500, "50026")
    server.faults.apply({"reject_link_ids": "E2$", "reject_code": 51008})
    assert (await client.order(clOrdId="t1E2"))["data"][0]["sCode"] == "51008"
    assert (await client.order(clOrdId="t1E1"))["data"][0]["sCode"] == "0"
    server.faults.apply({"reject_link_ids": None, "partial_fill_fraction": 0.5, "partial_fill_orders": 1})
    half = await client.order(sz="1", clOrdId="half1")
    _, detail = await client.get("/api/v5/trade/order", f"instId={BTC}&clOrdId=half1")
    assert (detail["data"][0]["accFillSz"], detail["data"][0]["state"]) == ("0.5", "canceled")
    assert detail["data"][0]["cancelSource"] == "14"  # the rest of a market (IOC) order
    assert half["data"][0]["sCode"] == "0"


async def test_net_mode_and_account_settings(venue):
    server, client, _ = venue
    _, config = await client.get("/api/v5/account/config")
    assert (config["data"][0]["posMode"], config["data"][0]["acctLv"], config["data"][0]["perm"]) == (
        "long_short_mode", "2", "read_only,trade")
    server.faults.apply({"key_wallet": True})
    assert (await client.get("/api/v5/account/config"))[1]["data"][0]["perm"] == "read_only,withdraw,trade"
    _, mode = await client.post("/api/v5/account/set-position-mode", {"posMode": "net_mode"})
    assert (mode["code"], mode["data"]) == ("0", [{"posMode": "net_mode"}])
    assert (await client.order())["data"][0]["sCode"] == "51000"  # posSide long in net mode
    assert (await client.order(posSide=None, sz="1"))["data"][0]["sCode"] == "0"
    assert (await client.order(posSide="net", side="sell", sz="2", reduceOnly=True))["data"][0]["sCode"] == "51112"
    assert (await client.order(posSide="net", side="sell", sz="3"))["data"][0]["sCode"] == "0"
    _, positions = await client.get("/api/v5/account/positions", "instType=SWAP")
    assert [(p["posSide"], p["pos"]) for p in positions["data"]] == [("net", "-2")]
    _, busy = await client.post("/api/v5/account/set-position-mode", {"posMode": "long_short_mode"})
    assert busy["code"] == "59000"
    _, lever = await client.post("/api/v5/account/set-leverage", {"instId": BTC, "lever": "5", "mgnMode": "cross"})
    assert lever["data"] == [{"lever": "5", "mgnMode": "cross", "instId": BTC, "posSide": ""}]
    assert (await client.get("/api/v5/account/positions", "instType=SWAP"))[1]["data"][0]["lever"] == "5"
    _, fee = await client.get("/api/v5/account/trade-fee", "instType=SWAP")
    assert (fee["data"][0]["takerU"], fee["data"][0]["makerU"]) == ("-0.0005", "-0.0002")


async def test_concurrent_okx_orders_are_all_accounted_for(venue):
    _, client, _ = venue
    answers = await asyncio.gather(*(client.order(instId="ETH-USDT-SWAP", clOrdId=f"c{i}") for i in range(10)))
    assert [a["data"][0]["sCode"] for a in answers] == ["0"] * 10
    _, positions = await client.get("/api/v5/account/positions", "instType=SWAP&instId=ETH-USDT-SWAP")
    assert positions["data"][0]["pos"] == "10"
