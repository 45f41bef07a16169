"""Every venue package: the registry against the folders, instruments lists and symbol mapping,
the real samples' values checked by hand, and recorded captures replayed without an error."""

from __future__ import annotations

import gzip
import itertools
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.events import BookUpdate, Liquidation, Ticker, Trade
from shared.feed import FrameParser, Pong, Resync, SubscribeResult
from shared.instruments import Instrument, SymbolMap, UnknownSymbol
from shared.venues import MODULES, NAMES, UnknownVenue, venue
from shared.venues.protocol import VenueError, VenueFeed
from tests.conftest import BYBIT_SAMPLES, SAMPLES, SHARED

VENUES_DIR = Path(__file__).resolve().parents[1] / "shared" / "venues"


def sample(venue_name: str, name: str) -> bytes:
    return (SAMPLES / venue_name / name).read_bytes()


def capture(venue_name: str, name: str) -> list[bytes]:
    records = [json.loads(line) for line in sample(venue_name, name).decode().splitlines()]
    return [r["data"].encode() for r in records if r["t"] == "recv"]


def events(parser: FrameParser, *frames: bytes) -> list:
    return [item for frame in frames for item in parser.feed(frame, 7)]


# --- instruments as each venue lists them ---------------------------------------------------

def bybit_map(full: bool = False) -> SymbolMap:
    body = (gzip.decompress((BYBIT_SAMPLES / "rest_instruments_info_linear_full_2026-08.json.gz").read_bytes())
            if full else (BYBIT_SAMPLES / "rest_instruments_info_linear_trimmed_2026-08.json").read_bytes())
    return SymbolMap("bybit", venue("bybit").rest.instruments([body]))


def okx_map() -> SymbolMap:
    return SymbolMap("okx", venue("okx").rest.instruments([sample("okx", "rest_public_instruments_SWAP_2022_trimmed.json")]))


def binance_map(*symbols: str, four_hourly: tuple[str, ...] = ()) -> SymbolMap:
    """Binance's lists in the documented shapes (no real exchangeInfo body is in the samples)."""
    info = {"symbols": [
        {"symbol": s, "contractType": "PERPETUAL", "status": "TRADING", "baseAsset": s.removesuffix("USDT"),
         "quoteAsset": "USDT", "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.0010"},
                                           {"filterType": "LOT_SIZE", "stepSize": "1", "minQty": "1"}]}
        for s in symbols] + [
        {"symbol": "BTCUSDT_260925", "contractType": "CURRENT_QUARTER", "status": "TRADING", "baseAsset": "BTC",
         "quoteAsset": "USDT", "filters": []}]}
    funding = [{"symbol": s, "fundingIntervalHours": 4, "adjustedFundingRateCap": "0.02"} for s in four_hourly]
    bodies = [json.dumps(info).encode(), json.dumps(funding).encode()]
    return SymbolMap("binance", venue("binance").rest.instruments(bodies))


def bitget_map() -> SymbolMap:
    """Bitget's contracts list in the documented shape (no real body is in the samples)."""
    body = {"code": "00000", "msg": "success", "data": [
        {"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "symbolType": "perpetual",
         "symbolStatus": "normal", "pricePlace": "1", "priceEndStep": "1", "sizeMultiplier": "0.001",
         "minTradeNum": "0.001", "fundInterval": "8"},
        {"symbol": "UNIUSDT", "baseCoin": "UNI", "quoteCoin": "USDT", "symbolType": "perpetual",
         "symbolStatus": "normal", "pricePlace": "3", "priceEndStep": "1", "sizeMultiplier": "0.1",
         "minTradeNum": "0.1", "fundInterval": "4"}]}
    return SymbolMap("bitget", venue("bitget").rest.instruments([json.dumps(body).encode()]))


def hyperliquid_map() -> SymbolMap:
    """Hyperliquid's meta in the documented shape (no real body is in the samples)."""
    body = {"universe": [{"name": "BTC", "szDecimals": 5, "maxLeverage": 40},
                         {"name": "ETH", "szDecimals": 4, "maxLeverage": 25},
                         {"name": "kPEPE", "szDecimals": 0, "maxLeverage": 10},
                         {"name": "MATIC", "szDecimals": 1, "maxLeverage": 20, "isDelisted": True}]}
    return SymbolMap("hyperliquid", venue("hyperliquid").rest.instruments([json.dumps(body).encode()]))


def gate_map() -> SymbolMap:
    """Gate's USDT contracts in the documented shape (no real body is in the samples)."""
    body = [{"name": "BTC_USDT", "type": "direct", "quanto_multiplier": "0.0001", "order_price_round": "0.1",
             "order_size_min": 1, "funding_interval": 28800, "in_delisting": False},
            {"name": "ETH_USDT", "type": "direct", "quanto_multiplier": "0.01", "order_price_round": "0.05",
             "order_size_min": 1, "funding_interval": 14400, "in_delisting": False},
            {"name": "LUNA_USDT", "type": "direct", "quanto_multiplier": "1", "order_price_round": "0.0001",
             "order_size_min": 1, "funding_interval": 28800, "in_delisting": True}]
    return SymbolMap("gate", venue("gate").rest.instruments([json.dumps(body).encode()]))


