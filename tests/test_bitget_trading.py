"""The Bitget trading client's pure parts (shared/venues/bitget/trading.py, private.py): sizes
on the lot grid (a property test), prices on the tick, the order body per hedge direction,
client ids, and the demo's product type found by `prepare`."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from shared.instruments import Instrument
from shared.venues.bitget.private import floor_size, grid_price
from shared.venues.bitget.trading import BitgetTrading, client_id, order_request, order_size
from shared.venues.trading import OrderSpec, Refused
from tests.conftest import serve_app

BTC = Instrument(venue="bitget", symbol="BTCUSDT", venue_symbol="BTCUSDT", tick=Decimal("0.1"),
                 lot=Decimal("0.001"), min_size=Decimal("0.001"))
LINK = "a1b2c3d4e5f6-LE1"

lots = st.sampled_from([Decimal("0.001"), Decimal("0.01"), Decimal("1"), Decimal("5"), Decimal("0.0001")])
quantities = st.decimals(min_value=Decimal("-1"), max_value=Decimal("100000"), places=8, allow_nan=False,
                         allow_infinity=False)


@given(quantities, lots, st.sampled_from([Decimal(0), Decimal("1"), Decimal("3")]))
def test_a_size_is_floored_onto_the_lot_grid_and_never_more_than_asked(qty, lot, min_lots):
    inst = Instrument(venue="bitget", symbol="XUSDT", venue_symbol="XUSDT", lot=lot, min_size=lot * min_lots)
    size, short = order_size(qty, None, inst, None)
    assert size == floor_size(qty, lot) and size % lot == 0 and size >= 0
    if qty > 0:
        assert size <= qty < size + lot  # the largest multiple of the lot not above the quantity
    assert (short == "") == (size >= max(inst.min_size, lot))


@given(st.decimals(min_value=Decimal("0.001"), max_value=Decimal("1000"), places=3),
       st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2),
       st.sampled_from([Decimal(5), Decimal(0)]))
def test_an_opening_order_under_the_minimum_notional_is_short_and_a_close_is_not(qty, price, minimum):
    size, short = order_size(qty, price, BTC, minimum)
    assert bool(short) == (size < BTC.min_size or size * price < minimum)
    assert order_size(qty, price, BTC, minimum, opens=False)[1] == ("" if size >= BTC.lot else short)


@given(st.sampled_from([Decimal("0.001"), Decimal("0.004"), Decimal("0.0099")]))
def test_a_close_under_the_minimum_opening_amount_is_sent_and_an_open_is_not(qty):
    eth = Instrument(venue="bitget", symbol="ETHUSDT", venue_symbol="ETHUSDT", lot=Decimal("0.001"),
                     min_size=Decimal("0.01"))  # minTradeNum ten lots: what is left of a position may be less
    assert order_size(qty, None, eth, None, opens=False) == (qty.quantize(Decimal("0.001"), ROUND_DOWN), "")
    assert "under the minimum of 0.01" in order_size(qty, None, eth, None)[1]


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000000"), places=4),
       st.sampled_from([Decimal("0.1"), Decimal("0.5"), Decimal("0.01"), Decimal("5")]))
def test_a_price_goes_on_the_tick_never_worse_for_the_order(price, tick):
    buy, sell = grid_price(price, tick, "Buy"), grid_price(price, tick, "Sell")
    assert buy % tick == 0 and sell % tick == 0
    assert price - tick < buy <= price <= sell < price + tick


def spec(**fields) -> OrderSpec:
    return OrderSpec(**{"link_id": LINK, "symbol": "BTCUSDT", "side": "Buy", "qty": Decimal("0.0123"),
                        "price": Decimal("50000.17"), **fields})


@pytest.mark.parametrize(("fields", "side", "trade_side"), [
    ({"position_side": "long"}, "buy", "open"),  # open long
    ({"side": "Sell", "position_side": "long"}, "buy", "close"),  # close long: buy + close
    ({"side": "Sell", "position_side": "short"}, "sell", "open"),  # open short
    ({"position_side": "short"}, "sell", "close"),  # close short: sell + close
    ({}, "buy", "open"), ({"side": "Sell"}, "sell", "open"),  # no side given: the order opens
    ({"reduce_only": True}, "sell", "close"), ({"side": "Sell", "reduce_only": True}, "buy", "close"),
])
def test_the_order_body_names_the_position_direction_and_open_or_close(fields, side, trade_side):
    body = order_request(spec(**fields), BTC, "a1b2c3d4e5f6LE1", min_notional=Decimal(5))
    assert (body["side"], body["tradeSide"]) == (side, trade_side)
    assert {k: body[k] for k in ("symbol", "productType", "marginMode", "marginCoin", "size", "orderType",
                                 "clientOid", "force")} == {
        "symbol": "BTCUSDT", "productType": "USDT-FUTURES", "marginMode": "crossed", "marginCoin": "USDT",
        "size": "0.012", "orderType": "limit", "clientOid": "a1b2c3d4e5f6LE1", "force": "gtc"}
    assert body["price"] == ("50000.1" if fields.get("side", "Buy") == "Buy" else "50000.2")
    assert "reduceOnly" not in body


def test_market_post_only_and_demo_bodies_and_local_refusals():
    market = order_request(spec(price=None, position_side="long"), BTC, "x", "SUSDT-FUTURES", "SUSDT")
    assert (market["orderType"], market["productType"], market["marginCoin"]) == ("market", "SUSDT-FUTURES", "SUSDT")
    assert "price" not in market and "force" not in market
    assert order_request(spec(tif="post_only"), BTC, "x")["force"] == "post_only"
    assert order_request(spec(tif="IOC"), BTC, "x")["force"] == "ioc"
    for fields, kind in (({"qty": Decimal("0.0009")}, "below_minimum"), ({"price": None, "tif": "post_only"}, "invalid"),
                         ({"reduce_only": True, "position_side": "long"}, "invalid"), ({"qty": Decimal(0)}, "invalid"),
                         ({"qty": Decimal("0.001"), "price": Decimal(100)}, "below_minimum")):
        with pytest.raises(Refused) as refused:
            order_request(spec(**fields), BTC, "x", min_notional=Decimal(5))
        assert (refused.value.code, refused.value.kind) == ("local", kind), fields


def test_client_ids_are_the_link_ids_letters_and_digits_and_map_back():
    assert client_id(LINK) == "a1b2c3d4e5f6LE1"
    for bad in ("", "--", "a" * 33):
        with pytest.raises(ValueError):
            client_id(bad)
    trading = BitgetTrading(None, "http://x", "ws://x", "k", "s", "p", [BTC])
    assert trading.link_id(trading.client_id(LINK)) == LINK
    restarted = BitgetTrading(None, "http://x", "ws://x", "the-key", "the-secret", "the-pass", [BTC])
    assert restarted.link_id("0123456789abLE12") == "0123456789ab-LE12" and restarted.link_id("zz1") == "zz1"
    shown = repr(restarted) + repr(restarted.rest) + repr(restarted.private_stream(None, None))
    assert not any(part in shown for part in ("the-key", "the-secret", "the-pass"))
    with pytest.raises(ValueError):
        BitgetTrading(None, "http://x", "ws://x", "k", "s", "p", [BTC], product_type="COIN-FUTURES")
    assert BitgetTrading.for_account(None, "http://x", "ws://x", ("k", "s", "p"), [BTC], demo=True,
                                     product_type="SUSDT-FUTURES").margin_coin == "SUSDT"


SEEN = web.AppKey("seen", list)


def contracts_app(s_listed: bool) -> web.Application:
    seen: list = []

    async def contracts(request: web.Request) -> web.Response:
        seen.append((request.query["productType"], request.headers.get("paptrading")))
        row = {"baseCoin": "BTC", "quoteCoin": "USDT", "symbolType": "perpetual", "symbolStatus": "normal",
               "pricePlace": "1", "priceEndStep": "5", "sizeMultiplier": "0.01", "minTradeNum": "0.02",
               "minTradeUSDT": "7", "makerFeeRate": "0.0002", "takerFeeRate": "0.0006"}
        if request.query["productType"] == "SUSDT-FUTURES":
            if not s_listed:
                return web.json_response({"code": "40034", "msg": "Parameter productType does not exist",
                                          "data": None}, status=400)
            row = {**row, "symbol": "SBTCSUSDT", "baseCoin": "SBTC", "quoteCoin": "SUSDT"}
        else:
            row = {**row, "symbol": "BTCUSDT"}
        return web.json_response({"code": "00000", "msg": "success", "data": [row]})

    app = web.Application()
    app.router.add_get("/api/v2/mix/market/contracts", contracts)
    app[SEEN] = seen
    return app


@pytest.mark.parametrize(("s_listed", "product", "venue_symbol", "coin"), [
    (True, "SUSDT-FUTURES", "SBTCSUSDT", "SUSDT"), (False, "USDT-FUTURES", "BTCUSDT", "USDT")])
async def test_prepare_on_demo_trades_the_s_contracts_when_bitget_lists_them(s_listed, product, venue_symbol, coin):
    app = contracts_app(s_listed)
    async with serve_app(app) as base, aiohttp.ClientSession() as http:
        trading = BitgetTrading(http, base, "ws://x", "k", "s", "p", [BTC], demo=True)
        await trading.prepare()
    assert (trading.product_type, trading.margin_coin) == (product, coin)
    inst = trading.by_symbol["BTCUSDT"]
    assert (inst.venue_symbol, inst.tick, inst.lot, inst.min_size) == (venue_symbol, Decimal("0.5"), Decimal("0.01"),
                                                                       Decimal("0.02"))
    assert trading.min_notional == {"BTCUSDT": Decimal(7)}
    assert trading.rows.by_venue_symbol == {venue_symbol: inst}
    assert app[SEEN][0] == ("SUSDT-FUTURES", "1") and app[SEEN][-1][0] == product