def paradex_map() -> SymbolMap:
    """Paradex's markets in the documented shape (no real body is in the samples)."""
    body = {"results": [
        {"symbol": "BTC-USD-PERP", "base_currency": "BTC", "quote_currency": "USD", "settlement_currency": "USDC",
         "order_size_increment": "0.001", "price_tick_size": "0.1", "min_notional": "10", "asset_kind": "PERP",
         "funding_period_hours": 8},
        {"symbol": "ETH-USD-PERP", "base_currency": "ETH", "quote_currency": "USD", "settlement_currency": "USDC",
         "order_size_increment": "0.01", "price_tick_size": "0.01", "min_notional": "10", "asset_kind": "PERP",
         "funding_period_hours": 8},
        {"symbol": "BTC-USD-100000-C", "base_currency": "BTC", "quote_currency": "USD",
         "settlement_currency": "USDC", "order_size_increment": "0.001", "price_tick_size": "5",
         "asset_kind": "PERP_OPTION"}]}
    return SymbolMap("paradex", venue("paradex").rest.instruments([json.dumps(body).encode()]))


def kucoin_map() -> SymbolMap:
    """KuCoin's active contracts in the documented shape (no real body is in the samples)."""
    def row(symbol, base, multiplier, tick, kind="FFWCSX", status="Open"):
        return {"symbol": symbol, "rootSymbol": "USDT", "type": kind, "baseCurrency": base, "quoteCurrency": "USDT",
                "settleCurrency": "USDT", "multiplier": multiplier, "lotSize": 1, "tickSize": tick, "status": status,
                "isInverse": False, "fundingRateGranularity": 28800000}
    body = {"code": "200000", "data": [row("XBTUSDTM", "XBT", 0.001, 0.1), row("ETHUSDTM", "ETH", 0.01, 0.01),
                                       row("XBTMH26", "XBT", 0.001, 0.1, kind="FFICSX"),
                                       row("LUNAUSDTM", "LUNA", 1, 0.0001, status="Closed")]}
    return SymbolMap("kucoin", venue("kucoin").rest.instruments([json.dumps(body).encode()]))


# --- the shape of the code --------------------------------------------------------------------

def test_the_registry_lists_exactly_the_venue_folders_and_each_has_the_same_modules():
    folders = sorted(p.name for p in VENUES_DIR.iterdir() if (p / "__init__.py").is_file())
    assert sorted(NAMES) == folders
    for name in NAMES:
        modules = {p.stem for p in (VENUES_DIR / name).glob("*.py")}
        assert set(MODULES) <= modules, f"{name} lacks {set(MODULES) - modules}"
        v = venue(name)
        assert issubclass(v.feed, VenueFeed) and v.feed.name == name
        assert issubclass(v.feed.parser, FrameParser) and v.feed.parser.venue == name
        assert "mainnet" in v.rest.HOSTS and v.rest.INSTRUMENTS and v.rest.TIME_POLL_MIN_MS >= 10
        assert callable(v.rest.instruments) and callable(v.rest.server_time_ms)
    with pytest.raises(UnknownVenue, match="no market-data connector for venue 'kraken'; available: bybit"):
        venue("kraken")


def test_live_trading_is_registered_for_exactly_the_venues_with_a_trading_client_and_settings():
    from shared.settings import CREDENTIAL_PARTS, TRADING_HOSTS
    from shared.venues import TRADING, trading_client
    from shared.venues.trading import VenueTrading

    with_client = sorted(n for n in NAMES if (VENUES_DIR / n / "trading.py").is_file())
    assert sorted(TRADING) == with_client == sorted(TRADING_HOSTS) == sorted(CREDENTIAL_PARTS)
    for name in TRADING:
        client = trading_client(name)
        assert issubclass(client, VenueTrading) and client.venue == name
        count, window_s = client.order_rate
        assert count > 0 and window_s > 0
        # every interface method the executor calls is the venue's own, and arb validate's too (Bybit's
        # validation is its own: services/validate.py `validate`)
        validate = ("position_mode",) if name != "bybit" else ()
        for method in ("for_account", "place", "cancel", "order", "fills", "open_orders", "positions", "balance",
                       "ensure_position_mode", "fee_rates", "funding_payments", "key_problems", "parse_private",
                       "private_stream", "sync_time", *validate):
            assert getattr(client, method) is not getattr(VenueTrading, method), f"{name} lacks {method}"
    with pytest.raises(UnknownVenue, match="no live trading at 'kucoin'"):
        trading_client("kucoin")


def test_snapshot_keys_are_the_seeds():
    seed = (SHARED / "seeds" / "spread-arbitrage-design.md").read_text()
    keys = set(re.findall(r"^(\w+:\w+:tickers):\{symbol\}", seed, re.MULTILINE))
    for name in NAMES:
        assert venue(name).feed.snapshot_key_prefix in keys


def test_shared_code_has_no_branch_on_a_venue_name():
    # settings.py may name a venue as a default (SYNTHETIC_VENUE=bybit): configuration, not a branch
    shared_code = [p for p in VENUES_DIR.parent.glob("*.py") if p.name != "settings.py"]
    shared_code += [VENUES_DIR / "protocol.py"]
    shared_code += list((VENUES_DIR.parents[1] / "services" / "ingestor").glob("*.py"))
    for path in shared_code:
        text = path.read_text()
        for name in NAMES:
            assert f'"{name}"' not in text, f"{path.name} names {name}"


# --- instruments and symbols ------------------------------------------------------------------

@pytest.mark.parametrize("symbols", [bybit_map(full=True), okx_map(), binance_map("BTCUSDT", "1000PEPEUSDT"),
                                     bitget_map(), hyperliquid_map(), gate_map(), paradex_map(), kucoin_map()],
                         ids=["bybit", "okx", "binance", "bitget", "hyperliquid", "gate", "paradex", "kucoin"])
def test_every_listed_instrument_maps_to_its_canonical_name_and_back(symbols):
    assert len(symbols) > 0
    for inst in symbols.by_symbol.values():
        assert symbols.from_venue(inst.venue_symbol) is inst
        assert symbols.get(inst.symbol) is inst
        assert re.fullmatch(r"[A-Z0-9]+USDT?C?", inst.symbol), inst.symbol


def test_bybit_lists_live_usdt_perpetuals_with_their_funding_intervals():
    full = bybit_map(full=True)
    assert len(full) > 500 and all(inst.quote == "USDT" for inst in full.by_symbol.values())
    trimmed = bybit_map()
    assert sorted(trimmed.by_symbol) == ["0GUSDT", "ACEUSDT", "BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT"]
    assert trimmed.get("ACEUSDT").funding_interval_min == 60 and trimmed.get("0GUSDT").funding_interval_min == 240
    assert str(trimmed.get("BTCUSDT").tick) == "0.10" and str(trimmed.get("BTCUSDT").lot) == "0.001"
    with pytest.raises(UnknownSymbol, match=r"bybit lists no live perpetual BTCUSDT-14AUG26"):
        trimmed.get("BTCUSDT-14AUG26")  # a dated future


def test_okx_contracts_are_converted_to_base_units():
    okx = okx_map()
    btc = okx.get("BTCUSDT")
    assert (btc.venue_symbol, str(btc.contract_size), btc.inverse) == ("BTC-USDT-SWAP", "0.01", False)
    assert btc.base_size(3, 65000.0) == 0.03
    inverse = okx.get("BTCUSD")  # BTC-USD-SWAP: a contract is 100 USD
    assert inverse.inverse and inverse.base_size(13, 65000.0) == pytest.approx(13 * 100 / 65000)
    with pytest.raises(UnknownSymbol, match=r"okx lists no live perpetual ETHUSDX .*did you mean ETHUSDT\?"):
        okx.get("ETHUSDX")


@given(contracts=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("1e9"), places=4),
       contract_size=st.sampled_from([Decimal("0.01"), Decimal("0.1"), Decimal("0.001"), Decimal("10"),
                                      Decimal("1000")]))
def test_linear_contracts_become_the_exact_base_amount(contracts, contract_size):
    inst = Instrument(venue="okx", symbol="BTCUSDT", venue_symbol="BTC-USDT-SWAP", contract_size=contract_size)
    assert Decimal(repr(inst.base_size(float(contracts), 65000.0))) == contracts * contract_size


def test_binance_and_bitget_funding_intervals_come_from_their_lists():
    binance = binance_map("BTCUSDT", "BLZUSDT", four_hourly=("BLZUSDT",))
    assert binance.get("BLZUSDT").funding_interval_min == 240 and binance.get("BTCUSDT").funding_interval_min == 480
    assert "BTCUSDT_260925" not in binance.by_venue_symbol  # quarterly futures are not perpetuals
    bitget = bitget_map()
    assert bitget.get("UNIUSDT").funding_interval_min == 240 and str(bitget.get("BTCUSDT").tick) == "0.1"
    assert str(bitget.get("UNIUSDT").tick) == "0.001"


def test_funding_is_normalized_per_8h_and_per_hour():
    four_hourly = Ticker(venue="bybit", symbol="0GUSDT", exchange_ts_ms=1, receive_ts_us=1, funding_rate=0.0001,
                         funding_interval_min=240)
    assert (four_hourly.funding_rate_8h, four_hourly.funding_rate_1h) == (0.0002, 0.000025)
    hourly = Ticker(venue="x", symbol="BTCUSDT", exchange_ts_ms=1, receive_ts_us=1, funding_rate=-0.0000125,
                    funding_interval_min=60)
    assert hourly.funding_rate_8h == pytest.approx(-0.0001) and hourly.funding_rate_1h == -0.0000125
    unknown = Ticker(venue="x", symbol="BTCUSDT", exchange_ts_ms=1, receive_ts_us=1, funding_rate=0.0001)
    assert unknown.funding_rate_8h is None


def test_server_times_parse():
    assert venue("bybit").rest.server_time_ms(sample("bybit", "docexample_rest_market_time.json")) == 1688639403423
    assert venue("binance").rest.server_time_ms(b'{"serverTime":1499827319559}') == 1499827319559
    assert venue("okx").rest.server_time_ms(b'{"code":"0","msg":"","data":[{"ts":"1597026383085"}]}') == 1597026383085
    body = b'{"code":"00000","msg":"success","requestTime":1,"data":{"serverTime":"1688008631614"}}'
    assert venue("bitget").rest.server_time_ms(body) == 1688008631614
    book = sample("hyperliquid", "nautilusfixture_http_l2_book_btc.json")
    assert venue("hyperliquid").rest.server_time_ms(book) == 1761786491067
    assert venue("gate").rest.server_time_ms(b'{"server_time":1597026383085}') == 1597026383085
    assert venue("paradex").rest.server_time_ms(b'{"server_time":"1681493415023"}') == 1681493415023
    assert venue("kucoin").rest.server_time_ms(b'{"code":"200000","data":1546837113087}') == 1546837113087


# --- Binance ----------------------------------------------------------------------------------

def test_binance_samples_parse_to_the_values_sent():
    parser = venue("binance").feed.parser(binance_map("SUSHIUSDT", "BTCUSDT", "BNBUSDT", "CTKUSDT"))
    [book_ticker] = events(parser, sample("binance", "ws_usdm_bookTicker_2021_combined.json"))
    assert book_ticker == Ticker(venue="binance", symbol="SUSHIUSDT", exchange_ts_ms=1626992741012, receive_ts_us=7,
                                 bid=7.611, ask=7.612, bid_size=2.0, ask_size=297.0)
    [mark] = events(parser, sample("binance", "docexample_ws_usdm_markPrice.json"))
    assert (mark.symbol, mark.mark, mark.index, mark.funding_rate) == ("BTCUSDT", 11794.15, 11784.62659091, 0.00038167)
    assert (mark.next_funding_ts_ms, mark.funding_interval_min, mark.funding_rate_8h) == (1562306400000, 480,
                                                                                          0.00038167)
    assert mark.bid is None  # the other half of the ticker comes from bookTicker
    [trade] = events(parser, sample("binance", "ws_usdm_aggTrade_2021_combined.json"))
    assert trade == Trade(venue="binance", symbol="SUSHIUSDT", trade_id="87353230", price=7.612, size=297.0,
                          side="buy", exchange_ts_ms=1626992744108, receive_ts_us=7)  # m false: the buyer took
    [fixture] = events(parser, sample("binance", "nautilusfixture_book_ticker_stream.json"))  # raw stream, extra keys
    assert (fixture.symbol, fixture.bid, fixture.ask_size) == ("BNBUSDT", 25.3519, 40.66)
    assert events(parser, sample("binance", "ws_usdm_depthUpdate_100ms_2021_combined.json")) == []
    assert parser.stats.ignored["depth_diff"] == 1 and parser.stats.error_count == 0


def test_binance_partial_depth_liquidations_and_answers():
    parser = venue("binance").feed.parser(binance_map("BTCUSDT"), 2)
    depth = {"stream": "btcusdt@depth5@100ms", "data": {
        "e": "depthUpdate", "E": 10, "T": 9, "s": "BTCUSDT", "U": 5, "u": 8, "pu": 4,
        "b": [["65000.10", "1.5"], ["65000.00", "0.2"], ["64999.9", "3"]], "a": [["65000.20", "0.7"]]}}
    [book] = events(parser, json.dumps(depth).encode())
    assert (book.kind, book.update_id, book.bids, book.asks) == ("snapshot", 8, ((65000.1, 1.5), (65000.0, 0.2)),
                                                                 ((65000.2, 0.7),))
    force = {"stream": "btcusdt@forceOrder", "data": {"e": "forceOrder", "E": 5, "o": {
        "s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "9910", "ap": "9911", "X": "FILLED",
        "l": "0.014", "z": "0.014", "T": 1568014460893}}}
    assert events(parser, json.dumps(force).encode()) == [Liquidation(
        venue="binance", symbol="BTCUSDT", position_side="long", price=9911.0, size=0.014,
        exchange_ts_ms=1568014460893, receive_ts_us=7)]
    assert events(parser, b'{"result":null,"id":3}') == [SubscribeResult(True, "", "3")]
    refused = events(parser, b'{"error":{"code":2,"msg":"Invalid request: unknown stream"},"id":4}')
    assert refused == [SubscribeResult(False, "Invalid request: unknown stream", "4")]


def test_binance_capture_replays_without_an_error():
    frames = capture("binance", "ws_usdm_capture_SUSHIUSDT_2021_cryptofeed.jsonl")
    parser = venue("binance").feed.parser(binance_map("SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"))
    out = events(parser, *frames)
    assert parser.stats.error_count == 0 and parser.stats.messages == len(frames)
    kinds = {type(e).__name__ for e in out}
    assert kinds == {"Ticker", "Trade"} and all(e.venue == "binance" for e in out)
    assert set(parser.stats.ignored) == {"depth_diff", "kline_1m"}


# --- OKX ----------------------------------------------------------------------------------------

def test_okx_samples_parse_to_the_values_sent_in_base_units():
    parser = venue("okx").feed.parser(okx_map())
    [ticker] = events(parser, sample("okx", "ws_tickers_swap_2022.json"))  # UNI-USD-SWAP: 10 USD contracts
    assert (ticker.symbol, ticker.bid, ticker.ask, ticker.last) == ("UNIUSD", 5.134, 5.142, 5.123)
    assert ticker.bid_size == pytest.approx(96 * 10 / 5.134) and ticker.exchange_ts_ms == 1652459223143
    [trade] = events(parser, sample("okx", "ws_trades_swap_2022.json"))
    assert (trade.trade_id, trade.price, trade.side) == ("12883020", 5.123, "sell")
    assert trade.size == pytest.approx(100 * 10 / 5.123)
    [funding] = events(parser, sample("okx", "docexample_ws_funding_rate.json"))
    assert (funding.symbol, funding.funding_rate, funding.next_funding_ts_ms) == ("BTCUSD", 0.0001875391284828,
                                                                                  1700726400000)
    assert funding.funding_interval_min == 480 and funding.exchange_ts_ms == 1700724675402
    assert events(parser, sample("okx", "ws_subscribe_ack_2022.json")) == [SubscribeResult(True, "", "")]
    assert events(parser, b"pong") == [Pong()]
    assert events(parser, sample("okx", "ws_tickers_spot_2022.json")) == []  # a spot pair: not a swap we map
    assert parser.stats.errors["bad_tickers"] == 1


def test_okx_linear_channels_in_the_documented_shapes():
    parser = venue("okx").feed.parser(okx_map(), 1)
    arg = {"channel": "books5", "instId": "BTC-USDT-SWAP"}
    books5 = {"arg": arg, "data": [{"asks": [["65000.2", "7", "0", "2"]], "bids": [["65000.1", "120", "0", "5"],
                                                                                  ["65000", "1", "0", "1"]],
                                    "instId": "BTC-USDT-SWAP", "ts": "1700000000100", "seqId": 42}]}
    [book] = events(parser, json.dumps(books5).encode())
    assert (book.symbol, book.update_id, book.bids, book.asks) == ("BTCUSDT", 42, ((65000.1, 1.2),), ((65000.2, 0.07),))
    oi = {"arg": {"channel": "open-interest", "instId": "ETH-USDT-SWAP"},
          "data": [{"instType": "SWAP", "instId": "ETH-USDT-SWAP", "oi": "5000", "oiCcy": "500", "ts": "1"}]}
    index = {"arg": {"channel": "index-tickers", "instId": "ETH-USDT"}, "data": [{"instId": "ETH-USDT",
                                                                                 "idxPx": "2301.5", "ts": "2"}]}
    mark = {"arg": {"channel": "mark-price", "instId": "ETH-USDT-SWAP"},
            "data": [{"instType": "SWAP", "instId": "ETH-USDT-SWAP", "markPx": "2301.7", "ts": "3"}]}
    got = events(parser, *(json.dumps(m).encode() for m in (oi, index, mark)))
    assert [(t.symbol, t.open_interest, t.index, t.mark) for t in got] == [
        ("ETHUSDT", 500.0, None, None), ("ETHUSDT", None, 2301.5, None), ("ETHUSDT", None, None, 2301.7)]
    liquidation = {"arg": {"channel": "liquidation-orders", "instType": "SWAP"}, "data": [
        {"instId": "ETH-USDT-SWAP", "instType": "SWAP", "details": [
            {"bkLoss": "0", "bkPx": "2290.1", "ccy": "", "posSide": "", "side": "buy", "sz": "13", "ts": "9"}]},
        {"instId": "IOST-USDT-SWAP", "instType": "SWAP", "details": [
            {"bkPx": "0.0078", "posSide": "short", "side": "buy", "sz": "13", "ts": "9"}]}]}
    [liq] = events(parser, json.dumps(liquidation).encode())
    assert (liq.symbol, liq.position_side, liq.price, liq.size) == ("ETHUSDT", "short", 2290.1, pytest.approx(1.3))
    assert parser.stats.ignored["liquidation_other_symbol"] == 1
    error = b'{"event":"error","code":"60012","msg":"Invalid request","connId":"a4d3ae55"}'
    assert events(parser, error) == [SubscribeResult(False, "60012 Invalid request", "")]


def test_okx_capture_replays_its_incremental_book_without_a_gap():
    frames = capture("okx", "ws_capture_UNI-USD-SWAP_2022_cryptofeed.jsonl")
    parser = venue("okx").feed.parser(okx_map(), 5)
    out = events(parser, *frames)
    assert parser.stats.error_count == 0 and parser.stats.gaps == 0
    books = [e for e in out if isinstance(e, BookUpdate)]
    assert len(books) == 93 and not any(isinstance(e, Resync) for e in out)
    last = books[-1]
    assert last.bids[0][0] < last.asks[0][0] and len(last.bids) == 5


def test_okx_book_update_before_its_snapshot_asks_for_one():
    parser = venue("okx").feed.parser(okx_map())
    update = sample("okx", "ws_books_update_swap_2022.json")
    assert events(parser, update) == [Resync("books:UNI-USD-SWAP", "book update before snapshot")]
    assert events(parser, update) == [] and parser.stats.awaiting_snapshot == 1
    [book] = events(parser, sample("okx", "ws_books_snapshot_swap_2022.json"))
    assert book.kind == "snapshot" and book.bids[0][0] < book.asks[0][0]


# --- Bitget ------------------------------------------------------------------------------------

def test_bitget_samples_parse_to_the_values_sent():
    parser = venue("bitget").feed.parser(bitget_map())
    [ticker] = events(parser, sample("bitget", "ccxtcomment_v2_ws_ticker_usdt_futures.json"))
    assert ticker == Ticker(
        venue="bitget", symbol="BTCUSDT", exchange_ts_ms=1701843962811, receive_ts_us=7, bid=43476.3, ask=43476.8,
        bid_size=0.1, ask_size=3.055, last=43480.4, mark=43476.4, index=43478.4, funding_rate=0.000096,
        next_funding_ts_ms=1701849600000, funding_interval_min=480, open_interest=50670.787)
    [book] = events(parser, sample("bitget", "ccxtcomment_v2_ws_books5_spot.json"))
    assert book.bids[0] == (21040.76, 0.0417) and book.asks[-1] == (21041.65, 1.9465) and len(book.bids) == 5
    trade = {"action": "snapshot", "arg": {"instType": "USDT-FUTURES", "channel": "trade", "instId": "UNIUSDT"},
             "data": [{"ts": "1695716760565", "price": "5.12", "size": "3.5", "side": "sell", "tradeId": "111"}]}
    assert events(parser, json.dumps(trade).encode()) == [Trade(
        venue="bitget", symbol="UNIUSDT", trade_id="111", price=5.12, size=3.5, side="sell",
        exchange_ts_ms=1695716760565, receive_ts_us=7)]
    assert events(parser, b"pong") == [Pong()]


def test_bitget_legacy_v1_frames_are_counted_skips():
    parser = venue("bitget").feed.parser(bitget_map())
    assert events(parser, sample("bitget", "legacy_v1_ws_ticker_mc_UNIUSDT_2022.json")) == []
    assert parser.stats.errors["bad_ticker"] == 1  # v1 names (bestBid, capitalRate): superseded by v2


# --- Hyperliquid ------------------------------------------------------------------------------

def test_hyperliquid_names_and_hourly_funding():
    symbols = hyperliquid_map()
    assert sorted(symbols.by_symbol) == ["1000PEPEUSDT", "BTCUSDT", "ETHUSDT"]  # MATIC is delisted
    btc = symbols.get("BTCUSDT")
    assert (btc.venue_symbol, btc.quote, str(btc.lot), btc.funding_interval_min) == ("BTC", "USDC", "0.00001", 60)
    assert symbols.get("1000PEPEUSDT").venue_symbol == "kPEPE"
    history = json.loads(sample("hyperliquid", "nautilusfixture_http_funding_history.json"))
    assert {b["time"] - a["time"] for a, b in itertools.pairwise(history)} == {3_600_000}  # hourly


def test_hyperliquid_channels_parse_to_the_values_sent():
    parser = venue("hyperliquid").feed.parser(hyperliquid_map(), 3)
    book = json.loads(sample("hyperliquid", "nautilusfixture_http_l2_book_btc.json"))  # the WS book's shape
    [update] = events(parser, json.dumps({"channel": "l2Book", "data": book}).encode())
    assert (update.symbol, update.exchange_ts_ms, len(update.bids)) == ("BTCUSDT", 1761786491067, 3)
    assert update.bids[0] == (110427.0, 4.11882) and update.asks[0] == (110428.0, 3.72573)
    bbo = {"channel": "bbo", "data": {"coin": "ETH", "time": 5, "bbo": [{"px": "2296.4", "sz": "3.1", "n": 2}, None]}}
    [top] = events(parser, json.dumps(bbo).encode())
    assert (top.symbol, top.bid, top.bid_size, top.ask) == ("ETHUSDT", 2296.4, 3.1, None)
    ctx = {"channel": "activeAssetCtx", "data": {"coin": "BTC", "ctx": {
        "funding": "0.0000125", "openInterest": "1234.5", "oraclePx": "80860.0", "markPx": "80868.5",
        "prevDayPx": "80000.0", "dayNtlVlm": "1.0", "premium": "0.0001", "midPx": "80868.5",
        "impactPxs": ["80868.0", "80869.0"]}}}
    [ticker] = parser.feed(json.dumps(ctx).encode(), 1_769_911_199_000_000)  # 01:59:59 UTC
    assert (ticker.mark, ticker.index, ticker.open_interest, ticker.funding_rate) == (80868.5, 80860.0, 1234.5,
                                                                                       0.0000125)
    assert ticker.funding_rate_8h == pytest.approx(0.0001) and ticker.next_funding_ts_ms == 1_769_911_200_000  # 02:00
    trades = {"channel": "trades", "data": [{"coin": "kPEPE", "side": "A", "px": "0.0123", "sz": "1500", "time": 9,
                                             "hash": "0x0", "tid": 77, "users": ["0x1", "0x2"]}]}
    assert events(parser, json.dumps(trades).encode()) == [Trade(
        venue="hyperliquid", symbol="1000PEPEUSDT", trade_id="77", price=0.0123, size=1500.0, side="sell",
        exchange_ts_ms=9, receive_ts_us=7)]
    assert events(parser, sample("hyperliquid", "nautilusfixture_ws_allmids.json")) == []
    assert parser.stats.ignored["allMids"] == 1 and parser.stats.error_count == 0
    assert events(parser, b'{"channel":"pong"}') == [Pong()]
    assert events(parser, b'{"channel":"error","data":"Invalid subscription"}') == [
        SubscribeResult(False, "Invalid subscription")]


# --- Gate (documented shapes: no recorded frames exist offline) ---------------------------------

def test_gate_contracts_and_channels_in_base_units():
    symbols = gate_map()
    assert sorted(symbols.by_symbol) == ["BTCUSDT", "ETHUSDT"]  # LUNA is being delisted
    assert symbols.get("ETHUSDT").funding_interval_min == 240 and str(symbols.get("BTCUSDT").contract_size) == "0.0001"
    parser = venue("gate").feed.parser(symbols, 2)
    head = {"time": 1615366379, "time_ms": 1615366379123}
    book_ticker = {**head, "channel": "futures.book_ticker", "event": "update",
                   "result": {"t": 1615366379123, "u": 2517661076, "s": "BTC_USDT", "b": "54696.6", "B": 37000,
                              "a": "54696.7", "A": 47061}}
    [top] = events(parser, json.dumps(book_ticker).encode())
    assert (top.symbol, top.bid, top.bid_size, top.ask, top.ask_size) == ("BTCUSDT", 54696.6, 3.7, 54696.7, 4.7061)
    tickers = {**head, "channel": "futures.tickers", "event": "update", "result": [
        {"contract": "ETH_USDT", "last": "2301.1", "change_percentage": "0.7", "funding_rate": "-0.000114",
         "funding_rate_indicative": "0.0001", "mark_price": "2301.2", "index_price": "2301.3", "total_size": "73648",
         "volume_24h": "745487577", "low_24h": "2200", "high_24h": "2400"}]}
    [ticker] = events(parser, json.dumps(tickers).encode())
    assert (ticker.mark, ticker.index, ticker.funding_rate, ticker.open_interest) == (2301.2, 2301.3, -0.000114,
                                                                                       736.48)
    assert ticker.funding_interval_min == 240 and ticker.next_funding_ts_ms == 1615377600000  # the next 4 h mark
    assert ticker.funding_rate_8h == pytest.approx(-0.000228)
    book = {**head, "channel": "futures.order_book", "event": "all", "result": {
        "t": 1615366381417, "id": 2517661101, "contract": "BTC_USDT",
        "asks": [{"p": "54700.1", "s": 12}, {"p": "54700.2", "s": 5}, {"p": "54701", "s": 1}],
        "bids": [{"p": "54700", "s": 30}]}}
    [snapshot] = events(parser, json.dumps(book).encode())
    assert snapshot.asks == ((54700.1, 0.0012), (54700.2, 0.0005)) and snapshot.bids == ((54700.0, 0.003),)
    trades = {**head, "channel": "futures.trades", "event": "update", "result": [
        {"size": -108, "id": 27753479, "create_time": 1545136464, "create_time_ms": 1545136464123, "price": "96.4",
         "contract": "BTC_USDT"}]}
    assert events(parser, json.dumps(trades).encode()) == [Trade(
        venue="gate", symbol="BTCUSDT", trade_id="27753479", price=96.4, size=0.0108, side="sell",
        exchange_ts_ms=1545136464123, receive_ts_us=7)]
    ack = {**head, "channel": "futures.tickers", "event": "subscribe", "result": {"status": "success"}}
    refused = {**head, "channel": "futures.tickers", "event": "subscribe", "result": {"status": "failed"},
               "error": {"code": 2, "message": "unknown contract BTC_USDX"}}
    assert events(parser, json.dumps(ack).encode(), json.dumps(refused).encode()) == [
        SubscribeResult(True, ""), SubscribeResult(False, "2 unknown contract BTC_USDX")]
    assert events(parser, b'{"time":1,"time_ms":1,"channel":"futures.pong","event":"","result":null}') == [Pong()]
    assert parser.stats.error_count == 0


# --- Paradex (documented shapes: no recorded frames exist offline) ------------------------------

def rpc(channel: str, data: dict) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}).encode()


def test_paradex_markets_and_channels():
    symbols = paradex_map()
    assert sorted(symbols.by_symbol) == ["BTCUSDT", "ETHUSDT"]  # options are not perps
    assert (symbols.get("BTCUSDT").venue_symbol, symbols.get("BTCUSDT").quote) == ("BTC-USD-PERP", "USDC")
    parser = venue("paradex").feed.parser(symbols, 2)
    [top] = events(parser, rpc("bbo.BTC-USD-PERP", {
        "market": "BTC-USD-PERP", "bid": "30900.0", "bid_size": "0.768", "ask": "30900.1", "ask_size": "1.123",
        "last_updated_at": 1681462770114, "seq_no": 20784}))
    assert (top.symbol, top.bid, top.bid_size, top.ask, top.exchange_ts_ms) == ("BTCUSDT", 30900.0, 0.768, 30900.1,
                                                                                1681462770114)
    [ticker] = events(parser, rpc("markets_summary.ETH-USD-PERP", {
        "symbol": "ETH-USD-PERP", "oracle_price": "2301.0", "mark_price": "2301.2", "last_traded_price": "2301.5",
        "bid": "2301.1", "ask": "2301.3", "volume_24h": "1", "total_volume": "2", "created_at": 1681493415023,
        "underlying_price": "2300.9", "open_interest": "1234.56", "funding_rate": "0.00012",
        "price_change_rate_24h": "0.01"}))
    assert (ticker.mark, ticker.index, ticker.open_interest, ticker.funding_rate_8h) == (2301.2, 2300.9, 1234.56,
                                                                                          0.00012)
    assert ticker.next_funding_ts_ms is None  # funding accrues continuously
    [book] = events(parser, rpc("order_book.BTC-USD-PERP.snapshot@15@100ms", {
        "seq_no": 20784, "market": "BTC-USD-PERP", "last_updated_at": 1681462770114, "update_type": "s",
        "deletes": [], "updates": [], "inserts": [
            {"side": "BUY", "price": "30900.0", "size": "0.5"}, {"side": "SELL", "price": "30901.0", "size": "0.1"},
            {"side": "SELL", "price": "30900.1", "size": "0.2"}, {"side": "BUY", "price": "30899", "size": "4"},
            {"side": "BUY", "price": "30898", "size": "9"}]}))
    assert book.bids == ((30900.0, 0.5), (30899.0, 4.0)) and book.asks == ((30900.1, 0.2), (30901.0, 0.1))
    [trade] = events(parser, rpc("trades.BTC-USD-PERP", {
        "id": "1681462770114011", "market": "BTC-USD-PERP", "side": "SELL", "size": "0.012", "price": "30900.0",
        "created_at": 1681462770114, "trade_type": "FILL"}))
    assert (trade.trade_id, trade.side, trade.size) == ("1681462770114011", "sell", 0.012)
    assert events(parser, b'{"jsonrpc":"2.0","result":{"channel":"bbo.BTC-USD-PERP"},"id":1}') == [
        SubscribeResult(True, "", "1")]
    refused = b'{"jsonrpc":"2.0","error":{"code":-32602,"message":"invalid channel"},"id":2}'
    assert events(parser, refused) == [SubscribeResult(False, "-32602 invalid channel", "2")]
    assert parser.stats.error_count == 0


# --- KuCoin (documented shapes: no recorded frames exist offline) -------------------------------

def kucoin_message(topic: str, subject: str, data: dict) -> bytes:
    return json.dumps({"type": "message", "topic": topic, "subject": subject, "data": data}).encode()


def test_kucoin_contracts_token_and_topics():
    symbols = kucoin_map()
    assert sorted(symbols.by_symbol) == ["BTCUSDT", "ETHUSDT"]  # XBT is BTC; quarterlies and closed ones out
    assert (symbols.get("BTCUSDT").venue_symbol, str(symbols.get("BTCUSDT").contract_size)) == ("XBTUSDTM", "0.001")
    bullet = {"code": "200000", "data": {"token": "2neAiuYvAU61ZD", "instanceServers": [
        {"endpoint": "wss://ws-api-futures.kucoin.com/", "encrypt": True, "protocol": "websocket",
         "pingInterval": 18000, "pingTimeout": 10000}]}}
    assert venue("kucoin").rest.connect_url(json.dumps(bullet).encode(), "c1") == (
        "wss://ws-api-futures.kucoin.com/?token=2neAiuYvAU61ZD&connectId=c1")
    parser = venue("kucoin").feed.parser(symbols, 2)
    [top] = events(parser, kucoin_message("/contractMarket/tickerV2:XBTUSDTM", "tickerV2", {
        "symbol": "XBTUSDTM", "sequence": 1638, "bestBidSize": 795, "bestBidPrice": "3200.0",
        "bestAskPrice": "3600.0", "bestAskSize": 284, "ts": 1553846081210004941}))
    assert (top.symbol, top.bid, top.bid_size, top.ask_size, top.exchange_ts_ms) == ("BTCUSDT", 3200.0, 0.795,
                                                                                     0.284, 1553846081210)
    [book] = events(parser, kucoin_message("/contractMarket/level2Depth5:ETHUSDTM", "level2", {
        "bids": [["2301.1", 12], ["2301", 3], ["2300.9", 1]], "asks": [["2301.2", 40]], "sequence": 9,
        "timestamp": 1565593961373, "ts": 1565593961373000000}))
    assert book.bids == ((2301.1, 0.12), (2301.0, 0.03)) and book.asks == ((2301.2, 0.4),)
    [trade] = events(parser, kucoin_message("/contractMarket/execution:XBTUSDTM", "match", {
        "symbol": "XBTUSDTM", "sequence": 36, "side": "sell", "size": 25, "price": "3200.00",
        "takerOrderId": "5c9dd00870744d71c43f5e25", "makerOrderId": "5c9d852070744d0976909a0c",
        "tradeId": "5c9dcf4170744d6f5a3d32fb", "ts": 1553846281766256031}))
    assert (trade.trade_id, trade.side, trade.size, trade.exchange_ts_ms) == ("5c9dcf4170744d6f5a3d32fb", "sell",
                                                                              0.025, 1553846281766)
    mark, funding = events(parser, kucoin_message("/contract/instrument:XBTUSDTM", "mark.index.price", {
        "granularity": 1000, "indexPrice": 4000.23, "markPrice": 4010.52, "timestamp": 1551770400000}),
        kucoin_message("/contract/instrument:XBTUSDTM", "funding.rate", {
            "granularity": 60000, "fundingRate": -0.002966, "timestamp": 1551770400000}))
    assert (mark.mark, mark.index) == (4010.52, 4000.23)
    assert (funding.funding_rate, funding.funding_interval_min, funding.next_funding_ts_ms) == (
        -0.002966, 480, 1551772800000)  # 07:20 UTC -> 08:00
    assert events(parser, b'{"id":"1","type":"ack"}', b'{"id":"2","type":"pong"}') == [SubscribeResult(True, "", "1"),
                                                                                      Pong()]
    missing = b'{"id":"3","type":"error","code":404,"data":"topic /contractMarket/tickerV2:XBTUSDX is not found"}'
    assert events(parser, missing) == [SubscribeResult(False, "404 topic /contractMarket/tickerV2:XBTUSDX is not "
                                                              "found", "3")]
    assert events(parser, b'{"id":"hQvf8jkno","type":"welcome"}') == [] and parser.stats.error_count == 0


@pytest.mark.parametrize(("name", "body", "message"), [
    ("bybit", b'{"retCode":10001,"retMsg":"params error: category","result":{},"time":1}',
     "bybit retCode 10001: params error: category"),
    ("okx", b'{"code":"51000","msg":"Parameter instType error","data":[]}', "okx code 51000: Parameter instType error"),
    ("bitget", b'{"code":"40034","msg":"Parameter productType does not exist","data":null}',
     "bitget code 40034: Parameter productType does not exist"),
    ("kucoin", b'{"code":"400100","msg":"Parameter error"}', "kucoin code 400100: Parameter error"),
])
def test_a_venue_error_answer_is_an_error_in_the_venues_words(name, body, message):
    with pytest.raises(VenueError, match=f"^{re.escape(message)}$"):
        venue(name).rest.instruments([body])
